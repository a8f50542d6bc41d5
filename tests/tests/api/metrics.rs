use common::{BatchSummary, FaultKind, FaultPlan, RunState};
use serde_json::json;
use tests::{eventually, metric, spawn_app};

#[tokio::test]
async fn metrics_count_completed_failed_and_retried_runs() {
    let app = spawn_app().await;
    let before = app.metrics().await;
    assert_eq!(metric(&before, r#"app_runs_finished_total{state="Completed"}"#), None, "no run has finished yet");

    let ok = app.submit("Count me").await;
    app.wait_for_state(ok.id, RunState::Completed).await;
    app.inject(FaultPlan { kind: FaultKind::Validation, fail_first: 1, every_nth: 0 }).await;
    let failed = app.submit("Fail me").await;
    app.wait_for_state(failed.id, RunState::Failed).await;
    app.inject(FaultPlan { kind: FaultKind::Throttle, fail_first: 1, every_nth: 0 }).await;
    let retried = app.submit("Retry me").await;
    app.wait_for_state(retried.id, RunState::Completed).await;

    let text = app.metrics().await;
    let expect = [
        (r#"app_runs_finished_total{state="Completed"}"#, 2.0),
        (r#"app_runs_finished_total{state="Failed"}"#, 1.0),
        (r#"app_task_attempts_total{task="call_bedrock",outcome="ok"}"#, 2.0),
        (r#"app_task_attempts_total{task="call_bedrock",outcome="throttled"}"#, 1.0),
        (r#"app_task_attempts_total{task="call_bedrock",outcome="validation"}"#, 1.0),
        (r#"app_task_attempts_total{task="load_prompt_file",outcome="ok"}"#, 3.0),
        (r#"app_task_retries_total{task="call_bedrock"}"#, 1.0),
        ("app_runs_in_flight", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(metric(&text, series), Some(value), "{series} in\n{text}");
    }
    let posts = metric(&text, r#"app_http_requests_total{route="/api/runs",method="POST",status="202"}"#);
    assert!(posts.is_some_and(|n| n >= 3.0), "{text}");
}

#[tokio::test]
async fn metrics_count_batch_items_and_show_each_models_pace_and_throttles() {
    let app = spawn_app().await;
    app.inject(FaultPlan { kind: FaultKind::Throttle, fail_first: 1, every_nth: 0 }).await;
    let response = app.client.post(app.url("/api/batches")).json(&json!({ "prompts": ["a", "b", "c"] })).send().await;
    let batch: BatchSummary = response.unwrap().json().await.unwrap();
    // The scheduler counts an item once it sees its run's end, just after the store does.
    let text = eventually("the scheduler to count the batch's three items ended", || async {
        let text = app.metrics().await;
        (metric(&text, r#"app_batch_items_ended_total{state="Completed"}"#) == Some(3.0)).then_some(text)
    })
    .await;
    let model = format!("model=\"{}\"", batch.model_id);
    assert_eq!(metric(&text, "app_batch_items_started_total"), Some(3.0), "{text}");
    assert_eq!(metric(&text, &format!("app_batch_throttles_total{{{model}}}")), Some(1.0), "{text}");
    assert_eq!(metric(&text, &format!("app_batch_calls_in_flight{{{model}}}")), Some(0.0), "{text}");
    let limit = metric(&text, &format!("app_batch_concurrency_limit{{{model}}}"));
    assert!(limit.is_some_and(|limit| limit >= 1.0), "{text}");
}
