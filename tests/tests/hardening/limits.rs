//! Rate and concurrency limits: beyond them `429` with `Retry-After`, and nothing stored.

use reqwest::Response;
use tests::{error_of, spawn_app_with, unique_prompt};

fn retry_after(response: &Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

#[tokio::test]
async fn a_third_concurrent_run_beyond_a_limit_of_two_gets_429_and_nothing_is_stored() {
    let app = spawn_app_with(|args| {
        args.app.max_concurrent_runs = 2;
        args.app.emulator_tokens_per_sec = 5;
    })
    .await;
    let one = app.submit(&unique_prompt("one")).await;
    let two = app.submit(&unique_prompt("two")).await;
    app.wait_until_streaming(one.id).await;
    app.wait_until_streaming(two.id).await;
    let response = app.post_run(&serde_json::json!({ "prompt": unique_prompt("three") })).await;
    let after = retry_after(&response);
    let (status, message) = error_of(response).await;
    assert_eq!(status, 429, "{message}");
    assert!(after >= 1);
    assert_eq!(app.runs().await.len(), 2, "the refused run is not stored");
    assert_eq!(app.dirs.journal().len(), 2, "nor journalled");
    assert_eq!(app.app.emulator().expect("the test app runs on the emulator").status().calls, 2, "nor sent to Bedrock");
    eprintln!("FIGURE limits concurrent=2: 3rd → 429, Retry-After {after} s, 2 runs stored: {message}");
}

#[tokio::test]
async fn a_fourth_submission_in_a_minute_beyond_a_limit_of_three_gets_429_with_retry_after() {
    let app = spawn_app_with(|args| args.app.max_submissions_per_minute = 3).await;
    for n in 0..3 {
        app.submit(&unique_prompt(&format!("rate {n}"))).await;
    }
    let response = app.post_run(&serde_json::json!({ "prompt": unique_prompt("rate 4") })).await;
    let after = retry_after(&response);
    let (status, message) = error_of(response).await;
    assert_eq!(status, 429, "{message}");
    assert!((1..=60).contains(&after), "Retry-After {after}");
    assert_eq!(app.runs().await.len(), 3);
    eprintln!("FIGURE limits 3/min: 4th → 429, Retry-After {after} s, 3 runs stored");
}
