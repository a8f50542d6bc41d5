//! Batches from the page: a file picked in the real browser's file input goes to the server as
//! it is, and the batch's page follows its items live to the end.

use std::time::Instant;

use common::{BatchId, FaultKind, FaultPlan};

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

/// Submits `prompts` as a pasted batch from the batches page and returns its id, on its page.
async fn submit_pasted_batch(browser: &Browser, prompts: &[&str]) -> BatchId {
    browser.goto("/batches").await;
    browser.find("#batch-prompts").await.send_keys(&prompts.join("\n")).await.unwrap();
    browser.click("#batch-submit").await;
    let path = browser.wait_for_path("the new batch's page", |path| path.starts_with("/batches/")).await;
    path.trim_start_matches("/batches/").parse().unwrap()
}

#[tokio::test]
async fn cancel_on_the_batch_page_stops_the_running_and_the_queued_items_alike() {
    // Two words a second: each reply takes many seconds, so the batch is mid-way when cancelled.
    let site = spawn_site(2).await;
    let browser = Browser::open(&site).await;
    let id = submit_pasted_batch(&browser, &["Name a colour", "Name a fruit", "Name a river"]).await;
    browser.wait_for_text("[data-testid=batch-count][data-state=Running] .count", |n| n != "0").await;
    assert_eq!(browser.text_of("#batch-status").await, "Running");

    browser.click("#batch-cancel").await;
    browser.wait_for_text("#batch-status", |status| status == "Cancelled").await;
    browser.wait_for_text("[data-testid=batch-count][data-state=Cancelled] .count", |n| n == "3").await;
    assert!(browser.find_all("#batch-cancel:disabled").await.len() == 1, "a cancelled batch cannot be cancelled again");

    // The server agrees: every item's run was cancelled, none completed.
    let batch: common::BatchSummary =
        reqwest::get(site.url(&format!("/api/batches/{id}"))).await.unwrap().json().await.unwrap();
    assert_eq!((batch.counts.cancelled, batch.counts.completed), (3, 0), "{:?}", batch.counts);
    browser.close().await;
}

#[tokio::test]
async fn retry_failed_on_the_batch_page_runs_the_failed_items_again_until_they_complete() {
    let site = spawn_site(0).await;
    // Bedrock refuses the first two calls outright (no retry helps a validation error): both
    // items fail on their first attempt.
    site.inject(FaultPlan { kind: FaultKind::Validation, fail_first: 2, every_nth: 0 }).await;
    let browser = Browser::open(&site).await;
    submit_pasted_batch(&browser, &["Name a colour", "Name a fruit"]).await;
    browser.wait_for_text("#batch-status", |status| status == "Done, some failed").await;
    assert_eq!(browser.text_of("[data-testid=batch-count][data-state=Failed] .count").await, "2");
    assert_eq!(browser.text_of("#batch-retry").await, "Retry failed (2)");

    browser.click("#batch-retry").await;
    browser.wait_for_text("[data-testid=batch-count][data-state=Completed] .count", |n| n == "2").await;
    assert_eq!(browser.text_of("#batch-status").await, "Done");
    assert!(browser.find_all("#batch-retry:disabled").await.len() == 1, "nothing left to retry");
    browser.close().await;
}
