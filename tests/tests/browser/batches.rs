//! Batches from the page: a file picked in the real browser's file input goes to the server as
//! it is, and the batch's page follows its items live to the end.

use std::time::Instant;

use common::BatchId;

use crate::harness::{Browser, DEADLINE, spawn_site};

#[tokio::test]
async fn a_csv_picked_in_the_file_input_becomes_a_batch_whose_page_follows_it_to_the_end() {
    let site = spawn_site(0).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("questions.csv");
    std::fs::write(&csv, "prompt\nName a colour\nName a fruit\nName a river\n").unwrap();

    let browser = Browser::open(&site).await;
    browser.goto("/batches").await;
    browser.find("#batches-empty").await;
    browser.find("#batch-file").await.send_keys(csv.to_str().unwrap()).await.unwrap();
    browser.click("#batch-submit").await;

    let path = browser.wait_for_path("the new batch's page", |path| path.starts_with("/batches/")).await;
    let id: BatchId = path.trim_start_matches("/batches/").parse().unwrap();
    let error = browser.text_of("#batch-error").await;
    assert!(error.is_empty(), "the form refused the file: {error}");

    // Live: the counts reach 3 completed without a reload.
    browser.wait_for_text("[data-testid=batch-count][data-state=Completed] .count", |n| n == "3").await;
    assert_eq!(browser.text_of("#batch-status").await, "Done");
    let started = Instant::now();
    let links = loop {
        let script = "return [...document.querySelectorAll('[data-testid=batch-item] a')].map(a => a.pathname);";
        let links: Vec<String> = serde_json::from_value(browser.eval(script, vec![]).await).unwrap();
        if links.len() == 3 {
            break links;
        }
        assert!(started.elapsed() < DEADLINE, "each item should link to its run: {links:?}");
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    };
    assert!(links.iter().all(|link| link.starts_with("/runs/")), "{links:?}");
    let prompts = browser.text_of("#batch-items tbody").await;
    for prompt in ["Name a colour", "Name a fruit", "Name a river"] {
        assert!(prompts.contains(prompt), "{prompt:?} listed among the items: {prompts}");
    }
    let export = browser.eval("return document.querySelector('#batch-export-csv').getAttribute('href');", vec![]).await;
    assert_eq!(export, format!("/api/batches/{id}/export?format=csv"));
    assert!(browser.find_all("#batch-retry:disabled").await.len() == 1, "nothing failed, nothing to retry");
    // The batch's usage and cost: its three runs, priced (the default model is in the catalog).
    let totals = browser.wait_for_text("#batch-totals", |t| t.starts_with("3 runs")).await;
    assert!(totals.contains("est. $"), "{totals}");
    browser.screenshot("batch-page").await;

    // An item's link opens its run, which completed.
    browser.click("[data-testid=batch-item] a").await;
    browser.wait_for_path("the item's run", |path| path.starts_with("/runs/")).await;
    browser.wait_for_run_state(common::RunState::Completed).await;

    // The list shows the batch, all of it done.
    browser.goto("/batches").await;
    let row = format!("[data-testid=batch-row][data-batch-id='{id}']");
    browser.wait_for_text(&row, |text| text.contains("3/3") && text.contains("Done")).await;

    // In the history, each of its runs leads back to it.
    browser.goto("/history").await;
    browser.find("[data-testid=history-row] .batch-link").await;
    let script = "return [...document.querySelectorAll('[data-testid=history-row] .batch-link')].map(a => a.pathname);";
    let back: Vec<String> = serde_json::from_value(browser.eval(script, vec![]).await).unwrap();
    assert_eq!(back, vec![format!("/batches/{id}"); 3]);
    browser.close().await;
}
