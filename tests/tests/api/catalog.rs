//! The model catalog (`/api/models`), the end-of-life rule, the cost of runs and their totals,
//! and replays (`POST /api/runs/{id}/replay`).

use common::{Catalog, Lifecycle, RunDetail, RunState, RunTotals};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{TestApp, spawn_app, spawn_app_with};

use crate::expected::usage_for;

/// A catalog with one priced model, one Legacy model and one past its end of life.
fn catalog_file() -> std::path::PathBuf {
    let catalog = json!({
        "read_on": "2026-12-02",
        "sources": [{ "title": "test", "url": "https://example.test/catalog", "read_on": "2026-12-02", "used_for": "all" }],
        "models": [
            {
                "id": "anthropic.claude-priced-v1:0", "name": "Priced", "inference_profiles": ["us.anthropic.claude-priced-v1:0"],
                "context_window": 200000, "max_output_tokens": 8192,
                "price": { "input_per_million_usd": 3.0, "output_per_million_usd": 15.0 },
                "lifecycle": { "status": "Active", "legacy_since": null, "end_of_life": null, "replacement": null }
            },
            {
                "id": "anthropic.claude-old-v1:0", "name": "Old", "context_window": null, "max_output_tokens": null,
                "price": { "input_per_million_usd": 8.0, "output_per_million_usd": 24.0 },
                "lifecycle": { "status": "Legacy", "legacy_since": "2020-01-01", "end_of_life": "2020-06-01",
                               "replacement": "anthropic.claude-priced-v1:0" }
            },
            {
                "id": "anthropic.claude-fading-v1:0", "name": "Fading", "context_window": null, "max_output_tokens": null,
                "price": null,
                "lifecycle": { "status": "Legacy", "legacy_since": "2026-01-01", "end_of_life": "2999-01-01",
                               "replacement": "anthropic.claude-priced-v1:0" }
            }
        ]
    });
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("models.json");
    std::fs::write(&path, catalog.to_string()).unwrap();
    path
}

