use std::time::{Duration, Instant};

use backend::emulator::reply_for;
use common::RunState;
use tests::{spawn_app_in, spawn_app_with, unique_prompt};

#[tokio::test]
async fn a_run_still_streaming_when_the_grace_period_ends_is_marked_interrupted() {
    let app = spawn_app_with(|args| {
        args.shutdown_grace_secs = 0.2;
        args.app.emulator_tokens_per_sec = 5;
    })
    .await;
    let run = app.submit("Too slow to finish before shutdown").await;
    app.wait_until_streaming(run.id).await;

    let stopping = Instant::now();
    let dirs = app.stop().await; // fails the test if run_until_stopped does not return
    assert!(stopping.elapsed() < Duration::from_secs(5), "shutdown took {:?}", stopping.elapsed());

    let app = spawn_app_in(dirs, |_| {}).await;
    if tests::on_postgres() {
        // A replica that shuts down hands its runs to the cluster: the next replica (here, the
        // restarted server) resumes this one at once instead of finding it interrupted.
        let run = app.wait_for_state(run.id, RunState::Completed).await;
        let calls = tests::attempts(&run, common::TaskName::CallBedrock);
        assert_eq!(calls.len(), 2, "{calls:#?}");
        assert_eq!(calls[0].state, common::TaskState::AwaitingRetry);
        return;
    }
    let run = app.run(run.id).await;
    assert_eq!(run.state, RunState::Crashed, "{run:#?}");
    let error = run.error.as_deref().unwrap_or_default();
    assert!(error.contains("interrupted"), "the shutdown recorded its own reason: {error}");
    assert!(run.tasks.iter().all(|t| t.state.is_terminal() || t.attempts.is_empty()), "{:#?}", run.tasks);
}

#[tokio::test]
async fn a_run_that_finishes_within_the_grace_period_completes() {
    let app = spawn_app_with(|args| {
        args.shutdown_grace_secs = 10.0;
        args.app.emulator_tokens_per_sec = 100;
    })
    .await;
    let prompt = unique_prompt("Finish me during shutdown");
    let run = app.submit(&prompt).await;
    app.wait_until_streaming(run.id).await;

    let dirs = app.stop().await;
    let app = spawn_app_in(dirs, |_| {}).await;
    let run = app.run(run.id).await;
    assert_eq!(run.state, RunState::Completed, "{run:#?}");
    assert_eq!(run.response.as_deref(), Some(reply_for(&prompt).as_str()));
}

#[tokio::test]
async fn shutdown_closes_open_websockets() {
    let app = spawn_app_with(|args| args.app.emulator_tokens_per_sec = 5).await;
    let run = app.submit("Watch me while the server stops").await;
    let mut feed = app.ws_follow(run.id, 0).await;
    let _ = feed.next_event().await;
    let _dirs = app.stop().await;
    assert!(feed.closed_within(Duration::from_secs(5)).await, "the WebSocket is closed at shutdown");
}
