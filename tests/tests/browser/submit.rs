//! The happy path: a prompt goes in, the answer streams onto the page, the run completes.

use backend::emulator::reply_for;
use common::RunState;

use crate::harness::{Browser, rendered_words, spawn_site, words};

#[tokio::test]
async fn a_submitted_prompt_streams_its_response_and_ends_completed() {
    let site = spawn_site(20).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;

    let prompt = "Explain exponential backoff in two sentences";
    let id = browser.submit_prompt(prompt).await;
    let partial = browser.wait_for_run("part of the answer while the run is running", |v| v.is_streaming_text()).await;
    let expected = rendered_words(&reply_for(prompt));
    assert!(words(&partial.response).len() < expected.len(), "the first text seen is already complete: {partial:#?}");

    let done = browser.wait_for_run_state(RunState::Completed).await;
    assert_eq!(words(&done.response), expected, "the page shows the emulator's reply");
    assert!(!done.streaming, "a completed response is no longer marked as streaming");
    // The reply's Markdown is rendered, not shown as source.
    assert_eq!(browser.text_of("#response strong").await, "built-in Bedrock emulator");
    assert_eq!(browser.find_all("#response li").await.len(), 3, "the reply's three list items");
    assert!(!done.response.contains("**"), "no Markdown markers left: {}", done.response);
    // The model's facts once it is done: tokens and stop reason.
    assert!(browser.text_of("[data-testid=usage]").await.contains(" out"), "token usage is shown");
    assert_eq!(browser.text_of("[data-testid=stop-reason]").await, "end of turn");
    assert_eq!(browser.text_of("#task-call_bedrock [data-testid=task-attempt]").await, "attempt 1 of 3");
    assert_eq!(site.run(id).await.state, RunState::Completed, "the server agrees");
    browser.screenshot("completed-run").await;
    browser.close().await;
}