async fn app_with_test_catalog() -> TestApp {
    let path = catalog_file();
    spawn_app_with(move |args| args.app.model_catalog = Some(path)).await
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn replay(app: &TestApp, id: &str, body: &Value) -> (StatusCode, Value) {
    let response = app.client.post(app.url(&format!("/api/runs/{id}/replay"))).json(body).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_built_in_catalog_lists_claude_models_with_sources_and_the_original_default_as_legacy() {
    let app = spawn_app().await;
    let (status, body) = get(&app, "/api/models").await;
    assert_eq!(status, StatusCode::OK);
    let catalog: Catalog = serde_json::from_value(body).unwrap();
    assert!(catalog.sources.iter().any(|s| s.url.starts_with("https://docs.aws.amazon.com/bedrock/")));
    let original_default = catalog.find("anthropic.claude-3-sonnet-20240229-v1:0").expect("listed");
    assert_eq!(original_default.lifecycle.status, Lifecycle::Legacy);
    let replacement = original_default.lifecycle.replacement.as_deref().expect("a replacement is recommended");
    assert!(catalog.find(replacement).is_some(), "the replacement is in the catalog too");
}

#[tokio::test]
async fn a_model_past_its_end_of_life_is_refused_before_anything_runs() {
    let app = app_with_test_catalog().await;
    let response = app.post_run(&json!({ "prompt": "hello", "model_id": "us.anthropic.claude-old-v1:0" })).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "model `us.anthropic.claude-old-v1:0` reached its end of life on Bedrock on 2020-06-01 and can no longer be \
         called; use `anthropic.claude-priced-v1:0` instead"
    );
    assert!(app.runs().await.is_empty(), "nothing was recorded");
    assert!(!app.metrics().await.contains("app_bedrock_call_seconds_count"), "no Bedrock call was made");

    let (_, catalog) = get(&app, "/api/models").await;
    assert_eq!(catalog["models"][1]["lifecycle"]["status"], "EndOfLife", "served as it stands today");
    assert_eq!(catalog["models"][2]["lifecycle"]["status"], "Legacy", "its end of life has not come");
}

#[tokio::test]
async fn a_run_costs_its_usage_at_the_catalogs_prices_and_the_history_sums_them() {
    let app = app_with_test_catalog().await;
    let priced = "one two three four five";
    let first = app.submit_json(&json!({ "prompt": priced, "model_id": "us.anthropic.claude-priced-v1:0" })).await;
    let second = app.submit_json(&json!({ "prompt": priced, "model_id": "anthropic.claude-priced-v1:0" })).await;
    let unpriced = app.submit_json(&json!({ "prompt": "no price", "model_id": "anthropic.claude-fading-v1:0" })).await;
    for run in [&first, &second, &unpriced] {
        app.wait_for_state(run.id, RunState::Completed).await;
    }

    let usage = usage_for(priced);
    // Hand arithmetic: input tokens × $3 per million plus output tokens × $15 per million.
    let expected = (f64::from(usage.input_tokens) * 3.0 + f64::from(usage.output_tokens) * 15.0) / 1e6;
    let detail = app.run(first.id).await;
    assert_eq!(detail.usage, Some(usage));
    assert_close(detail.cost_usd.expect("priced"), expected);
    let listed = app.runs().await;
    let listed_cost = listed.iter().find(|r| r.id == second.id).and_then(|r| r.cost_usd).expect("priced in the list");
    assert_close(listed_cost, expected);
    assert_eq!(app.run(unpriced.id).await.cost_usd, None, "no price, no cost");

    let (status, body) = get(&app, "/api/runs/totals").await;
    assert_eq!(status, StatusCode::OK);
    let totals: RunTotals = serde_json::from_value(body).unwrap();
    assert_eq!(totals.runs, 3);
    assert_eq!(totals.unpriced_runs, 1);
    let unpriced_usage = usage_for("no price");
    assert_eq!(totals.input_tokens, u64::from(2 * usage.input_tokens + unpriced_usage.input_tokens));
    assert_close(totals.cost_usd, 2.0 * expected);

    let (_, filtered) = get(&app, "/api/runs/totals?model=anthropic.claude-fading-v1:0").await;
    assert_eq!(filtered["runs"], 1, "the history's filters apply");
    assert_eq!(filtered["cost_usd"], 0.0);
}

#[tokio::test]
async fn a_replay_reruns_the_prompt_with_the_changed_settings_and_is_linked_to_the_original() {
    let app = spawn_app().await;
    let original = app
        .submit_json(&json!({ "prompt": "say it again", "system": "be brief", "temperature": 0.2, "max_tokens": 300 }))
        .await;
    app.wait_for_state(original.id, RunState::Completed).await;

    let (status, body) = replay(
        &app,
        &original.id.to_string(),
        &json!({ "temperature": 0.9, "model_id": "us.anthropic.claude-sonnet-4-6" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let replayed: RunDetail = serde_json::from_value(body).unwrap();
    assert_eq!(replayed.prompt, "say it again");
    assert_eq!(replayed.system.as_deref(), Some("be brief"), "kept");
    assert_eq!(replayed.max_tokens, 300, "kept");
    assert_eq!(replayed.temperature, Some(0.9), "changed");
    assert_eq!(replayed.model_id, "us.anthropic.claude-sonnet-4-6", "changed");
    assert_eq!(replayed.replay_of, Some(original.id));
    let done = app.wait_for_state(replayed.id, RunState::Completed).await;
    assert_eq!(done.response.as_deref(), Some(backend::emulator::reply_for("say it again").as_str()));

    let (_, without_system) = replay(&app, &original.id.to_string(), &json!({ "system": "" })).await;
    assert_eq!(without_system["system"], Value::Null, "an empty system prompt removes it");
    assert_eq!(app.run(original.id).await.replays.len(), 2, "the original lists its replays");
}

#[tokio::test]
async fn a_replay_of_no_run_or_with_bad_settings_is_refused_with_a_reason() {
    let app = spawn_app().await;
    let (status, body) = replay(&app, "0190a0a0-0000-7000-8000-000000000000", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no run with id 0190a0a0-0000-7000-8000-000000000000");

    let original = app.submit("a prompt").await;
    let (status, body) = replay(&app, &original.id.to_string(), &json!({ "temperature": 3.0 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "temperature must be between 0 and 1");
    let (status, body) = replay(&app, &original.id.to_string(), &json!({ "prompt": "other" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unknown field `prompt`"), "{body}");
    assert_eq!(app.run(original.id).await.replays, [], "nothing was created");
}

fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-12, "{actual} ≠ {expected}");
}
