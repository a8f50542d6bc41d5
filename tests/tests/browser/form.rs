//! The submit form's own checks, and the honesty banner.

use fantoccini::key::Key;
use serde_json::json;

use crate::harness::{Browser, DEADLINE, spawn_site};

#[tokio::test]
async fn an_empty_prompt_is_refused_before_any_request_and_the_emulator_banner_is_shown() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    let banner = browser.find("#emulator-banner").await;
    assert!(banner.is_displayed().await.unwrap(), "the emulator banner is visible");
    assert!(browser.text_of("#emulator-banner").await.contains("Emulator mode"));

    browser.click("#submit").await;
    browser.find("#prompt-error").await;
    assert_eq!(browser.text_of("#prompt-error").await, "Write a prompt first.");
    browser.find("#prompt").await.send_keys("   ").await.unwrap();
    browser.click("#submit").await;
    assert_eq!(browser.text_of("#prompt-error").await, "Write a prompt first.", "blank is empty too");

    assert_eq!(browser.path().await, "/", "still on the home page");
    assert!(site.runs().await.is_empty(), "no run was created");
    assert_eq!(site.app.emulator().expect("the site runs on the emulator").status().calls, 0, "no model call");
    browser.screenshot("home-refused").await;
    browser.close().await;
}

#[tokio::test]
async fn a_refused_max_tokens_is_fixed_in_place_with_the_settings_open_and_focus_kept() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.find("#prompt").await.send_keys("Fix my settings").await.unwrap();
    browser.click("#settings summary").await;
    let max_tokens = browser.find("#max-tokens").await;
    max_tokens.clear().await.unwrap();
    max_tokens.send_keys("0").await.unwrap();
    browser.click("#submit").await;

    let error = browser.wait_for_text("#max-tokens-error", |t| !t.is_empty()).await;
    assert!(error.starts_with("Max tokens must be a whole number from 1"), "{error:?}");
    let placed = browser.eval("return document.querySelector('#max-tokens').nextElementSibling.id;", vec![]).await;
    assert_eq!(placed, "max-tokens-error", "the error sits right after its field");
    assert_eq!(browser.find("#max-tokens").await.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(browser.find("#prompt").await.attr("aria-invalid").await.unwrap().as_deref(), Some("false"));
    assert!(browser.find_all("#form-error").await.is_empty(), "no form-level message for a field's error");
    wait_for_focus(&browser, "max-tokens").await;
    browser.screenshot("settings-error-beside-its-field").await;

    // Select what is there and type over it, as a person fixing the field does: the first key
    // clears the error, which must neither collapse the section nor move focus.
    let keys = format!("{}a{}512", Key::Control, Key::Null);
    browser.find("#max-tokens").await.send_keys(&keys).await.unwrap();
    let value = browser.value_of("#max-tokens").await;
    assert_eq!(value, "512", "every key landed in the field");
    assert_eq!(browser.focused_id().await, "max-tokens", "focus stayed in the field");
    assert_eq!(browser.eval("return document.querySelector('#settings').open;", vec![]).await, true);
    assert!(browser.find_all("#max-tokens-error").await.is_empty(), "the fixed field has no error");
    browser.screenshot("settings-fixed-in-place").await;

    browser.click("#submit").await;
    let path = browser.wait_for_path("the new run's page", |p| p.starts_with("/runs/")).await;
    let id = path.trim_start_matches("/runs/").parse().unwrap();
    assert_eq!(site.run(id).await.max_tokens, 512, "the run got the fixed value");
    browser.close().await;
}

#[tokio::test]
async fn a_request_that_cannot_reach_the_server_is_a_form_message_and_marks_no_field() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    let model = browser.find("#model-id").await;
    assert_eq!(model.attr("list").await.unwrap().as_deref(), Some("model-ids"));
    // The catalog arrived once this shows. The original system's default is Legacy: the
    // settings (opened, as the notice sits in them) say so, with the replacement.
    browser.eval("document.querySelector('#settings').open = true;", vec![]).await;
    let notice = browser.wait_for_text("#model-notice", |t| !t.is_empty()).await;
    assert!(notice.starts_with("Claude 3 Sonnet is a Legacy model on Bedrock"), "{notice:?}");
    assert!(notice.contains("Recommended replacement: anthropic.claude-sonnet-4-6."), "{notice:?}");
    let offered =
        browser.eval("return [...document.querySelectorAll('#model-ids option')].map(o => o.value);", vec![]).await;
    let default = site.health().await["defaults"]["model_id"].clone();
    assert_eq!(offered[0], default, "the server's default model comes first: {offered}");
    let offered = offered.as_array().unwrap();
    assert!(offered.contains(&json!("us.anthropic.claude-sonnet-4-5-20250929-v1:0")), "{offered:?}");
    assert!(
        offered.contains(&json!("us.anthropic.claude-haiku-4-5-20251001-v1:0")),
        "a profile-only model by its profile"
    );
    assert!(!offered.contains(&json!("anthropic.claude-3-5-haiku-20241022-v1:0")), "past its end of life: not offered");

    // Requests fail as they do when the network drops, while the page's WebSocket stays up:
    // with it down, the page would hold Run back (see live.rs) rather than try.
    browser.eval("window.fetch = () => Promise.reject(new TypeError('Failed to fetch'));", vec![]).await;
    browser.find("#prompt").await.send_keys("Nobody is listening").await.unwrap();
    browser.click("#submit").await;
    let failure = browser.wait_for_text("#form-error", |t| !t.is_empty()).await;
    assert!(failure.starts_with("Cannot reach the server"), "{failure:?}");
    assert_eq!(browser.find("#prompt").await.attr("aria-invalid").await.unwrap().as_deref(), Some("false"));
    assert!(browser.find_all("[aria-invalid=true]").await.is_empty(), "no field is blamed");
    assert!(browser.find_all("[data-testid=field-error]").await.is_empty());
    browser.screenshot("form-network-error").await;
    browser.close().await;
}

/// Waits until the element with `id` has keyboard focus.
async fn wait_for_focus(browser: &Browser, id: &str) {
    let started = std::time::Instant::now();
    loop {
        let focused = browser.focused_id().await;
        if focused == id {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "focus never reached #{id}; it is on {focused:?}");
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
}
