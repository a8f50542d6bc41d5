//! `/api/batches`: many prompts, each an ordinary run, started by the scheduler; cancel,
//! restart and export.

use backend::config::ServeArgs;
use backend::emulator::reply_for;
use common::{BatchCounts, BatchItem, BatchSummary, ItemState, RunState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use tests::{TestApp, error_of, eventually, eventually_within, spawn_app_in, spawn_app_with};

async fn post_batch(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client.post(app.url("/api/batches")).json(body).send().await.unwrap()
}

async fn submit_batch(app: &TestApp, body: &Value) -> BatchSummary {
    let response = post_batch(app, body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "POST /api/batches {body}");
    response.json().await.unwrap()
}

async fn batch(app: &TestApp, batch: &BatchSummary) -> BatchSummary {
    let response = app.client.get(app.url(&format!("/api/batches/{}", batch.id))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn items(app: &TestApp, batch: &BatchSummary) -> Vec<BatchItem> {
    let url = app.url(&format!("/api/batches/{}/items?limit=1000", batch.id));
    app.client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn export(app: &TestApp, batch: &BatchSummary, format: &str) -> String {
    let url = app.url(&format!("/api/batches/{}/export?format={format}", batch.id));
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Waits until nothing more will happen to any item of the batch.
async fn until_finished(app: &TestApp, submitted: &BatchSummary) -> BatchCounts {
    eventually("every item of the batch to finish", || async {
        let counts = batch(app, submitted).await.counts;
        (counts.finished() == submitted.total).then_some(counts)
    })
    .await
}

#[tokio::test]
async fn every_item_of_a_batch_runs_as_an_ordinary_run_with_the_batch_settings() {
    let app = spawn_app_with(|_| {}).await;
    let prompts = ["Summarise the first ticket", "Classify the second ticket", "Translate the third"];
    let submitted = submit_batch(&app, &json!({ "prompts": prompts, "max_tokens": 300 })).await;
    assert_eq!(submitted.total, 3);
    assert_eq!(submitted.counts.queued, 3);

    let counts = until_finished(&app, &submitted).await;
    assert_eq!(counts, BatchCounts { completed: 3, ..BatchCounts::default() });
    let items = items(&app, &submitted).await;
    assert_eq!(items.iter().map(|item| item.prompt.as_str()).collect::<Vec<_>>(), prompts);
    for item in &items {
        assert_eq!(item.state, ItemState::Completed);
        let run = app.run(item.run_id.expect("a started item names its run")).await;
        assert_eq!(run.response.as_deref(), Some(reply_for(&item.prompt).as_str()), "item {}", item.index);
        assert_eq!(run.max_tokens, 300, "the batch's settings");
    }
    assert_eq!(app.runs().await.len(), 3, "one run per item, in the history like any other");
}

#[tokio::test]
async fn a_json_batch_takes_the_settings_its_body_leaves_out_from_the_query() {
    let app = spawn_app_with(|_| {}).await;
    let haiku = "anthropic.claude-haiku-4-5-20251001-v1:0";
    let url = app.url(&format!("/api/batches?model_id={haiku}&max_tokens=100"));
    let body = json!({ "prompts": ["Query settings fill the gaps"], "max_tokens": 300 });
    let response = app.client.post(url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let submitted: BatchSummary = response.json().await.unwrap();

    assert_eq!(submitted.model_id, haiku, "absent from the body: the query's");
    until_finished(&app, &submitted).await;
    let item = items(&app, &submitted).await.remove(0);
    let run = app.run(item.run_id.expect("a started item names its run")).await;
    assert_eq!((run.model_id.as_str(), run.max_tokens), (haiku, 300), "in the body: the body's");
}

#[tokio::test]
async fn a_template_batch_fills_each_row_and_exports_the_values_with_the_response() {
    let app = spawn_app_with(|_| {}).await;
    let body = json!({
        "template": "Write a haiku about {{topic}} in {{language}}",
        "rows": [{ "topic": "rain", "language": "French" }, { "topic": "tea", "language": "Welsh" }],
    });
    let submitted = submit_batch(&app, &body).await;
    until_finished(&app, &submitted).await;

    let jsonl = export(&app, &submitted, "jsonl").await;
    let lines: Vec<Value> = jsonl.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let prompt = "Write a haiku about tea in Welsh";
    assert_eq!(lines[1]["prompt"], prompt);
    assert_eq!(lines[1]["variables"], json!({ "language": "Welsh", "topic": "tea" }));
    assert_eq!(lines[1]["response"], reply_for(prompt));
    assert_eq!(lines[1]["state"], "Completed");
    assert!(lines[1]["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0));

    let csv = export(&app, &submitted, "csv").await;
    let mut records = csv.split("\r\n");
    assert_eq!(
        records.next(),
        Some(
            "index,state,run_id,prompt,variables,response,input_tokens,output_tokens,stop_reason,error,created_at,\
             started_at,finished_at,duration_ms"
        )
    );
    let first = records.next().unwrap_or_default();
    let run_id = lines[0]["run_id"].as_str().unwrap_or_default();
    let expected_start = format!(
        "0,Completed,{run_id},Write a haiku about rain in French,\"{{\"\"language\"\":\"\"French\"\",\"\"topic\"\":\"\"rain\"\"}}\","
    );
    assert!(first.starts_with(&expected_start), "{first}");
}

#[tokio::test]
async fn bad_batches_are_refused_naming_the_item_or_row_before_anything_runs() {
    let app = spawn_app_with(|_| {}).await;
    for (body, status, names) in [
        (json!({ "prompts": ["fine", " "] }), StatusCode::UNPROCESSABLE_ENTITY, "item 1: prompt must not be empty"),
        (
            json!({ "template": "{{a}} and {{b}}", "rows": [{ "a": "1", "b": "2" }, { "a": "3" }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "row 1: no value for `b`",
        ),
        (
            json!({ "template": "{{a}}", "rows": [{ "a": "1", "z": "2" }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "row 0: `z` is not a placeholder",
        ),
        (json!({ "prompts": [] }), StatusCode::UNPROCESSABLE_ENTITY, "no items"),
        (json!({ "prompts": ["a"], "template": "{{a}}" }), StatusCode::UNPROCESSABLE_ENTITY, "not both"),
        (json!({ "prompts": ["a"], "max_tokens": 0 }), StatusCode::UNPROCESSABLE_ENTITY, "item 0: max_tokens"),
    ] {
        let (got, message) = error_of(post_batch(&app, &body).await).await;
        assert_eq!(got, status, "{body}");
        assert!(message.contains(names), "{body}: {message}");
    }
    let (status, _) = error_of(post_batch(&app, &json!({ "prompts": ["a"], "colour": "red" })).await).await;
    assert!(status.is_client_error(), "an unknown field is refused: {status}");
    let missing = app.client.get(app.url("/api/batches/0190f5c8-0000-7000-8000-000000000001")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let malformed = app.client.get(app.url("/api/batches/nope")).send().await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert!(app.runs().await.is_empty(), "nothing ran");
}

#[tokio::test]
async fn too_many_items_are_refused_with_the_configured_limit() {
    let app = spawn_app_with(|args| args.app.max_batch_items = 2).await;
    let (status, message) = error_of(post_batch(&app, &json!({ "prompts": ["a", "b", "c"] })).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message.contains("the limit is 2"), "{message}");
}

/// One item at a time, each call slow: when the batch is cancelled, at most the one item in
/// flight has started, and it is cancelled too.
fn one_slow_item_at_a_time(args: &mut ServeArgs) {
    args.app.max_batch_concurrency = 1;
    args.app.emulator_latency_ms = 2_000;
}

#[tokio::test]
async fn a_cancelled_batch_never_starts_its_queued_items_and_cancels_the_one_in_flight() {
    let app = spawn_app_with(one_slow_item_at_a_time).await;
    let submitted = submit_batch(&app, &json!({ "prompts": ["one", "two", "three", "four", "five"] })).await;
    let response = app.client.post(app.url(&format!("/api/batches/{}/cancel", submitted.id))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let counts = until_finished(&app, &submitted).await;
    assert_eq!(counts.cancelled, 5, "{counts:?}");
    assert!(batch(&app, &submitted).await.cancelled);
    // A run being made as the cancel arrived is linked to its item and cancelled right after.
    let started = eventually("every run linked to its item and ended", || async {
        let started = items(&app, &submitted).await.iter().filter(|item| item.run_id.is_some()).count();
        let runs = app.runs().await;
        (runs.len() == started && runs.iter().all(|run| run.state.is_terminal())).then_some(started)
    })
    .await;
    assert!(started <= 1, "{started} items started");
}

#[tokio::test]
async fn a_batch_survives_a_restart_and_no_item_runs_twice() {
    let app = spawn_app_with(|args| args.app.max_batch_concurrency = 1).await;
    let prompts = ["first", "second", "third", "fourth"];
    let submitted = submit_batch(&app, &json!({ "prompts": prompts })).await;
    eventually("one item to complete", || async {
        (batch(&app, &submitted).await.counts.completed >= 1).then_some(())
    })
    .await;

    let app = spawn_app_in(app.stop().await, |args| args.app.max_batch_concurrency = 1).await;
    let counts = until_finished(&app, &submitted).await;
    // An item in flight at the restart follows the rule of every run: it finishes within the
    // shutdown grace or ends `Crashed`. None is queued or run again.
    assert_eq!(counts.completed + counts.crashed, 4, "{counts:?}");
    assert!(counts.crashed <= 1, "{counts:?}");
    let runs = app.runs().await;
    assert_eq!(runs.len(), 4, "one run per item across the restart: {runs:#?}");
    assert!(runs.iter().all(|run| matches!(run.state, RunState::Completed | RunState::Crashed)));
    let items = items(&app, &submitted).await;
    let mut run_ids: Vec<_> = items.iter().filter_map(|item| item.run_id).collect();
    run_ids.sort();
    run_ids.dedup();
    assert_eq!(run_ids.len(), 4, "every item has its own run");
}

#[tokio::test]
async fn a_single_run_submitted_during_a_batch_starts_at_once() {
    let app = spawn_app_with(one_slow_item_at_a_time).await;
    let submitted = submit_batch(&app, &json!({ "prompts": ["one", "two", "three", "four"] })).await;
    eventually("a batch item in flight", || async {
        let counts = batch(&app, &submitted).await.counts;
        (counts.pending + counts.running == 1).then_some(())
    })
    .await;

    // The batch holds its one slot with three items queued behind it; the single run does not queue.
    let single = app.submit("Not part of any batch").await;
    app.wait_for(single.id, "the single run to start", |run| run.state != RunState::Pending).await;
    let counts = batch(&app, &submitted).await.counts;
    assert!(counts.queued >= 2, "the batch is still waiting: {counts:?}");
}

#[tokio::test]
async fn a_batch_over_its_quota_learns_the_quota_waits_for_the_minute_and_fails_no_item() {
    const QUOTA: u64 = 30;
    const ITEMS: usize = 40;
    let app = spawn_app_with(|args| args.app.emulator_quota_rpm = QUOTA as u32).await;
    let prompts: Vec<String> = (0..ITEMS).map(|n| format!("Item {n} of a batch over its quota")).collect();
    let submitted = submit_batch(&app, &json!({ "prompts": prompts })).await;

    // The first 30 calls of the minute get in; the other 10 items wait for it to slide on.
    let counts = eventually_within(Duration::from_secs(180), "every item of the batch to finish", || async {
        let counts = batch(&app, &submitted).await.counts;
        (counts.finished() == submitted.total).then_some(counts)
    })
    .await;
    assert_eq!(counts, BatchCounts { completed: ITEMS as u64, ..BatchCounts::default() }, "no item failed");
    let detail: Value =
        app.client.get(app.url(&format!("/api/batches/{}", submitted.id))).send().await.unwrap().json().await.unwrap();
    let per_minute = detail["pace"]["per_minute"].as_u64().expect("a budget learnt from the first throttle");
    assert!((QUOTA - 2..=QUOTA + 2).contains(&per_minute), "the budget {per_minute} is the quota of {QUOTA}");
    let status: common::EmulatorStatus =
        app.client.get(app.url("/api/emulator/faults")).send().await.unwrap().json().await.unwrap();
    let attempts = status.calls;
    println!(
        "quota {QUOTA}/min, {ITEMS} items: budget {per_minute}, {} of {attempts} attempts throttled",
        status.throttled
    );
    // Only the items that did not fit the first minute meet the quota (on an idle machine once
    // each: 10 of 50 attempts); without the budget their runs would spend every retry on it.
    assert!(status.throttled >= 1, "the quota was met");
    assert!(status.throttled < ITEMS as u64, "{} throttled attempts for {ITEMS} items", status.throttled);
}
