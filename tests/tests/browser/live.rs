//! Live updates: a second window on the same run, a reload in the middle of a run, cancelling.

use backend::emulator::reply_for;
use common::RunState;

use crate::harness::{Browser, rendered_words, spawn_site, words};

#[tokio::test]
async fn a_run_opened_in_a_second_window_updates_live_in_both_and_both_end_with_the_same_response() {
    let site = spawn_site(10).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    let prompt = "Watch me from two windows";
    let id = browser.submit_prompt(prompt).await;
    let expected = rendered_words(&reply_for(prompt));
    let first = browser.client.window().await.unwrap();
    browser.wait_for_run("the answer streaming in the first window", |v| v.is_streaming_text()).await;

    let second = browser.client.new_window(false).await.unwrap().handle;
    browser.client.switch_to_window(second.clone()).await.unwrap();
    browser.open_run(id).await;
    let joined = browser.wait_for_run("the second window showing the run", |v| v.state.is_some()).await;
    assert!(
        joined.is(RunState::Running) && words(&joined.response).len() < expected.len(),
        "the second window opened in the middle of the run: {joined:#?}"
    );
    // From here on neither window reloads: only the live stream can complete them.
    let second_done = browser.wait_for_run_state(RunState::Completed).await;
    browser.client.switch_to_window(first).await.unwrap();
    let first_done = browser.wait_for_run_state(RunState::Completed).await;

    assert_eq!(words(&first_done.response), expected, "the first window's answer");
    assert_eq!(first_done.response, second_done.response, "both windows show the same answer");
    browser.close().await;
}

#[tokio::test]
async fn a_page_reloaded_in_the_middle_of_a_run_ends_with_the_complete_response() {
    let site = spawn_site(10).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    let prompt = "Reload me halfway through";
    browser.submit_prompt(prompt).await;
    browser.wait_for_run("the first words of the answer", |v| v.is_streaming_text()).await;

    browser.reload().await;
    let reloaded = browser.wait_for_run("the run page after the reload", |v| v.state.is_some()).await;
    assert!(reloaded.is(RunState::Running), "the reload happened while the run was still running: {reloaded:#?}");
    let done = browser.wait_for_run_state(RunState::Completed).await;
    // Word for word: a resumed stream that replayed or skipped a delta would show here.
    assert_eq!(words(&done.response), rendered_words(&reply_for(prompt)));
    browser.close().await;
}

#[tokio::test]
async fn a_cancelled_run_shows_cancelled() {
    let site = spawn_site(10).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    let id = browser.submit_prompt("Cancel me while I talk").await;
    browser.wait_for_run("the answer streaming", |v| v.is_streaming_text()).await;

    browser.click("#cancel-run").await;
    let cancelled = browser.wait_for_run_state(RunState::Cancelled).await;
    assert_eq!(browser.text_of("#run-state").await, "Cancelled");
    assert!(!cancelled.streaming, "a cancelled answer is no longer marked as streaming");
    assert!(browser.find_all("#cancel-run").await.is_empty(), "no cancel button on a finished run");
    browser.find("#rerun").await;
    assert_eq!(site.run(id).await.state, RunState::Cancelled, "the server agrees");
    browser.screenshot("cancelled-run").await;
    browser.close().await;
}

#[tokio::test]
async fn a_lost_connection_is_announced_actions_wait_for_it_and_the_run_comes_back_after_reconnecting() {
    let site = spawn_site(5).await;
    let port = site.port;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt("Keep talking while the server goes away").await;
    browser.wait_for_run("the answer streaming", |v| v.is_streaming_text()).await;

    // The server stops (its run is interrupted); the page loses its live connection.
    let dirs = site.stop().await;
    let notice = browser.wait_for_text("#connection-notice", |t| t.contains("Lost the connection")).await;
    assert!(notice.contains("may be out of date"), "{notice}");
    let cancel_disabled = browser.eval("return document.querySelector('#cancel-run').disabled;", vec![]).await;
    assert_eq!(cancel_disabled, serde_json::json!(true), "cancel waits for the server");
    browser.screenshot("connection-lost").await;

    // Back on the same address; "Reconnect now" skips what is left of the backoff.
    let site = tests::spawn_app_in(dirs, |args| {
        args.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        args.static_dir = crate::harness::dist_dir();
    })
    .await;
    if let Ok(button) = browser.client.find(fantoccini::Locator::Css("#reconnect-now")).await {
        // The page may be in a reconnect attempt of its own by now; either way it reconnects.
        let _ = button.click().await;
    }
    let ended = browser.wait_for_run_state(RunState::Crashed).await;

    assert!(browser.find_all("#connection-notice").await.is_empty(), "the notice is gone once reconnected");
    assert!(!ended.streaming);
    browser.find("#rerun").await;
    let rerun_disabled = browser.eval("return document.querySelector('#rerun').disabled;", vec![]).await;
    assert_eq!(rerun_disabled, serde_json::json!(false), "actions work again");
    assert_eq!(site.runs().await[0].state, RunState::Crashed, "the page agrees with the server");
    browser.close().await;
}

#[tokio::test]
async fn the_home_page_announces_a_lost_connection_holds_its_actions_and_resyncs_once_reconnected() {
    let site = spawn_site(50).await;
    let port = site.port;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.wait_for_text("#connection-status", |t| t == "Live").await;
    browser.find("#fault-apply").await;
    let disabled = |css: &'static str| {
        let browser = &browser;
        async move {
            let script = format!("return document.querySelector('{css}').disabled;");
            browser.eval(&script, vec![]).await == serde_json::json!(true)
        }
    };

    let dirs = site.stop().await;
    let notice = browser.wait_for_text("#connection-notice", |t| t.contains("Lost the connection")).await;
    assert!(notice.contains("actions wait until it is back"), "{notice}");
    assert!(disabled("#submit").await, "Run waits for the server");
    assert!(disabled("#fault-apply").await && disabled("#fault-clear").await, "so do the fault buttons");
    // The fault panel's periodic read fails meanwhile: an error the reconnection makes stale.
    browser.wait_for_text("#fault-status", |t| t.contains("Cannot reach the server")).await;

    let site = tests::spawn_app_in(dirs, |args| {
        args.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        args.static_dir = crate::harness::dist_dir();
    })
    .await;
    if let Ok(button) = browser.client.find(fantoccini::Locator::Css("#reconnect-now")).await {
        // The page may be in a reconnect attempt of its own by now; either way it reconnects.
        let _ = button.click().await;
    }
    browser.wait_for_text("#connection-status", |t| t == "Live").await;
    assert!(browser.find_all("#connection-notice").await.is_empty(), "the notice is gone once reconnected");
    browser.wait_for_text("#fault-status", |t| !t.contains("Cannot reach") && t.contains("served")).await;
    assert!(browser.find_all("#health-error").await.is_empty(), "the health is read again");
    assert!(!disabled("#submit").await && !disabled("#fault-apply").await, "actions work again");
    let id = browser.submit_prompt("Back in business").await;
    assert_eq!(site.runs().await[0].id, id, "the run the page started is on the server");
    browser.close().await;
}
