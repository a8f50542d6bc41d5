use std::time::{Duration, Instant};

use common::{FaultKind, FaultPlan, RunState, TaskName, TaskState};
use reqwest::StatusCode;
use tests::{attempts, error_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_streaming_run_can_be_cancelled_and_only_once() {
    let app = spawn_app_with(|args| args.app.emulator_tokens_per_sec = 10).await;
    let run = app.submit("A long answer I will not wait for").await;
    app.wait_until_streaming(run.id).await;

    let cancelled_at = Instant::now();
    let response = app.cancel(&run.id.to_string()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let run = app.wait_for_state(run.id, RunState::Cancelled).await;
    assert!(cancelled_at.elapsed() < Duration::from_secs(2), "cancelling a stream is prompt");
    assert!(run.error.is_some(), "a cancelled run says so");
    let call = attempts(&run, TaskName::CallBedrock).last().unwrap();
    assert_eq!(call.state, TaskState::Cancelled);
    assert!(call.finished_at.is_some());
    assert_eq!(run.tasks[1].state, TaskState::Cancelled);

    let (status, message) = error_of(app.cancel(&run.id.to_string()).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(message.contains("Cancelled"), "{message}");
    // A terminal state never changes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.run(run.id).await, run);
}

#[tokio::test]
async fn a_run_awaiting_a_retry_is_cancelled_without_waiting_for_the_delay() {
    let app = spawn_app_with(|args| args.app.bedrock_retry_delay_secs = 5.0).await;
    app.inject(FaultPlan { kind: FaultKind::Throttle, fail_first: 3, every_nth: 0 }).await;
    let run = app.submit("Throttled, then cancelled").await;
    app.wait_for(run.id, "call_bedrock awaiting its retry", |d| d.tasks[1].state == TaskState::AwaitingRetry).await;

    let cancelled_at = Instant::now();
    assert_eq!(app.cancel(&run.id.to_string()).await.status(), StatusCode::ACCEPTED);
    let run = app.wait_for_state(run.id, RunState::Cancelled).await;
    assert!(cancelled_at.elapsed() < Duration::from_secs(2), "took {:?}", cancelled_at.elapsed());
    assert_eq!(attempts(&run, TaskName::CallBedrock).len(), 1, "no attempt after the cancel");
    assert_eq!(run.tasks[1].state, TaskState::Cancelled);
}

#[tokio::test]
async fn cancelling_a_completed_run_is_a_conflict() {
    let app = spawn_app().await;
    let run = app.submit("Done before you cancel").await;
    app.wait_for_state(run.id, RunState::Completed).await;
    let (status, _) = error_of(app.cancel(&run.id.to_string()).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.run(run.id).await.state, RunState::Completed);
}

#[tokio::test]
async fn cancelling_an_unknown_run_is_a_404_and_a_malformed_id_a_400() {
    let app = spawn_app().await;
    let (status, _) = error_of(app.cancel(&uuid::Uuid::now_v7().to_string()).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = error_of(app.cancel("not-a-run-id").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
