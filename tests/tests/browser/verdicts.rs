//! The verdict line of a finished run: plain words and the next step, the service's message
//! beneath, and a cancellation styled as the person's choice rather than a failure.

use common::{FaultKind, FaultPlan, RunState};

use crate::harness::{Browser, spawn_site};

/// The computed text colour of the first element matching `css`.
async fn color_of(browser: &Browser, css: &str) -> String {
    let script = "const e = document.querySelector(arguments[0]); return e ? getComputedStyle(e).color : '';";
    browser.eval(script, vec![serde_json::json!(css)]).await.as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_validation_failure_says_retrying_will_not_help_with_the_service_message_beneath() {
    let site = spawn_site(0).await;
    site.inject(FaultPlan { kind: FaultKind::Validation, fail_first: 1, every_nth: 0 }).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    let id = browser.submit_prompt("Refuse me").await;
    browser.wait_for_run_state(RunState::Failed).await;

    let summary = browser.wait_for_text("[data-testid=verdict-summary]", |t| !t.is_empty()).await;
    assert_eq!(summary, "Bedrock rejected the request; retrying will not help. Check the model id and settings.");
    let verdict = browser.find("#verdict").await;
    assert_eq!(verdict.attr("data-tone").await.unwrap().as_deref(), Some("failure"));
    let message = browser.text_of("[data-testid=verdict-message]").await;
    assert!(message.contains("ValidationException"), "the service's message is kept: {message:?}");
    let attempts = site.run(id).await.tasks[1].attempts.len();
    assert_eq!(attempts, 1, "a validation error is not retried");
    browser.screenshot("verdict-validation").await;
    browser.close().await;
}

#[tokio::test]
async fn a_cancelled_run_gets_a_neutral_verdict_and_its_text_is_marked_partial() {
    let site = spawn_site(10).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt("Cancel me, calmly").await;
    browser.wait_for_run("the answer streaming", |v| v.is_streaming_text()).await;
    browser.click("#cancel-run").await;
    let cancelled = browser.wait_for_run_state(RunState::Cancelled).await;
    assert!(!cancelled.streaming, "no streaming cursor on a cancelled answer");
    let note = browser.wait_for_text("#partial-note", |t| !t.is_empty()).await;
    assert_eq!(note, "Partial: the run was cancelled.");

    let summary = browser.wait_for_text("[data-testid=verdict-summary]", |t| !t.is_empty()).await;
    assert!(summary.starts_with("Cancelled."), "{summary:?}");
    let verdict = browser.find("#verdict").await;
    assert_eq!(verdict.attr("data-tone").await.unwrap().as_deref(), Some("neutral"));
    assert_eq!(verdict.attr("role").await.unwrap().as_deref(), Some("status"), "not announced as an alert");
    // The page's failure colour, read from a failure-styled element made for the comparison.
    let danger = browser
        .eval(
            "const p = document.createElement('p'); p.className = 'verdict-failure'; \
             const s = document.createElement('span'); s.className = 'verdict-summary'; p.appendChild(s); \
             document.body.appendChild(p); const c = getComputedStyle(s).color; p.remove(); return c;",
            vec![],
        )
        .await;
    let danger = danger.as_str().unwrap_or_default().to_owned();
    assert!(!danger.is_empty());
    assert_ne!(color_of(&browser, "[data-testid=verdict-summary]").await, danger, "the verdict is not red");
    assert_ne!(color_of(&browser, "#run-state").await, danger, "the badge is not red");
    browser.screenshot("verdict-cancelled").await;
    browser.close().await;
}
