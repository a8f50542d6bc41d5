//! SIGTERM and SIGINT to the real binary: WebSockets get a close frame, runs in flight finish
//! or are marked interrupted within the grace period, and the process exits 0.

use std::time::{Duration, Instant};

use common::RunState;
use futures_util::StreamExt;
use tests::{BinaryServer, TestDirs, serve_flags, spawn_app_in, unique_prompt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::try_submit;

const GRACE_SECS: f64 = 1.0;
/// Time the process may take beyond the grace period (draining, storing the last events).
const MARGIN: Duration = Duration::from_secs(3);

async fn stops_cleanly_on(signal: &str) {
    let dirs = TestDirs::new();
    let mut flags = serve_flags(&dirs);
    flags.insert("--shutdown-grace-secs", GRACE_SECS.to_string());
    // Slow enough that one run is still streaming at the signal, fast enough that short ones end.
    flags.insert("--emulator-tokens-per-sec", "20".to_owned());
    let mut server = BinaryServer::start(&flags, &[]).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(try_submit(&client, &server.address, &unique_prompt("shut down around me")).await.unwrap());
    }
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/api/ws", server.port)).await.unwrap();
    // Wait for streaming to start, so the runs are truly in flight.
    let deadline = Instant::now() + tests::DEADLINE;
    loop {
        let message = tokio::time::timeout_at(deadline.into(), socket.next()).await.unwrap().unwrap().unwrap();
        if matches!(&message, Message::Text(text) if text.contains("\"type\":\"delta\"")) {
            break;
        }
    }

    let signalled = Instant::now();
    server.signal(signal);
    // The socket ends with a close frame (after any events still queued).
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("SIG{signal}: the WebSocket ended without a close frame: {other:?}"),
        }
    };
    let close_after = signalled.elapsed();
    let status = server
        .exited_within(Duration::from_secs_f64(GRACE_SECS) + MARGIN)
        .await
        .unwrap_or_else(|| panic!("SIG{signal}: still running {:?} after the signal", signalled.elapsed()));
    let exit_after = signalled.elapsed();
    assert!(status.success(), "SIG{signal}: exit status {status}\n{}", server.output());

    let app = spawn_app_in(dirs, |_| {}).await;
    let mut states = Vec::new();
    for id in ids {
        let run = app.run(id).await;
        let error = run.error.clone().unwrap_or_default();
        assert!(
            run.state == RunState::Completed || (run.state == RunState::Crashed && error.contains("interrupted")),
            "SIG{signal}: run {id} ended {} ({error})",
            run.state
        );
        states.push(run.state.to_string());
    }
    eprintln!(
        "FIGURE shutdown SIG{signal}: close frame {:?} after {close_after:?}; exit 0 after {exit_after:?} \
         (grace {GRACE_SECS} s); runs in flight ended {states:?}",
        close.map(|f| u16::from(f.code)),
    );
}

#[tokio::test]
async fn sigterm_closes_websockets_settles_runs_and_exits_0_within_the_grace_period() {
    stops_cleanly_on("TERM").await;
}

#[tokio::test]
async fn sigint_closes_websockets_settles_runs_and_exits_0_within_the_grace_period() {
    stops_cleanly_on("INT").await;
}
