//! The built-in emulator's per-model quota, seen through the real SDK and the flow's retries:
//! calls over it are throttled as Bedrock throttles them, and the fault panel's endpoint shows it.
//!
//! Each test's runs happen well within one minute, so nothing slides out of the quota's window
//! while it runs, and no outcome depends on timing.

use common::{EmulatorStatus, Quota, RunDetail, RunState, TaskName, TaskState};
use reqwest::StatusCode;
use tests::{TestApp, attempts, spawn_app_with, unique_prompt};

/// `GET /api/emulator/faults`, as the fault panel reads it.
async fn emulator_status(app: &TestApp) -> EmulatorStatus {
    let response = app.client.get(app.url("/api/emulator/faults")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET /api/emulator/faults");
    response.json().await.unwrap()
}

/// Asserts that every `call_bedrock` attempt of `run` was refused with a 429 throttling error,
/// and that the run gave up after the test settings' 1 + 2 attempts.
fn assert_throttled_out(run: &RunDetail) {
    assert_eq!(run.state, RunState::Failed, "{:?}", run.error);
    let calls = attempts(run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 3, "the first attempt and both retries: {calls:#?}");
    for call in calls {
        assert_eq!(call.http_status, Some(429), "attempt {}", call.number);
        let error = call.error.as_deref().unwrap_or_default().to_lowercase();
        assert!(error.contains("throttl"), "attempt {} error mentions throttling: {error:?}", call.number);
        assert_eq!(call.retryable, Some(true), "attempt {}", call.number);
    }
    assert_eq!(calls[2].state, TaskState::Failed);
    assert!(run.response.is_none(), "no response: {:?}", run.response);
}

#[tokio::test]
async fn a_third_run_within_a_minute_is_throttled_out_by_a_quota_of_two_requests_per_minute() {
    let app = spawn_app_with(|args| args.app.emulator_quota_rpm = 2).await;
    assert_eq!(
        emulator_status(&app).await.quota,
        Some(Quota { rpm: 2, tpm: 0 }),
        "the fault panel's endpoint shows the quota"
    );

    for n in 1..=2 {
        let run = app.submit(&unique_prompt(&format!("Within the quota, call {n}"))).await;
        let run = app.wait_for_state(run.id, RunState::Completed).await;
        let calls = attempts(&run, TaskName::CallBedrock);
        assert_eq!(calls.len(), 1, "run {n} is admitted at once: {calls:#?}");
        assert_eq!(calls[0].http_status, Some(200));
    }

    let run = app.submit(&unique_prompt("Over the quota")).await;
    let run = app.wait_until_finished(run.id).await;
    assert_throttled_out(&run);

    let status = emulator_status(&app).await;
    assert_eq!(status.calls, 2 + 3, "two admitted calls, then three refused attempts");
    assert_eq!(status.throttled, 3, "only the quota's refusals count as throttled");
    assert_eq!(status.plan, None, "the quota is not a fault plan");
}

#[tokio::test]
async fn the_request_quota_is_per_model() {
    let app = spawn_app_with(|args| args.app.emulator_quota_rpm = 1).await;
    let first = app.submit(&unique_prompt("The default model's one call")).await;
    app.wait_for_state(first.id, RunState::Completed).await;

    let other = app
        .submit_json(&serde_json::json!({
            "prompt": unique_prompt("Another model's own quota"),
            "model_id": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        }))
        .await;
    let other = app.wait_for_state(other.id, RunState::Completed).await;
    assert_eq!(attempts(&other, TaskName::CallBedrock).len(), 1, "not held back by the default model's quota");

    let over = app.submit(&unique_prompt("The default model again")).await;
    assert_throttled_out(&app.wait_until_finished(over.id).await);
    assert_eq!(emulator_status(&app).await.throttled, 3);
}

#[tokio::test]
async fn a_call_larger_than_the_token_quota_is_throttled_on_every_attempt() {
    // Any prompt and its reply take more than one token.
    let app = spawn_app_with(|args| args.app.emulator_quota_tpm = 1).await;
    assert_eq!(emulator_status(&app).await.quota, Some(Quota { rpm: 0, tpm: 1 }));

    let run = app.submit(&unique_prompt("Too many tokens")).await;
    assert_throttled_out(&app.wait_until_finished(run.id).await);
    let status = emulator_status(&app).await;
    assert_eq!((status.calls, status.throttled), (3, 3));
}

#[tokio::test]
async fn without_a_quota_the_status_says_so_and_nothing_is_throttled() {
    let app = spawn_app_with(|_| {}).await;
    let run = app.submit(&unique_prompt("No quota")).await;
    app.wait_for_state(run.id, RunState::Completed).await;
    let status = emulator_status(&app).await;
    assert_eq!((status.quota, status.throttled), (None, 0));
}
