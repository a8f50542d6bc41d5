//! The submit form's own checks, and the honesty banner.

use crate::harness::{Browser, spawn_site};

#[tokio::test]
async fn an_empty_prompt_is_refused_before_any_request_and_the_emulator_banner_is_shown() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    let banner = browser.find("#emulator-banner").await;
    assert!(banner.is_displayed().await.unwrap(), "the emulator banner is visible");
    assert!(browser.text_of("#emulator-banner").await.contains("Emulator mode"));

    browser.click("#submit").await;
    browser.find("#form-error").await;
    assert_eq!(browser.text_of("#form-error").await, "Write a prompt first.");
    browser.find("#prompt").await.send_keys("   ").await.unwrap();
    browser.click("#submit").await;
    assert_eq!(browser.text_of("#form-error").await, "Write a prompt first.", "blank is empty too");

    assert_eq!(browser.path().await, "/", "still on the home page");
    assert!(site.runs().await.is_empty(), "no run was created");
    assert_eq!(site.app.emulator().expect("the site runs on the emulator").status().calls, 0, "no model call");
    browser.screenshot("home-refused").await;
    browser.close().await;
}
