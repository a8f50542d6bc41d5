//! Every bad input of the contract gets a 4xx with a JSON `{"error"}` body and creates nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tests::{TestApp, error_of, spawn_app_with};

const MAX_BODY: usize = 4096;
const MAX_PROMPT: usize = 1024;

async fn small_limits_app() -> TestApp {
    spawn_app_with(|args| {
        args.max_body_bytes = MAX_BODY;
        args.max_prompt_bytes = MAX_PROMPT;
    })
    .await
}

/// What the server holds: runs listed and journal bytes.
async fn footprint(app: &TestApp) -> (usize, u64) {
    let journal = std::fs::metadata(&app.dirs.prompts_file).map(|m| m.len()).unwrap_or(0);
    (app.runs().await.len(), journal)
}

#[tokio::test]
async fn every_bad_submission_is_refused_with_a_json_error_and_creates_nothing() {
    let app = small_limits_app().await;
    let before = footprint(&app).await;
    let json = "application/json";
    let cases: Vec<(&str, Option<&str>, Vec<u8>, StatusCode)> = vec![
        ("empty prompt", Some(json), br#"{"prompt":""}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "whitespace-only prompt",
            Some(json),
            b"{\"prompt\":\" \\n\\t \\r\\n \"}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("missing prompt", Some(json), br#"{}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        // PostgreSQL's text cannot hold U+0000: refused alike whatever the store.
        ("NUL in the prompt", Some(json), br#"{"prompt":"a\u0000b"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "NUL in the system prompt",
            Some(json),
            br#"{"prompt":"hi","system":"\u0000"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("malformed JSON", Some(json), br#"{"prompt": "hi""#.to_vec(), StatusCode::BAD_REQUEST),
        ("not JSON at all", Some(json), b"prompt=hi".to_vec(), StatusCode::BAD_REQUEST),
        ("empty body", Some(json), Vec::new(), StatusCode::BAD_REQUEST),
        ("text/plain", Some("text/plain"), br#"{"prompt":"hi"}"#.to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("no content type", None, br#"{"prompt":"hi"}"#.to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("unknown field", Some(json), br#"{"prompt":"hi","promt":"x"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        ("prompt of the wrong type", Some(json), br#"{"prompt":42}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        ("null prompt", Some(json), br#"{"prompt":null}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        ("max_tokens 0", Some(json), br#"{"prompt":"hi","max_tokens":0}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "negative max_tokens",
            Some(json),
            br#"{"prompt":"hi","max_tokens":-5}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "huge max_tokens",
            Some(json),
            br#"{"prompt":"hi","max_tokens":100000000}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "max_tokens beyond u32",
            Some(json),
            br#"{"prompt":"hi","max_tokens":99999999999999}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "max_tokens as text",
            Some(json),
            br#"{"prompt":"hi","max_tokens":"10"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "temperature -1",
            Some(json),
            br#"{"prompt":"hi","temperature":-1}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("temperature 2", Some(json), br#"{"prompt":"hi","temperature":2}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "temperature as text",
            Some(json),
            br#"{"prompt":"hi","temperature":"hot"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "model id with a space",
            Some(json),
            br#"{"prompt":"hi","model_id":"anthropic claude"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "model id with a slash-dot-dot",
            Some(json),
            br#"{"prompt":"hi","model_id":"a?b=c"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "empty model id",
            Some(json),
            br#"{"prompt":"hi","model_id":"  "}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "model id too long",
            Some(json),
            format!(r#"{{"prompt":"hi","model_id":"{}"}}"#, "a".repeat(300)).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "system prompt over the limit",
            Some(json),
            format!(r#"{{"prompt":"hi","system":"{}"}}"#, "s".repeat(MAX_PROMPT + 1)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "prompt over max_prompt_bytes",
            Some(json),
            format!(r#"{{"prompt":"{}"}}"#, "p".repeat(MAX_PROMPT + 1)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "body over max_body_bytes",
            Some(json),
            format!(r#"{{"prompt":"{}"}}"#, "b".repeat(MAX_BODY)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        ("invalid UTF-8", Some(json), b"{\"prompt\":\"\xff\xfe\"}".to_vec(), StatusCode::BAD_REQUEST),
    ];
    let mut wrong = Vec::new();
    for (name, content_type, body, expected) in cases {
        let response = app.post_raw("/api/runs", content_type, body).await;
        if response.status() != expected {
            wrong.push(format!(
                "{name}: expected {expected}, got {} ({})",
                response.status(),
                response.text().await.unwrap()
            ));
            continue;
        }
        let _ = error_of(response).await;
    }
    assert!(wrong.is_empty(), "wrong statuses:\n{}", wrong.join("\n"));
    assert_eq!(footprint(&app).await, before, "no run was created and nothing was journaled");

    // The limits are inclusive: a prompt of exactly max_prompt_bytes is accepted.
    let run = app.submit(&"p".repeat(MAX_PROMPT)).await;
    app.wait_until_finished(run.id).await;
}

#[tokio::test]
async fn a_json_array_body_is_refused() {
    let app = small_limits_app().await;
    let response = app.post_raw("/api/runs", Some("application/json"), r#"["hi"]"#).await;
    let (status, _) = error_of(response).await;
    assert!(status.is_client_error(), "{status}");
    assert!(app.runs().await.is_empty());
}

#[tokio::test]
async fn a_body_far_over_the_limit_is_refused_with_413_without_reading_it_all() {
    let app = small_limits_app().await;
    let body = format!(r#"{{"prompt":"{}"}}"#, "x".repeat(5 * 1024 * 1024));
    let response = app.post_raw("/api/runs", Some("application/json"), body).await;
    let (status, _) = error_of(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(app.runs().await.is_empty());
}

#[tokio::test]
async fn bad_queries_and_ids_are_refused_with_json_errors() {
    let app = small_limits_app().await;
    let unknown = uuid::Uuid::now_v7();
    let cases: Vec<(Method, String, StatusCode)> = vec![
        (Method::GET, format!("/api/runs/{unknown}"), StatusCode::NOT_FOUND),
        (Method::GET, format!("/api/runs/{unknown}/logs"), StatusCode::NOT_FOUND),
        (Method::POST, format!("/api/runs/{unknown}/cancel"), StatusCode::NOT_FOUND),
        (Method::GET, "/api/runs/not-a-uuid".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs/not-a-uuid/logs".into(), StatusCode::BAD_REQUEST),
        (Method::POST, "/api/runs/not-a-uuid/cancel".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?limit=0".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?limit=abc".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?limit=-1".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?limit=1000000".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?state=Bogus".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?state=completed".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?before=yesterday".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?sort=asc".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/runs?model=a%00b".into(), StatusCode::BAD_REQUEST),
        (Method::GET, "/api/nope".into(), StatusCode::NOT_FOUND),
        (Method::POST, "/api/nope/deeper".into(), StatusCode::NOT_FOUND),
        (Method::GET, "/api".into(), StatusCode::NOT_FOUND),
        (Method::DELETE, "/api/runs".into(), StatusCode::METHOD_NOT_ALLOWED),
        (Method::PUT, format!("/api/runs/{unknown}"), StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, format!("/api/runs/{unknown}/cancel"), StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, "/api/health".into(), StatusCode::METHOD_NOT_ALLOWED),
    ];
    let mut wrong = Vec::new();
    for (method, path, expected) in cases {
        let response = app.client.request(method.clone(), app.url(&path)).send().await.unwrap();
        if response.status() != expected {
            wrong.push(format!(
                "{method} {path}: expected {expected}, got {} ({})",
                response.status(),
                response.text().await.unwrap()
            ));
            continue;
        }
        let _ = error_of(response).await;
    }
    assert!(wrong.is_empty(), "wrong statuses:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn bad_websocket_queries_are_refused_before_the_upgrade() {
    let app = small_limits_app().await;
    let run = app.submit("Something to follow").await;
    let done = app.wait_until_finished(run.id).await;
    let unknown = uuid::Uuid::now_v7();
    let cases = [
        (format!("run_id={}&after_seq={}", run.id, done.last_seq + 1), 400),
        (format!("run_id={}&after_seq=-1", run.id), 400),
        (format!("run_id={}&after_seq=abc", run.id), 400),
        ("after_seq=0".to_owned(), 400),
        ("run_id=not-a-uuid".to_owned(), 400),
        (format!("run_id={unknown}&after_seq=0"), 404),
    ];
    for (query, expected) in cases {
        let (status, body) = app.ws_refused(&query).await;
        assert_eq!(status, expected, "{query}: {body}");
    }
}

#[tokio::test]
async fn bad_fault_plans_are_refused() {
    let app = small_limits_app().await;
    let url = app.url("/api/emulator/faults");
    for body in [
        json!({"kind": "meteor", "fail_first": 1}),
        json!({"kind": "throttle"}),
        json!({"kind": "throttle", "fail_first": 1, "x": 1}),
        json!({"kind": "throttle", "fail_first": 1_000_001}),
        json!({"kind": "throttle", "every_nth": 2_147_483_648_u64}),
    ] {
        let response = app.client.put(&url).json(&body).send().await.unwrap();
        let (status, _) = error_of(response).await;
        assert!(status.is_client_error(), "{body}: {status}");
    }
    assert_eq!(app.app.emulator().expect("the test app runs on the emulator").status().plan, None);
}

#[tokio::test]
async fn a_bad_idempotency_key_is_refused() {
    let app = small_limits_app().await;
    let response = app.post_run_with_key(&json!({"prompt": "hi"}), &"k".repeat(300)).await;
    let (status, _) = error_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(app.runs().await.is_empty());
}
