//! Iterating on a prompt: edit a run as a new one (prefilled, linked both ways), the last used
//! settings kept across page loads, and "run again with more tokens" after a cut answer.

use common::{RunId, RunState};
use serde_json::json;

use crate::harness::{Browser, spawn_site};

/// Replaces the text of the input or textarea matching `css` with `text`.
async fn type_into(browser: &Browser, css: &str, text: &str) {
    let field = browser.find(css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The run id at the end of a `/runs/{id}` path.
fn run_id(path: &str) -> RunId {
    path.trim_start_matches("/runs/").parse().unwrap_or_else(|e| panic!("no run id in {path}: {e}"))
}

#[tokio::test]
async fn editing_a_run_prefills_the_form_and_the_new_run_links_back_and_forth() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.find("#prompt").await.send_keys("Explain retries").await.unwrap();
    browser.click("#settings summary").await;
    type_into(&browser, "#system-prompt", "Answer in one sentence").await;
    type_into(&browser, "#max-tokens", "40").await;
    type_into(&browser, "#temperature", "0.2").await;
    browser.click("#submit").await;
    let first = run_id(&browser.wait_for_path("the first run's page", |p| p.starts_with("/runs/")).await);
    browser.wait_for_run_state(RunState::Completed).await;
    let model = site.run(first).await.model_id;

    browser.click("#edit-run").await;
    browser.wait_for_path("the edit page", |p| p == format!("/runs/{first}/edit")).await;
    browser.find("#edit-source").await;
    assert_eq!(browser.value_of("#prompt").await, "Explain retries");
    assert_eq!(browser.value_of("#system-prompt").await, "Answer in one sentence");
    assert_eq!(browser.value_of("#max-tokens").await, "40");
    assert_eq!(browser.value_of("#temperature").await, "0.2");
    assert_eq!(browser.value_of("#model-id").await, model);
    assert_eq!(browser.eval("return document.querySelector('#settings').open;", vec![]).await, true);
    let source = browser.find("#edit-source a").await;
    assert_eq!(source.attr("href").await.unwrap(), Some(format!("/runs/{first}")));
    browser.screenshot("edit-as-a-new-run").await;

    browser.find("#prompt").await.send_keys(" to a child").await.unwrap();
    type_into(&browser, "#max-tokens", "60").await;
    browser.click("#submit").await;
    let second = run_id(
        &browser
            .wait_for_path("the new run's page", |p| p.starts_with("/runs/") && !p.contains(&first.to_string()))
            .await,
    );
    let made = site.run(second).await;
    assert_eq!(made.replay_of, Some(first), "the new run names the one it came from");
    assert_eq!(made.prompt, "Explain retries to a child");
    assert_eq!(
        (made.system.as_deref(), made.max_tokens, made.temperature),
        (Some("Answer in one sentence"), 60, Some(0.2))
    );

    let back = browser.find("#replay-of a").await;
    assert_eq!(back.attr("href").await.unwrap(), Some(format!("/runs/{first}")));
    browser.screenshot("made-from-run").await;
    back.click().await.unwrap();
    browser.wait_for_path("the original run's page", |p| p == format!("/runs/{first}")).await;
    let forward = browser.find("#replays a").await;
    assert_eq!(forward.attr("href").await.unwrap(), Some(format!("/runs/{second}")));
    assert!(browser.find_all("#replay-of").await.is_empty(), "the original was made from nothing");

    // The settings of the last run are the form's on a fresh page load.
    browser.open_home().await;
    browser.find("#prompt").await;
    assert_eq!(browser.value_of("#system-prompt").await, "Answer in one sentence");
    assert_eq!(browser.value_of("#max-tokens").await, "60");
    assert_eq!(browser.value_of("#temperature").await, "0.2");
    assert_eq!(browser.value_of("#prompt").await, "", "the prompt itself is not kept");
    assert!(browser.find_all("#edit-source").await.is_empty(), "a new run is linked to nothing");
    browser.close().await;
}

#[tokio::test]
async fn an_answer_cut_at_max_tokens_offers_a_run_with_twice_the_tokens_linked_to_it() {
    let site = spawn_site(0).await;
    let cut = site.submit_json(&json!({ "prompt": "Tell me a long story", "max_tokens": 3 })).await;
    let browser = Browser::open(&site).await;
    browser.open_run(cut.id).await;
    browser.wait_for_run_state(RunState::Completed).await;

    let verdict = browser.wait_for_text("[data-testid=verdict-summary]", |t| !t.is_empty()).await;
    assert!(verdict.starts_with("The answer hit the max tokens limit (3)."), "{verdict:?}");
    let tone = browser.find("#verdict").await.attr("data-tone").await.unwrap();
    assert_eq!(tone.as_deref(), Some("warning"));
    browser.screenshot("max-tokens-verdict").await;

    browser.click("#rerun-more-tokens").await;
    let again = run_id(
        &browser
            .wait_for_path("the new run's page", |p| p.starts_with("/runs/") && !p.contains(&cut.id.to_string()))
            .await,
    );
    let again = site.run(again).await;
    assert_eq!(again.max_tokens, 6, "twice the tokens");
    assert_eq!(again.replay_of, Some(cut.id));
    assert_eq!((again.prompt.as_str(), again.model_id.as_str()), ("Tell me a long story", cut.model_id.as_str()));
    let back = browser.find("#replay-of a").await;
    assert_eq!(back.attr("href").await.unwrap(), Some(format!("/runs/{}", cut.id)));
    browser.close().await;
}
