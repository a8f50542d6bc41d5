//! The fault panel follows the emulator live: what a plan still holds counts down as calls
//! fail, a plan set elsewhere shows up in the controls, and a used-up plan says so.

use std::time::{Duration, Instant};

use common::{FaultKind, FaultPlan, RunState};

use crate::harness::{Browser, DEADLINE, spawn_site};

/// Waits until the element's text contains `expected`; the last text seen on failure.
async fn wait_for_text(browser: &Browser, css: &str, expected: &str) -> String {
    let started = Instant::now();
    loop {
        let text = browser.text_of(css).await;
        if text.contains(expected) {
            return text;
        }
        assert!(started.elapsed() < DEADLINE, "{css} never said {expected:?}; it says {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_fault_panel_counts_a_plan_down_live_and_shows_it_used_up() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    wait_for_text(&browser, "[data-testid=fault-status]", "No faults").await;

    // Set through the API, not the panel: the panel must pick it up by itself.
    site.inject(FaultPlan { kind: FaultKind::Unavailable, fail_first: 2, every_nth: 0 }).await;
    wait_for_text(&browser, "[data-testid=fault-status]", "2 of 2 503 errors left").await;
    let kind = browser.find("[data-testid=fault-kind]").await.prop("value").await.unwrap();
    assert_eq!(kind.as_deref(), Some("503"), "the controls show the plan in force");
    browser.screenshot("fault-panel-armed").await;

    let run = site.submit("Fail twice with 503").await;
    site.wait_for_state(run.id, RunState::Completed).await;
    let used_up = wait_for_text(&browser, "[data-testid=fault-status]", "used up").await;
    assert!(used_up.contains("all 2 503 errors used up; calls succeed now"), "{used_up:?}");
    assert!(!used_up.contains("next 2"), "a used-up plan promises no more failures: {used_up:?}");
    browser.screenshot("fault-panel-used-up").await;
    browser.close().await;
}
