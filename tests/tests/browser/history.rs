//! The history on the home page.

use common::RunState;

use crate::harness::{Browser, spawn_site};

#[tokio::test]
async fn the_history_survives_a_reload() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.find("#history-empty").await;
    let prompt = "Remember me after a reload";
    let id = browser.submit_prompt(prompt).await;
    browser.wait_for_run_state(RunState::Completed).await;

    browser.open_home().await;
    let row = format!("[data-testid=history-row][data-run-id='{id}'][data-state=Completed]");
    browser.find(&row).await;
    browser.reload().await;
    browser.find(&row).await;
    assert_eq!(browser.find_all("[data-testid=history-row]").await.len(), 1, "one run, one row");
    assert_eq!(browser.text_of(&format!("{row} [data-testid=history-preview]")).await, prompt);
    assert_eq!(browser.text_of(&format!("{row} .badge")).await, "Completed", "the row's state badge");
    assert!(browser.find_all("#history-empty").await.is_empty());
    browser.screenshot("home-history").await;

    // The row leads back to the run.
    browser.click(&format!("{row} a")).await;
    assert_eq!(browser.path().await, format!("/runs/{id}"));
    browser.wait_for_run_state(RunState::Completed).await;
    browser.close().await;
}
