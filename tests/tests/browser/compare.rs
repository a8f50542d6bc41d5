//! The compare page: a run and its replay side by side, the replay's output marked word by
//! word against the original's, readable on a phone.

use common::RunState;
use serde_json::json;

use crate::harness::{Browser, spawn_site};

#[tokio::test]
async fn a_replay_compared_with_its_original_marks_the_words_that_changed() {
    let site = spawn_site(0).await;
    let original = site.submit("Describe a red kite").await;
    site.wait_for_state(original.id, RunState::Completed).await;
    // The emulator's reply quotes the prompt and counts its words and characters: with one
    // word changed ("red" to "blue"), the quote and the character count differ, the rest not.
    let replay = site
        .submit_json(&json!({ "prompt": "Describe a blue kite", "replay_of": original.id, "temperature": 0.7 }))
        .await;
    site.wait_for_state(replay.id, RunState::Completed).await;

    let browser = Browser::open(&site).await;
    browser.goto(&format!("/runs/{}", replay.id)).await;
    browser.click("#compare-run").await;
    browser.wait_for_path("the compare page", |path| path == "/compare").await;
    let table = browser.wait_for_text("#compare-table", |t| t.contains("Temperature")).await;
    assert!(table.contains("0.7"), "the replay's temperature in the table: {table}");
    let marked = |tag: &str| {
        format!("return [...document.querySelectorAll('[data-testid=compare-output] {tag}')].map(e => e.textContent);")
    };
    let removed = browser.eval(&marked("del"), vec![]).await;
    let added = browser.eval(&marked("ins"), vec![]).await;
    let removed: Vec<String> = serde_json::from_value(removed).unwrap();
    let added: Vec<String> = serde_json::from_value(added).unwrap();
    assert!(removed.iter().any(|t| t.contains("red")), "{removed:?}");
    assert!(added.iter().any(|t| t.contains("blue")), "{added:?}");
    assert!(removed.iter().chain(&added).all(|t| !t.contains("emulator")), "the unchanged sentences are not marked");

    // On a phone the outputs stack: one above the other.
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
        )
        .await;
    let tops = browser
        .eval("return [...document.querySelectorAll('[data-testid=compare-output]')].map(e => e.getBoundingClientRect().top);", vec![])
        .await;
    let tops: Vec<f64> = serde_json::from_value(tops).unwrap();
    assert!(tops.len() == 2 && tops[1] > tops[0], "stacked on a phone: {tops:?}");
    browser.screenshot("compare-phone").await;
    browser.close().await;
}
