//! One conformance suite for both stores: what the rest of the server relies on, checked
//! against SQLite and PostgreSQL alike; then what only the shared store does (fencing, claims).

use std::sync::Arc;
use std::time::Duration;

use backend::journal::RecordRef;
use backend::store::{Created, NewRun, PgStore, RunQuery, SqliteStore, Store, Stored, Synchronous};
use backend::wire::{Published, stamp};
use common::{Event, EventKind, LogLevel, RunId, RunState, Usage};
use tests::postgres::fresh_database;

/// Both stores, each fresh, with a name for failure messages.
async fn stores() -> Vec<(&'static str, Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path(), Synchronous::Normal).await.unwrap();
    let pg = joined(&fresh_database().await, "r1", Duration::from_secs(30)).await;
    vec![("sqlite", Arc::new(sqlite), dir), ("postgres", pg, tempfile::tempdir().unwrap())]
}

/// A PostgreSQL store of replica `replica` holding a lease of `lease`.
async fn joined(url: &str, replica: &str, lease: Duration) -> Arc<PgStore> {
    let store = PgStore::connect(url, replica.to_owned()).await.unwrap();
    store.join("127.0.0.1:0", lease).await.unwrap();
    Arc::new(store)
}

fn event(run: RunId, seq: u64, kind: EventKind) -> Published {
    stamp(Arc::new(Event { run_id: run, seq, ts: chrono::Utc::now(), kind }))
}

fn new_run(prompt: &str, key: Option<&str>) -> NewRun {
    let id = RunId(uuid::Uuid::now_v7());
    let created = EventKind::RunCreated {
        prompt: prompt.to_owned(),
        model_id: "model-a".into(),
        system: None,
        max_tokens: 64,
        temperature: None,
        max_attempts: 3,
        replay_of: None,
        batch_id: None,
    };
    NewRun {
        created: event(id, 1, created),
        model_id: "model-a".into(),
        prompt_preview: prompt.to_owned(),
        journal: RecordRef { offset: 0, len: prompt.len() as u64, crc32: crc32(prompt) },
        idempotency_key: key.map(str::to_owned),
    }
}

fn crc32(text: &str) -> u32 {
    // The CRC-32 (IEEE) of the journal, computed here by the textbook bitwise algorithm.
    let mut crc = !0u32;
    for byte in text.bytes() {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn log(run: RunId, seq: u64, text: &str) -> Published {
    event(run, seq, EventKind::Log { level: LogLevel::Info, task: None, attempt: None, message: text.into() })
}

fn state(run: RunId, seq: u64, state: RunState) -> Published {
    event(run, seq, EventKind::RunState { state, error: None })
}

#[tokio::test]
async fn a_run_its_events_logs_and_history_row_read_back_as_written() {
    for (name, store, _dir) in stores().await {
        let run = new_run("hello there", None);
        let id = run.created.event.run_id;
        assert_eq!(store.create_run(run).await.unwrap(), Created::New, "{name}");
        let usage = EventKind::ModelResult {
            usage: Some(Usage { input_tokens: 11, output_tokens: 22 }),
            stop_reason: None,
            latency_ms: Some(5),
        };
        let events = [
            state(id, 2, RunState::Running),
            log(id, 3, "a line"),
            event(id, 4, usage),
            state(id, 5, RunState::Completed),
        ];
        assert_eq!(store.append_events(&events, true).await.unwrap(), Stored::default(), "{name}");

        let summary = store.run_summary(id).await.unwrap().expect("the run");
        assert_eq!(summary.state, RunState::Completed, "{name}");
        assert_eq!(summary.usage, Some(Usage { input_tokens: 11, output_tokens: 22 }), "{name}");
        assert!(summary.started_at.is_some() && summary.finished_at.is_some(), "{name}");
        let seqs: Vec<u64> = store.run_events(id, 2).await.unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4, 5], "{name}: the events after seq 2");
        let logs = store.run_logs(id).await.unwrap();
        assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["a line"], "{name}");
    }
}

