use common::{RunDetail, RunState};
use reqwest::StatusCode;
use serde_json::json;
use tests::spawn_app;

#[tokio::test]
async fn two_posts_with_the_same_idempotency_key_create_one_run() {
    let app = spawn_app().await;
    let body = json!({ "prompt": "Submit me once" });

    let first = app.post_run_with_key(&body, "key-123").await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: RunDetail = first.json().await.unwrap();
    let second = app.post_run_with_key(&body, "key-123").await;
    assert!(second.status().is_success(), "{}", second.status());
    let second: RunDetail = second.json().await.unwrap();
    assert_eq!(second.id, first.id);

    app.wait_for_state(first.id, RunState::Completed).await;
    // A retry after the run finished still finds it.
    let third: RunDetail = app.post_run_with_key(&body, "key-123").await.json().await.unwrap();
    assert_eq!(third.id, first.id);
    assert_eq!(third.state, RunState::Completed);

    assert_eq!(app.runs().await.len(), 1);

    let other: RunDetail = app.post_run_with_key(&body, "key-456").await.json().await.unwrap();
    assert_ne!(other.id, first.id);
    let unkeyed = app.submit("Submit me once").await;
    assert_ne!(unkeyed.id, first.id);
    assert_eq!(app.runs().await.len(), 3);
}

#[tokio::test]
async fn concurrent_posts_with_the_same_idempotency_key_create_one_run() {
    let app = spawn_app().await;
    let body = json!({ "prompt": "Race me" });
    let responses = futures_util::future::join_all((0..8).map(|_| app.post_run_with_key(&body, "race"))).await;
    let mut ids = Vec::new();
    for response in responses {
        assert!(response.status().is_success(), "{}", response.status());
        ids.push(response.json::<RunDetail>().await.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.runs().await.len(), 1);
    app.wait_for_state(ids[0], RunState::Completed).await;
}

#[tokio::test]
async fn a_repeated_idempotent_post_does_not_journal_the_prompt_again() {
    let app = spawn_app().await;
    let body = json!({ "prompt": "Journal me once" });
    let first: RunDetail = app.post_run_with_key(&body, "once").await.json().await.unwrap();
    let second: RunDetail = app.post_run_with_key(&body, "once").await.json().await.unwrap();
    assert_eq!(first.id, second.id);
    let records = app.dirs.journal();
    assert_eq!(records.len(), 1, "one record per run, no orphans: {records:#?}");
}
