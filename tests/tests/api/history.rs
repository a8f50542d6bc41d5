//! `GET /api/runs` as a history: filters by model and time, pages both ways, retries per row.

use common::{FaultKind, FaultPlan, RunId, RunState, RunSummary};
use reqwest::StatusCode;
use serde_json::json;
use tests::{TestApp, error_of, spawn_app};

const OTHER_MODEL: &str = "anthropic.claude-haiku-4-5-20251001-v1:0";

async fn listed(app: &TestApp, query: &str) -> Vec<RunId> {
    summaries(app, query).await.iter().map(|run| run.id).collect()
}

async fn summaries(app: &TestApp, query: &str) -> Vec<RunSummary> {
    let response = app.list_runs(query).await;
    assert_eq!(response.status(), StatusCode::OK, "GET /api/runs?{query}");
    response.json().await.unwrap()
}

/// Five finished runs, oldest first; the second and fourth on [`OTHER_MODEL`].
async fn five_runs(app: &TestApp) -> Vec<RunId> {
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut body = json!({ "prompt": format!("History row {n}") });
        if n % 2 == 1 {
            body["model_id"] = json!(OTHER_MODEL);
        }
        let run = app.submit_json(&body).await;
        app.wait_until_finished(run.id).await;
        ids.push(run.id);
    }
    ids
}

#[tokio::test]
async fn the_history_filters_by_model_exactly() {
    let app = spawn_app().await;
    let ids = five_runs(&app).await;

    assert_eq!(listed(&app, &format!("model={OTHER_MODEL}")).await, vec![ids[3], ids[1]]);
    assert_eq!(listed(&app, &format!("model={OTHER_MODEL}&state=Completed&limit=1")).await, vec![ids[3]]);
    assert!(listed(&app, "model=anthropic.claude").await.is_empty(), "a prefix is not a match");
}

#[tokio::test]
async fn the_history_pages_back_with_before_and_forward_with_after_newest_first_both_ways() {
    let app = spawn_app().await;
    let ids = five_runs(&app).await;

    assert_eq!(listed(&app, "limit=2").await, vec![ids[4], ids[3]]);
    assert_eq!(listed(&app, &format!("limit=2&before={}", ids[3])).await, vec![ids[2], ids[1]]);
    assert_eq!(listed(&app, &format!("limit=2&before={}", ids[1])).await, vec![ids[0]]);
    // Back from the last page: the two runs just newer than its first, not the newest two.
    assert_eq!(listed(&app, &format!("limit=2&after={}", ids[0])).await, vec![ids[2], ids[1]]);
    assert_eq!(listed(&app, &format!("limit=2&after={}", ids[2])).await, vec![ids[4], ids[3]]);
    assert!(listed(&app, &format!("limit=2&after={}", ids[4])).await.is_empty());
    assert_eq!(listed(&app, &format!("limit=5&after={}&model={OTHER_MODEL}", ids[0])).await, vec![ids[3], ids[1]]);
}

#[tokio::test]
async fn both_cursors_list_the_runs_between_them_and_an_empty_window_lists_none() {
    let app = spawn_app().await;
    let ids = five_runs(&app).await;

    let between = |before: RunId, after: RunId| format!("before={before}&after={after}");
    assert_eq!(listed(&app, &between(ids[4], ids[0])).await, vec![ids[3], ids[2], ids[1]]);
    assert_eq!(listed(&app, &format!("limit=2&{}", between(ids[4], ids[0]))).await, vec![ids[3], ids[2]]);
    assert!(listed(&app, &between(ids[2], ids[1])).await.is_empty(), "neighbours: nothing between");
    assert!(listed(&app, &between(ids[1], ids[3])).await.is_empty(), "crossed cursors select nothing");
    assert!(listed(&app, "since=2026-12-02&until=2026-12-01").await.is_empty(), "a time window that ends first");
}

#[tokio::test]
async fn the_history_filters_by_creation_time_with_dates_or_instants() {
    let app = spawn_app().await;
    let ids = five_runs(&app).await;
    let all: Vec<RunId> = ids.iter().rev().copied().collect();
    // The days of the first and last run: the same one, unless the test ran over midnight (UTC).
    let first_day = app.run(ids[0]).await.created_at.date_naive();
    let last_day = app.run(ids[4]).await.created_at.date_naive();

    assert_eq!(listed(&app, &format!("since={first_day}")).await, all, "since a date: from its midnight (UTC)");
    assert_eq!(listed(&app, &format!("until={last_day}")).await, all, "until a date: through its end");
    assert!(listed(&app, &format!("until={}", first_day.pred_opt().unwrap())).await.is_empty());
    assert!(listed(&app, &format!("since={}", last_day.succ_opt().unwrap())).await.is_empty());

    let third = app.run(ids[2]).await.created_at;
    let instant = third.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(listed(&app, &format!("since={instant}")).await, vec![ids[4], ids[3], ids[2]], "since is inclusive");
    assert_eq!(listed(&app, &format!("until={instant}")).await, vec![ids[1], ids[0]], "until is exclusive");
}

#[tokio::test]
async fn a_history_row_counts_the_retries_its_run_needed() {
    let app = spawn_app().await;
    let clean = app.submit("No retries needed").await;
    app.wait_for_state(clean.id, RunState::Completed).await;
    app.inject(FaultPlan { kind: FaultKind::Throttle, fail_first: 2, every_nth: 0 }).await;
    let throttled = app.submit("Throttled twice").await;
    app.wait_for_state(throttled.id, RunState::Completed).await;

    let rows = summaries(&app, "").await;
    let retries = |id: RunId| rows.iter().find(|row| row.id == id).map(|row| row.retries);
    assert_eq!(retries(throttled.id), Some(2), "attempts 2 and 3 of call_bedrock");
    assert_eq!(retries(clean.id), Some(0));
}

#[tokio::test]
async fn bad_history_filters_are_refused_with_the_parameter_named() {
    let app = spawn_app().await;
    for (query, named) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("after=nope", "not a run id"),
        ("batch=nope", "not a batch id"),
    ] {
        let (status, message) = error_of(app.list_runs(query).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(message.contains(named), "{query}: {message}");
    }
}