#[tokio::test]
async fn storing_an_event_twice_keeps_the_first_and_a_terminal_state_is_final() {
    for (name, store, _dir) in stores().await {
        let run = new_run("p", None);
        let id = run.created.event.run_id;
        store.create_run(run).await.unwrap();
        store.append_events(&[state(id, 2, RunState::Running), log(id, 3, "first")], false).await.unwrap();
        store.append_events(&[log(id, 3, "second"), state(id, 4, RunState::Cancelled)], true).await.unwrap();
        store.append_events(&[state(id, 5, RunState::Running)], false).await.unwrap();

        let logs = store.run_logs(id).await.unwrap();
        assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["first"], "{name}");
        assert_eq!(store.run_summary(id).await.unwrap().unwrap().state, RunState::Cancelled, "{name}");
    }
}

#[tokio::test]
async fn one_idempotency_key_makes_one_run() {
    for (name, store, _dir) in stores().await {
        let first = new_run("p", Some("key-1"));
        let first_id = first.created.event.run_id;
        store.create_run(first).await.unwrap();

        let again = store.create_run(new_run("p", Some("key-1"))).await.unwrap();

        assert_eq!(again, Created::Existing(first_id), "{name}");
        assert_eq!(store.run_for_idempotency_key("key-1").await.unwrap(), Some(first_id), "{name}");
        assert_eq!(store.list_runs(&RunQuery { limit: 10, ..RunQuery::default() }).await.unwrap().len(), 1, "{name}");
    }
}

#[tokio::test]
async fn history_is_newest_first_filters_by_state_and_pages_before_a_run() {
    for (name, store, _dir) in stores().await {
        let mut ids = Vec::new();
        for n in 0..5 {
            let run = new_run(&format!("run {n}"), None);
            let id = run.created.event.run_id;
            store.create_run(run).await.unwrap();
            let end = if n % 2 == 0 { RunState::Completed } else { RunState::Failed };
            store.append_events(&[state(id, 2, RunState::Running), state(id, 3, end)], true).await.unwrap();
            ids.push(id);
        }
        let all = store.list_runs(&RunQuery { limit: 10, ..RunQuery::default() }).await.unwrap();
        assert_eq!(
            all.iter().map(|r| r.id).collect::<Vec<_>>(),
            ids.iter().rev().copied().collect::<Vec<_>>(),
            "{name}"
        );

        let failed = store
            .list_runs(&RunQuery { limit: 10, state: Some(RunState::Failed), ..RunQuery::default() })
            .await
            .unwrap();
        assert_eq!(failed.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[3], ids[1]], "{name}");

        let page = store.list_runs(&RunQuery { limit: 2, before: Some(ids[3]), ..RunQuery::default() }).await.unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[2], ids[1]], "{name}");
    }
}

#[tokio::test]
async fn a_replica_whose_run_was_taken_over_has_its_late_writes_refused() {
    let url = fresh_database().await;
    let first = joined(&url, "first", Duration::from_millis(300)).await;
    let run = new_run("p", None);
    let id = run.created.event.run_id;
    first.create_run(run).await.unwrap();
    first.append_events(&[state(id, 2, RunState::Running)], false).await.unwrap();

    // The first replica's lease runs out without a heartbeat; a second replica claims the run.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = joined(&url, "second", Duration::from_secs(30)).await;
    let claimed = second.claim_orphans(10).await.unwrap();
    assert_eq!(claimed.iter().map(|c| (c.id, c.from.as_str())).collect::<Vec<_>>(), [(id, "first")]);
    assert_eq!(claimed[0].events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2], "what the first stored");

    let late = first.append_events(&[log(id, 3, "late, from the first")], false).await.unwrap();
    let fresh = second.append_events(&[log(id, 3, "from the second")], false).await.unwrap();

    assert_eq!(late.fenced, [id], "the first replica is fenced");
    assert_eq!(fresh, Stored::default());
    let logs = second.run_logs(id).await.unwrap();
    assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["from the second"]);
    let epochs: Vec<i64> = sqlx::query_scalar("SELECT epoch FROM events WHERE run_id = $1 AND seq = 3")
        .bind(id.to_string())
        .fetch_all(second.pool())
        .await
        .unwrap();
    assert_eq!(epochs, [2], "the stored event carries the second owner's epoch");
}

