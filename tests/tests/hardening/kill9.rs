//! SIGKILL at random moments while runs are being submitted and executed: nothing accepted is
//! lost, nothing stays in flight, the database and the prompt journal stay sound.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend::journal::ScannedRecord;
use common::{RunId, RunState};
use tests::{BinaryServer, TestDirs, serve_flags, unique_prompt};

use crate::support::{all_runs, integrity_check, long, random_below, try_submit};

#[tokio::test]
async fn kill_9_at_random_moments_loses_no_accepted_run_and_leaves_sound_files() {
    let iterations = if long() { 200 } else { 30 };
    let dirs = TestDirs::new();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let accepted: Arc<Mutex<Vec<RunId>>> = Arc::default();
    let mut checked_crashed: HashSet<RunId> = HashSet::new();
    let (mut torn_tails, mut torn_inside) = (0, 0);
    let mut known_torn: HashSet<u64> = HashSet::new();
    let started = Instant::now();

    for iteration in 0..iterations {
        let mut flags = serve_flags(&dirs);
        // Lightly paced so kills land before, during and after streaming.
        flags.insert("--emulator-tokens-per-sec", ["0", "400", "2000"][iteration % 3].to_owned());
        let mut server = BinaryServer::start(&flags, &[]).await;

        // Every run accepted by an earlier process is present and finished.
        let before: Vec<RunId> = accepted.lock().unwrap().clone();
        let runs = all_runs(&client, &server.address).await;
        for id in &before {
            let run = runs.iter().find(|r| r.id == *id).unwrap_or_else(|| panic!("accepted run {id} is lost"));
            assert!(
                !matches!(run.state, RunState::Pending | RunState::Running),
                "run {id} is stuck {} after restart {iteration}",
                run.state
            );
            if run.state == RunState::Crashed {
                assert!(run.error.as_deref().is_some_and(|e| !e.trim().is_empty()), "crash of {id} unexplained");
                checked_crashed.insert(*id);
            }
        }

        // Submitters, then a kill at a random moment 0–300 ms later.
        let submitters: Vec<_> = (0..3)
            .map(|_| {
                let (client, address, accepted) = (client.clone(), server.address.clone(), Arc::clone(&accepted));
                tokio::spawn(async move {
                    loop {
                        if let Some(id) = try_submit(&client, &address, &unique_prompt("kill me")).await {
                            accepted.lock().unwrap().push(id);
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(random_below(301))).await;
        server.kill9().await;
        for submitter in submitters {
            submitter.abort();
            let _ = submitter.await;
        }

        assert_eq!(integrity_check(&dirs.data_dir).await, "ok", "after kill {iteration}");
        let records = dirs.journal();
        // A torn record may only appear as the journal's tail, at the moment of a kill; later
        // appends leave it in place (skipped by the reader), so earlier tails are remembered.
        for (index, record) in records.iter().enumerate() {
            if let ScannedRecord::Torn { offset, .. } = record {
                if index + 1 == records.len() {
                    if known_torn.insert(*offset) {
                        torn_tails += 1;
                    }
                } else if !known_torn.contains(offset) {
                    torn_inside += 1;
                }
            }
        }
        // The journal holds every accepted prompt intact.
        let intact: HashSet<RunId> = records
            .iter()
            .filter_map(|r| match r {
                ScannedRecord::Intact { run_id, .. } => Some(*run_id),
                ScannedRecord::Torn { .. } => None,
            })
            .collect();
        for id in accepted.lock().unwrap().iter() {
            assert!(intact.contains(id), "accepted run {id} has no intact journal record");
        }
    }

    // A last restart checks the runs of the final process.
    let server = BinaryServer::start(&serve_flags(&dirs), &[]).await;
    let runs = all_runs(&client, &server.address).await;
    let accepted = accepted.lock().unwrap().clone();
    for id in &accepted {
        let run = runs.iter().find(|r| r.id == *id).unwrap_or_else(|| panic!("accepted run {id} is lost"));
        assert!(!matches!(run.state, RunState::Pending | RunState::Running), "run {id} stuck {}", run.state);
        if run.state == RunState::Crashed {
            checked_crashed.insert(*id);
        }
    }
    let completed = runs.iter().filter(|r| r.state == RunState::Completed).count();
    assert_eq!(torn_inside, 0, "a torn record is followed by others: the reader would have to skip it");
    eprintln!(
        "FIGURE kill9: {iterations} SIGKILLs in {:.1} s; {} runs accepted (202), all present after restart; \
         {} crashed with a reason, {completed} completed, {} stored in all; torn journal tails seen after kills: \
         {torn_tails}; integrity_check ok every time",
        started.elapsed().as_secs_f64(),
        accepted.len(),
        checked_crashed.len(),
        runs.len(),
    );
}

/// Everything one `/api/ws` client received until its connection ended: `(run, seq, JSON)`.
async fn record_feed(port: u16) -> Vec<(RunId, u64, String)> {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;

    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/api/ws")).await else {
        return Vec::new();
    };
    let mut received = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message {
            let event: common::Event = serde_json::from_str(&text).unwrap();
            received.push((event.run_id, event.seq, text.to_string()));
        }
    }
    received
}

/// The stored JSON of every event, and each run's stored state, read from `runs.db` directly
/// while no server runs.
async fn stored_events(data_dir: &std::path::Path) -> (HashMap<(RunId, u64), String>, HashMap<RunId, RunState>) {
    use sqlx::Connection as _;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(data_dir.join("runs.db")).read_only(true);
    let mut db = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT run_id, seq, body FROM events").fetch_all(&mut db).await.unwrap();
    let events =
        rows.into_iter().map(|(run, seq, body)| ((run.parse().unwrap(), u64::try_from(seq).unwrap()), body)).collect();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, state FROM runs").fetch_all(&mut db).await.unwrap();
    let states = rows.into_iter().map(|(id, state)| (id.parse().unwrap(), state.parse().unwrap())).collect();
    let _ = db.close().await;
    (events, states)
}

#[tokio::test]
async fn every_event_a_client_received_before_a_kill_9_is_stored_unchanged_and_never_renumbered() {
    let iterations = if long() { 60 } else { 12 };
    let dirs = TestDirs::new();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    // Every event any client received, in every process so far.
    let mut seen: HashMap<(RunId, u64), String> = HashMap::new();
    let mut terminal_seen: HashMap<RunId, RunState> = HashMap::new();
    let started = Instant::now();
    for iteration in 0..iterations {
        let mut flags = serve_flags(&dirs);
        flags.insert("--emulator-tokens-per-sec", ["400", "0", "2000"][iteration % 3].to_owned());
        let mut server = BinaryServer::start(&flags, &[]).await;
        let watchers: Vec<_> = (0..2).map(|_| tokio::spawn(record_feed(server.port))).collect();
        let submitters: Vec<_> = (0..2)
            .map(|_| {
                let (client, address) = (client.clone(), server.address.clone());
                tokio::spawn(async move {
                    loop {
                        let _ = try_submit(&client, &address, &unique_prompt("watched")).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50 + random_below(400))).await;
        server.kill9().await;
        for submitter in submitters {
            submitter.abort();
            let _ = submitter.await;
        }
        for watcher in watchers {
            for (run, seq, json) in watcher.await.unwrap() {
                let event: common::Event = serde_json::from_str(&json).unwrap();
                if let common::EventKind::RunState { state, .. } = event.kind
                    && state.is_terminal()
                {
                    terminal_seen.insert(run, state);
                }
                if let Some(earlier) = seen.insert((run, seq), json.clone()) {
                    assert_eq!(earlier, json, "run {run} seq {seq} reached two clients with different content");
                }
            }
        }
        // Checked after every kill, and so after every restart's crash recovery too: what a
        // client once received is still stored under the same number with the same content.
        let (stored, states) = stored_events(&dirs.data_dir).await;
        for ((run, seq), json) in &seen {
            let stored = stored.get(&(*run, *seq)).unwrap_or_else(|| {
                panic!("after kill {iteration}: run {run} seq {seq} reached a client but is not stored")
            });
            assert_eq!(stored, json, "after kill {iteration}: run {run} seq {seq} was stored differently");
        }
        for (run, state) in &terminal_seen {
            assert_eq!(states.get(run), Some(state), "after kill {iteration}: a client saw run {run} end {state}");
        }
    }
    assert!(!terminal_seen.is_empty(), "no client saw any run end: the test proved nothing");
    eprintln!(
        "FIGURE kill9 events: {iterations} SIGKILLs in {:.1} s while 2 clients followed every run: {} events \
         received, every one stored with the same seq and content after each kill and restart; {} runs seen \
         ending, each stored in the state the client saw",
        started.elapsed().as_secs_f64(),
        seen.len(),
        terminal_seen.len(),
    );
}
