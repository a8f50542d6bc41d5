//! Load: many WebSocket watchers while hundreds of runs stream (every event to every client,
//! in order, memory back near idle), and history queries over 10,000 stored runs under load.

use std::time::{Duration, Instant};

use backend::store::{SqliteStore, Synchronous, seed_finished_runs};
use common::{RunId, RunState, RunSummary};
use tests::{BinaryServer, TestDirs, serve_flags, spawn_app_in, unique_prompt};

use crate::support::{long, percentile, try_submit};
use crate::websocket::verify_feeds;

#[tokio::test]
async fn fifty_watchers_receive_every_event_of_two_hundred_runs_in_order() {
    let (clients, runs, over) = if long() { (200, 1000, Duration::from_secs(60)) } else { (50, 200, Duration::ZERO) };
    let dirs = TestDirs::new();
    let server = BinaryServer::start(&serve_flags(&dirs), &[]).await;
    let _ = try_submit(&reqwest::Client::new(), &server.address, "warm up").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = server.rss_kib();

    let mut watchers = Vec::new();
    for _ in 0..clients {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/api/ws", server.port)).await.unwrap();
        watchers.push(tokio::spawn(crate::websocket::watch_all_pub(socket, runs)));
    }
    let started = Instant::now();
    let client = reqwest::Client::new();
    let pause = over / u32::try_from(runs).unwrap();
    let mut submitters = Vec::new();
    for worker in 0..4 {
        let (client, address) = (client.clone(), server.address.clone());
        submitters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in (worker..runs).step_by(4) {
                ids.push(try_submit(&client, &address, &unique_prompt("load")).await.expect("accepted"));
                tokio::time::sleep(pause * 4).await;
            }
            ids
        }));
    }
    let mut ids: Vec<RunId> = Vec::new();
    let mut peak = idle;
    for submitter in submitters {
        ids.extend(submitter.await.unwrap());
        peak = peak.max(server.rss_kib());
    }
    let mut feeds = Vec::new();
    for watcher in watchers {
        feeds.push(watcher.await.unwrap());
        peak = peak.max(server.rss_kib());
    }
    let elapsed = started.elapsed();
    let total = verify_feeds(&server.address, &ids, feeds).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib();
    assert!(after < idle * 3 + 64 * 1024, "RSS idle {idle} KiB, after the load {after} KiB");
    eprintln!(
        "FIGURE load: {clients} WS clients × {runs} runs in {elapsed:?}: {total} events delivered, every run's \
         events 1..=last in order at every client; RSS idle {idle} KiB, peak {peak} KiB, after {after} KiB"
    );
}

#[tokio::test]
async fn listing_and_filtering_ten_thousand_runs_stays_correct_under_load() {
    let dirs = TestDirs::new();
    let seeding = Instant::now();
    let store = SqliteStore::open(&dirs.data_dir, Synchronous::Normal).await.unwrap();
    seed_finished_runs(&store, 10_000, backend::config::DEFAULT_MODEL_ID).await.unwrap();
    drop(store);
    let seeded_in = seeding.elapsed();
    let app = spawn_app_in(dirs, |_| {}).await;

    // Submissions keep running while the history is queried.
    let load = {
        let (client, address) = (app.client.clone(), app.address.clone());
        tokio::spawn(async move {
            let mut accepted = 0u32;
            loop {
                if try_submit(&client, &address, &unique_prompt("background")).await.is_some() {
                    accepted += 1;
                }
                if accepted >= 2000 {
                    return accepted;
                }
            }
        })
    };
    let (mut plain, mut filtered) = (Vec::new(), Vec::new());
    for n in 0..200 {
        let query = if n % 2 == 0 { "limit=50" } else { "limit=50&state=Failed" };
        let started = Instant::now();
        let response = app.list_runs(query).await;
        assert_eq!(response.status(), 200);
        let runs: Vec<RunSummary> = response.json().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(runs.len(), 50, "{query}");
        assert!(runs.windows(2).all(|w| w[0].created_at >= w[1].created_at), "{query}: newest first");
        if n % 2 == 0 {
            plain.push(elapsed);
        } else {
            assert!(runs.iter().all(|r| r.state == RunState::Failed), "{query}");
            filtered.push(elapsed);
        }
    }
    load.abort();
    let background = app.runs().await.len();
    eprintln!(
        "FIGURE history: 10,000 runs seeded in {seeded_in:?}; with submissions running, GET /api/runs?limit=50 \
         p50 {:?} p99 {:?}; &state=Failed p50 {:?} p99 {:?} (debug build, 100 samples each; {background} runs in \
         the newest page of 1000)",
        percentile(&mut plain, 50.0),
        percentile(&mut plain, 99.0),
        percentile(&mut filtered, 50.0),
        percentile(&mut filtered, 99.0),
    );
}

/// Waits until the server runs nothing and holds no run in memory (finished runs leave memory
/// 10 s after they end), as its metrics say.
async fn wait_until_memory_is_empty(server: &BinaryServer) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
        let in_flight = tests::metric(&text, "app_runs_in_flight").expect("the in-flight gauge is exported");
        let in_memory = tests::metric(&text, "app_runs_in_memory").expect("the in-memory gauge is exported");
        if in_flight == 0.0 && in_memory == 0.0 {
            return;
        }
        assert!(Instant::now() < deadline, "runs still held after 120 s: {in_flight} in flight, {in_memory} in memory");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn memory_returns_near_its_idle_level_after_a_thousand_runs() {
    let dirs = TestDirs::new();
    let server = BinaryServer::start(&serve_flags(&dirs), &[]).await;
    // A server that has served some runs is idle in its working shape: connection pools,
    // SQLite's page caches (bounded per connection) and the runtime's buffers exist. Idle is
    // measured there, so what is compared is what the burst itself left behind.
    crate::websocket::submit_many(&server.address, 300, 8).await;
    wait_until_memory_is_empty(&server).await;
    let idle = server.rss_kib();

    let started = Instant::now();
    let ids = crate::websocket::submit_many(&server.address, 1000, 8).await;
    let accepted = started.elapsed();
    let mut peak = server.rss_kib();
    wait_until_memory_is_empty(&server).await;
    peak = peak.max(server.rss_kib());
    let after = server.rss_kib();

    assert_eq!(ids.len(), 1000);
    // Within 20 % of idle: 10 × after ≤ 12 × idle.
    assert!(after * 10 <= idle * 12, "RSS idle {idle} KiB, after 1,000 runs {after} KiB (peak {peak} KiB)");
    eprintln!(
        "FIGURE memory after a burst: 1,000 runs accepted in {accepted:?}; RSS idle {idle} KiB, at the end of \
         the burst {peak} KiB, once the runs left memory {after} KiB ({:+.1} %)",
        (after as f64 / idle as f64 - 1.0) * 100.0
    );
}
