//! Retries on screen: failed attempts with their errors, the countdown, the final attempt.

use common::{FaultKind, FaultPlan, RunState};

use crate::harness::{Browser, DEADLINE, spawn_site};

/// The number of seconds in a countdown text like "retrying in 2 s (attempt 2 of 3 next)".
fn seconds_left(countdown: &str) -> Option<u32> {
    countdown.strip_prefix("retrying in ")?.split(' ').next()?.parse().ok()
}

#[tokio::test]
async fn a_throttled_run_shows_its_failed_attempts_and_the_countdown_then_completes_on_attempt_3() {
    let site = spawn_site(0).await;
    site.inject(FaultPlan { kind: FaultKind::Throttle, fail_first: 2, every_nth: 0 }).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt("Throttle me twice").await;

    // The first retry: the failed attempt's error and a countdown that counts down.
    browser.find("#task-call_bedrock[data-state=AwaitingRetry] [data-testid=retry-countdown]").await;
    let error =
        browser.text_of("#task-call_bedrock [data-testid=attempt][data-attempt='1'] [data-testid=attempt-error]").await;
    assert!(error.to_lowercase().contains("throttl"), "attempt 1's error names the throttling: {error:?}");
    browser.screenshot("awaiting-retry").await;
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    loop {
        assert!(started.elapsed() < DEADLINE, "the countdowns never ended; saw {seen:?}");
        let countdown = browser.text_of("#task-call_bedrock [data-testid=retry-countdown]").await;
        if countdown.is_empty() {
            break; // the retry started
        }
        if countdown.contains("attempt 2 of 3 next")
            && let Some(secs) = seconds_left(&countdown)
            && seen.last() != Some(&secs)
        {
            seen.push(secs);
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    assert!(seen.len() >= 2 && seen.windows(2).all(|w| w[0] > w[1]), "a 2 s countdown ticking down, saw {seen:?}");

    browser.wait_for_run_state(RunState::Completed).await;
    assert_eq!(browser.text_of("#task-call_bedrock [data-testid=task-attempt]").await, "attempt 3 of 3");
    let attempts = browser.find_all("#task-call_bedrock [data-testid=attempt]").await;
    assert_eq!(attempts.len(), 3, "three call_bedrock attempts listed");
    for n in ["1", "2"] {
        let row = format!("#task-call_bedrock [data-testid=attempt][data-attempt='{n}']");
        let error = browser.text_of(&format!("{row} [data-testid=attempt-error]")).await;
        assert!(error.to_lowercase().contains("throttl"), "attempt {n}'s error names the throttling: {error:?}");
        assert!(browser.text_of(&row).await.contains("HTTP 429"), "attempt {n} shows its HTTP status");
    }
    let last = browser.find("#task-call_bedrock [data-testid=attempt][data-attempt='3']").await;
    assert_eq!(last.attr("data-state").await.unwrap().as_deref(), Some("Completed"));
    assert!(browser.find_all("[data-testid=retry-countdown]").await.is_empty(), "no countdown once done");
    assert!(!browser.run_view().await.response.is_empty(), "the third attempt's answer is shown");
    browser.close().await;
}
