//! Full-text search over prompts and responses: `GET /api/runs?q=`, with the other filters.

use backend::emulator::reply_for;
use common::{RunState, RunSummary};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{TestApp, spawn_app};

async fn search(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let response = app.client.get(app.url("/api/runs")).query(&[("q", query)]).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn found(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = search(app, query).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let runs: Vec<RunSummary> = serde_json::from_value(body).unwrap();
    runs.into_iter().map(|run| run.prompt_preview).collect()
}

#[tokio::test]
async fn a_search_finds_words_of_the_prompt_or_the_response_all_of_them() {
    let app = spawn_app().await;
    for prompt in ["Summarise the quarterly report", "Translate the report into French", "Write a haiku about rain"] {
        let run = app.submit(prompt).await;
        app.wait_for_state(run.id, RunState::Completed).await;
    }
    assert_eq!(found(&app, "report").await, ["Translate the report into French", "Summarise the quarterly report"]);
    assert_eq!(found(&app, "REPORT french").await, ["Translate the report into French"], "every word, any case");
    assert!(found(&app, "spreadsheet").await.is_empty(), "no run holds it");
    // The emulator's reply says where it comes from, in words no prompt here uses.
    assert!(reply_for("Write a haiku about rain").contains("emulator"));
    assert_eq!(found(&app, "emulator haiku").await, ["Write a haiku about rain"], "a word of the response");
    let (_, body) = search(&app, "emulator haiku").await;
    let snippet = body[0]["snippet"].as_str().unwrap_or_default();
    assert!(snippet.contains("\u{2}emulator\u{3}"), "the word found is marked in the passage: {snippet:?}");

    let (status, body) = search_with(&app, &[("q", "report"), ("state", "Failed")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]), "combined with the other filters");
    let (_, totals) = get(&app, "/api/runs/totals?q=report").await;
    assert_eq!(totals["runs"], 2, "the totals follow the search");
}

#[tokio::test]
async fn search_results_page_newest_first_through_both_cursors_each_with_its_passage() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let run = app.submit(&format!("Ledger entry {n}")).await;
        app.wait_for_state(run.id, RunState::Completed).await;
        ids.push(run.id);
    }
    let page = |query: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let mut query = query;
            query.push(("q", "ledger".to_owned()));
            let (status, body) =
                search_with(app, &query.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
            assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
            let runs: Vec<RunSummary> = serde_json::from_value(body).unwrap();
            for run in &runs {
                let passage = run.snippet.as_deref().unwrap_or_default();
                assert!(passage.contains("\u{2}Ledger\u{3}"), "{}: {passage:?}", run.prompt_preview);
            }
            runs.into_iter().map(|run| run.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(vec![("limit", "2".into())]).await, [ids[4], ids[3]]);
    assert_eq!(page(vec![("limit", "2".into()), ("before", ids[3].to_string())]).await, [ids[2], ids[1]]);
    assert_eq!(page(vec![("limit", "2".into()), ("after", ids[1].to_string())]).await, [ids[3], ids[2]]);
    assert_eq!(
        page(vec![("before", ids[4].to_string()), ("after", ids[0].to_string())]).await,
        [ids[3], ids[2], ids[1]]
    );
}

#[tokio::test]
async fn words_joined_by_punctuation_are_found_one_by_one_in_every_store() {
    let app = spawn_app().await;
    let run = app.submit("Check example.com/docs for v1.2 at 3.14").await;
    app.wait_for_state(run.id, RunState::Completed).await;
    for q in ["example", "docs", "v1", "14", "example.com"] {
        assert_eq!(found(&app, q).await.len(), 1, "q={q}");
    }
}

#[tokio::test]
async fn hostile_searches_are_answered_without_a_server_error() {
    let app = spawn_app().await;
    let run = app.submit("quotes \"and\" stars * NEAR(x y) col:umn").await;
    app.wait_for_state(run.id, RunState::Completed).await;
    for query in
        ["\"", "\"unclosed", "a AND OR NOT b", "NEAR(quotes stars)", "col:umn", "*", "quotes*", "^quotes", "{x y}: z"]
    {
        let (status, body) = search(&app, query).await;
        assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{query}: {status} {body}");
    }
    assert_eq!(found(&app, "\"quotes\" AND stars").await.len(), 1, "operators are words like any other");
    let (status, body) = search(&app, "*** ??? ---").await;
    assert_eq!((status, body.as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "no word asked for: no filter");
    let many_words: Vec<String> = (0..100).map(|n| format!("w{n}")).collect();
    let (status, body) = search(&app, &many_words.join(" ")).await;
    assert_eq!((status, body.as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "100 words, none found");
    let (status, body) = search(&app, &"word ".repeat(200)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "q is longer than 500 characters");
}

async fn search_with(app: &TestApp, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = app.client.get(app.url("/api/runs")).query(query).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}
