use backend::emulator::reply_for;
use common::{FaultKind, FaultPlan, RunState, TaskName, TaskState};
use tests::{attempts, spawn_app, unique_prompt};

fn fail_first(kind: FaultKind, n: u32) -> FaultPlan {
    FaultPlan { kind, fail_first: n, every_nth: 0 }
}

#[tokio::test]
async fn a_run_throttled_twice_completes_on_the_third_call_bedrock_attempt() {
    let app = spawn_app().await;
    app.inject(fail_first(FaultKind::Throttle, 2)).await;
    let prompt = unique_prompt("Throttle me twice");
    let run = app.submit(&prompt).await;

    let run = app.wait_for_state(run.id, RunState::Completed).await;
    assert_eq!(run.response.as_deref(), Some(reply_for(&prompt).as_str()), "only the last attempt's text is kept");
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 3, "{calls:#?}");
    for (i, failed) in calls[..2].iter().enumerate() {
        assert_eq!(failed.number, i as u32 + 1);
        assert_eq!(failed.state, TaskState::AwaitingRetry);
        let error = failed.error.as_deref().unwrap_or_default().to_lowercase();
        assert!(error.contains("throttl"), "attempt {} error mentions throttling: {error:?}", failed.number);
        assert_eq!(failed.retryable, Some(true));
        assert_eq!(failed.http_status, Some(429));
        assert_eq!(failed.retry_delay_ms, Some(50), "the configured 0.05 s delay, no jitter");
        assert!(failed.request_id.is_some(), "AWS request id of the failed call");
        assert!(failed.finished_at.is_some());
    }
    assert_eq!(calls[2].state, TaskState::Completed);
    assert_eq!(calls[2].http_status, Some(200));
    assert_eq!(attempts(&run, TaskName::LoadPromptFile).len(), 1, "load_prompt_file is not repeated");
    assert_eq!(app.app.emulator().expect("the test app runs on the emulator").status().calls, 3);

    let logs = app.logs(run.id).await;
    for attempt in 1..=3 {
        assert!(
            logs.iter().any(|l| l.task == Some(TaskName::CallBedrock) && l.attempt == Some(attempt)),
            "no log line of call_bedrock attempt {attempt}"
        );
    }
    assert!(
        logs.iter().any(|l| l.attempt == Some(1) && l.message.to_lowercase().contains("throttl")),
        "the throttling is logged with its attempt: {logs:#?}"
    );
}

#[tokio::test]
async fn a_run_throttled_three_times_fails_after_exactly_three_attempts() {
    let app = spawn_app().await;
    app.inject(fail_first(FaultKind::Throttle, 3)).await;
    let run = app.submit("Throttle me thrice").await;

    let run = app.wait_for_state(run.id, RunState::Failed).await;
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(calls[..2].iter().all(|a| a.state == TaskState::AwaitingRetry));
    assert_eq!(calls[2].state, TaskState::Failed);
    assert_eq!(calls[2].retry_delay_ms, None, "no retry after the last attempt");
    assert!(calls.iter().all(|a| a.http_status == Some(429)));
    let task = run.tasks.iter().find(|t| t.name == TaskName::CallBedrock).unwrap();
    assert_eq!(task.state, TaskState::Failed);
    let error = run.error.as_deref().expect("a failed run says why");
    assert!(error.to_lowercase().contains("throttl"), "{error}");
    assert!(run.response.is_none(), "no response: {:?}", run.response);
    // Nothing more is called after the run gave up.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(app.app.emulator().expect("the test app runs on the emulator").status().calls, 3);
}

#[tokio::test]
async fn server_errors_and_unavailability_are_retried_too() {
    let app = spawn_app().await;
    for (kind, status) in [(FaultKind::Internal, 500), (FaultKind::Unavailable, 503)] {
        app.inject(fail_first(kind, 1)).await;
        let run = app.submit(&unique_prompt(kind.as_str())).await;
        let run = app.wait_for_state(run.id, RunState::Completed).await;
        let calls = attempts(&run, TaskName::CallBedrock);
        assert_eq!(calls.len(), 2, "{kind:?}: {calls:#?}");
        assert_eq!((calls[0].http_status, calls[0].retryable), (Some(status), Some(true)), "{kind:?}");
    }
}

#[tokio::test]
async fn a_stalled_stream_is_retried_after_the_idle_timeout() {
    let app = tests::spawn_app_with(|args| args.app.stream_idle_timeout_secs = 0.3).await;
    app.inject(fail_first(FaultKind::Stall, 1)).await;
    let prompt = unique_prompt("Stall then answer");
    let run = app.submit(&prompt).await;
    let run = app.wait_for_state(run.id, RunState::Completed).await;
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].retryable, Some(true));
    assert_eq!(run.response.as_deref(), Some(reply_for(&prompt).as_str()), "the stalled partial text is dropped");
}

#[tokio::test]
async fn a_validation_error_fails_the_run_after_one_attempt() {
    let app = spawn_app().await;
    app.inject(fail_first(FaultKind::Validation, 1)).await;
    let run = app.submit("Invalid on purpose").await;

    let run = app.wait_for_state(run.id, RunState::Failed).await;
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].state, TaskState::Failed);
    assert_eq!(calls[0].retryable, Some(false));
    assert_eq!(calls[0].http_status, Some(400));
    assert!(run.error.is_some());
    assert_eq!(app.app.emulator().expect("the test app runs on the emulator").status().calls, 1);
}

#[tokio::test]
async fn an_unknown_model_fails_the_run_after_one_attempt_with_the_services_message() {
    let app = spawn_app().await;
    let run = app.submit_json(&serde_json::json!({ "prompt": "Hello llama", "model_id": "meta.llama3" })).await;
    assert_eq!(run.model_id, "meta.llama3");

    let run = app.wait_for_state(run.id, RunState::Failed).await;
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].retryable, Some(false));
    let message = "The provided model identifier is invalid.";
    assert!(calls[0].error.as_deref().unwrap_or_default().contains(message), "{:?}", calls[0].error);
    assert!(run.error.as_deref().unwrap_or_default().contains(message), "{:?}", run.error);
}