#[tokio::test]
async fn an_expired_lease_cannot_be_renewed_and_its_writes_are_refused_even_before_a_takeover() {
    let url = fresh_database().await;
    let replica = joined(&url, "slow", Duration::from_millis(200)).await;
    let run = new_run("p", None);
    let id = run.created.event.run_id;
    replica.create_run(run).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(replica.renew(Duration::from_secs(5)).await.unwrap(), None, "a lost lease stays lost");
    let stored = replica.append_events(&[state(id, 2, RunState::Running)], false).await.unwrap();
    assert_eq!(stored.fenced, [id]);
    assert_eq!(replica.run_events(id, 0).await.unwrap().len(), 1, "only run_created");
}

#[tokio::test]
async fn replicas_claiming_at_the_same_moment_never_claim_the_same_run() {
    let url = fresh_database().await;
    let dead = joined(&url, "dead", Duration::from_millis(200)).await;
    let mut runs = Vec::new();
    for n in 0..40 {
        let run = new_run(&format!("{n}"), None);
        runs.push(run.created.event.run_id);
        dead.create_run(run).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rescuers =
        futures_util::future::join_all((0..3).map(|n| joined(&url, ["a", "b", "c"][n], Duration::from_secs(30)))).await;

    let claims = futures_util::future::join_all(rescuers.iter().map(|r| async move {
        let mut mine = Vec::new();
        loop {
            let claimed = r.claim_orphans(4).await.unwrap();
            if claimed.is_empty() {
                return mine;
            }
            mine.extend(claimed.into_iter().map(|c| c.id));
        }
    }))
    .await;

    let mut all: Vec<RunId> = claims.concat();
    all.sort();
    runs.sort();
    assert_eq!(all, runs, "every run claimed exactly once");
}

#[tokio::test]
async fn the_submission_allowance_is_shared_by_every_replica() {
    let url = fresh_database().await;
    let replicas = [joined(&url, "a", Duration::from_secs(30)).await, joined(&url, "b", Duration::from_secs(30)).await];
    let mut allowed = 0;
    let mut refused = Vec::new();
    for n in 0..12 {
        match replicas[n % 2].take_submission(6).await.unwrap() {
            None => allowed += 1,
            Some(wait) => refused.push(wait),
        }
    }
    // Six at once, then a token every 10 s: within this test's few milliseconds, none more.
    assert_eq!(allowed, 6);
    assert_eq!(refused.len(), 6);
    assert!(
        refused.iter().all(|wait| *wait > Duration::from_secs(9) && *wait <= Duration::from_secs(10)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_prompts_table_journals_each_prompt_with_its_length_and_checksum() {
    let url = fresh_database().await;
    let store = joined(&url, "a", Duration::from_secs(30)).await;
    let prompt = "Summarise: PostgreSQL is the journal now.";
    let run = new_run(prompt, None);
    let id = run.created.event.run_id;
    store.create_run(run).await.unwrap();

    let row = store.prompt(id).await.unwrap().expect("a row");
    assert_eq!((row.prompt.as_str(), row.bytes, row.crc32), (prompt, prompt.len() as u64, crc32(prompt)));
    let journal = backend::journal::PromptTable::new(store.pool().clone());
    let reference = RecordRef { offset: 0, len: prompt.len() as u64, crc32: crc32(prompt) };
    assert_eq!(journal.read(id, reference).await.unwrap(), prompt);
    let damaged = RecordRef { crc32: reference.crc32 ^ 1, ..reference };
    assert!(journal.read(id, damaged).await.is_err(), "a checksum that does not match is refused");
}
