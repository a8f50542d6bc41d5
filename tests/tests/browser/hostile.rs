//! Untrusted model output: markup in a reply is shown as text, never run.

use common::RunState;
use serde_json::Value;

use crate::harness::{Browser, spawn_site};

/// Three ways to run code if the reply reached the DOM as HTML; the emulator quotes it back.
const HOSTILE_PROMPT: &str =
    r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">[x](javascript:window.__pwned=3)"#;

/// Fails if anything of the hostile prompt became live markup on the current page.
async fn assert_nothing_ran(browser: &Browser, area: &str) {
    let pwned = browser.eval("return typeof window.__pwned;", vec![]).await;
    assert_eq!(pwned, Value::from("undefined"), "a script of the reply ran");
    let live = browser.find_all(&format!("{area} script, {area} img, {area} iframe")).await;
    assert!(live.is_empty(), "{} live element(s) in `{area}`", live.len());
    let links = browser.find_all(r#"a[href^="javascript" i]"#).await;
    assert!(links.is_empty(), "{} javascript: link(s) on the page", links.len());
}

#[tokio::test]
async fn a_hostile_model_reply_renders_as_text() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt(HOSTILE_PROMPT).await;

    let done = browser.wait_for_run_state(RunState::Completed).await;
    assert!(done.response.contains("<script>window.__pwned=1</script>"), "the markup is shown as text: {done:#?}");
    assert!(done.response.contains(r#"onerror="window.__pwned=2""#), "{done:#?}");
    assert_nothing_ran(&browser, "#response").await;
    browser.screenshot("hostile-run").await;

    // The history shows the same prompt as a preview: text there too.
    browser.open_home().await;
    browser.find("[data-testid=history-row][data-state=Completed]").await;
    assert!(browser.text_of("#history-list").await.contains("<script>"), "the preview shows the markup as text");
    assert_nothing_ran(&browser, "#history-list").await;
    browser.close().await;
}
