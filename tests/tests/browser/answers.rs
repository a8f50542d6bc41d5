//! Answers that are not whole: a stalled stream's silence and deadline, and an attempt cut off
//! and replaced by its retry (still readable). Text a cancel left behind is in `verdicts.rs`.

use std::time::Instant;

use backend::emulator::reply_for;
use common::{FaultKind, FaultPlan, RunState};

use crate::harness::{Browser, DEADLINE, spawn_site_with, words};

/// The seconds of silence in "No tokens for 4 s · stall timeout at 8 s".
fn silent_seconds(notice: &str) -> Option<u64> {
    notice.strip_prefix("No tokens for ")?.split(' ').next()?.parse().ok()
}

#[tokio::test]
async fn a_stalled_stream_shows_its_silence_and_the_deadline_then_the_retry_completes() {
    // Long enough an idle timeout to watch the notice (it shows after 3 s of silence) count.
    let site = spawn_site_with(0, |app| app.stream_idle_timeout_secs = 9.0).await;
    site.inject(FaultPlan { kind: FaultKind::Stall, fail_first: 1, every_nth: 0 }).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt("Stall after a word").await;

    let first = browser.wait_for_text("#stall-indicator", |t| silent_seconds(t).is_some()).await;
    assert!(first.ends_with(" s · stall timeout at 9 s"), "{first:?}");
    let first_seconds = silent_seconds(&first).unwrap();
    assert!(first_seconds >= 3, "shown only after a few silent seconds: {first:?}");
    assert!(browser.run_view().await.is(RunState::Running));
    let later =
        browser.wait_for_text("#stall-indicator", |t| silent_seconds(t).is_some_and(|s| s > first_seconds)).await;
    browser.screenshot("stall-indicator").await;
    assert!(later.contains("stall timeout at 9 s"), "{later:?}");

    let done = browser.wait_for_run_state(RunState::Completed).await;
    assert!(!done.response.is_empty());
    assert!(browser.find_all("#stall-indicator").await.is_empty(), "no stall notice once the answer is whole");
    let error =
        browser.text_of("#task-call_bedrock [data-testid=attempt][data-attempt='1'] [data-testid=attempt-error]").await;
    assert!(error.contains("idle"), "attempt 1 failed as a stall: {error:?}");
    browser.close().await;
}

#[tokio::test]
async fn a_cut_off_attempt_is_marked_through_its_retry_and_stays_readable_after() {
    // A retry delay long enough to look at the cut answer while it waits, even on a slow machine.
    let site = spawn_site_with(0, |app| app.bedrock_retry_delay_secs = 6.0).await;
    site.inject(FaultPlan { kind: FaultKind::Cut, fail_first: 1, every_nth: 0 }).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    let prompt = "Cut me off halfway";
    browser.submit_prompt(prompt).await;

    let waiting = browser.wait_for_text("#partial-note", |t| !t.is_empty()).await;
    assert_eq!(waiting, "Partial: attempt 1 was cut off; attempt 2 will replace it.");
    let view = browser.run_view().await;
    assert!(!view.streaming, "no streaming cursor once the attempt ended: {view:#?}");
    assert!(!view.response.trim().is_empty(), "the cut text stays on screen through the countdown");
    browser.screenshot("partial-cut-off-awaiting-retry").await;

    let done = browser.wait_for_run_state(RunState::Completed).await;
    assert!(!done.streaming);
    assert_eq!(browser.text_of("#partial-note").await, "Attempt 1 cut off; replaced by attempt 2.");
    browser.click("#attempt-outputs summary").await;
    let cut_text =
        browser.text_of("[data-testid=attempt-output][data-attempt='1'] [data-testid=attempt-output-text]").await;
    let whole = words(&reply_for(prompt));
    assert!(!cut_text.trim().is_empty(), "attempt 1's output is kept");
    assert!(
        whole.starts_with(&words(&cut_text)) && words(&cut_text).len() < whole.len(),
        "attempt 1 wrote the start of the answer: {cut_text:?}"
    );
    let fate = browser.text_of("[data-testid=attempt-output][data-attempt='1']").await;
    assert!(fate.contains("cut off; replaced by attempt 2"), "{fate:?}");
    let second = browser.text_of("[data-testid=attempt-output][data-attempt='2']").await;
    assert!(second.contains("complete"), "{second:?}");
    browser.screenshot("partial-attempt-outputs").await;

    // A reload rebuilds every attempt's output from the stored events.
    browser.reload().await;
    browser.wait_for_run_state(RunState::Completed).await;
    let started = Instant::now();
    while browser.text_of("#partial-note").await != "Attempt 1 cut off; replaced by attempt 2." {
        assert!(started.elapsed() < DEADLINE, "the note did not come back after a reload");
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    browser.find("[data-testid=attempt-output][data-attempt='1']").await;
    browser.close().await;
}
