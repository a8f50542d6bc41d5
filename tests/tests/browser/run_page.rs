//! The run page's shape and manners: the answer above the fold on a phone with a progress strip
//! that opens onto the timeline and the attempt chart, log filters, search and download,
//! announcements that tell a screen reader the run is over, focus after Cancel, copy buttons.

use std::time::Instant;

use common::{FaultKind, FaultPlan, RunState};
use serde_json::{Value, json};

use crate::harness::{Browser, DEADLINE, spawn_site, words};

/// The phone the issue measured on (an iPhone 12–15 in CSS pixels).
const PHONE: (u32, u32) = (390, 844);

/// Polls `script` (a function body) until its result satisfies `check`; fails with the last
/// result after [`DEADLINE`].
async fn wait_for_value(browser: &Browser, what: &str, script: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let value = browser.eval(script, vec![]).await;
        if check(&value) {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}; the page gives {value}");
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
}

/// The `data-kind` of every bar on the attempt chart, in order.
async fn chart_bars(browser: &Browser) -> Vec<String> {
    let script = "return [...document.querySelectorAll('[data-testid=chart-bar]')].map(b => b.dataset.kind);";
    let kinds = browser.eval(script, vec![]).await;
    kinds.as_array().unwrap().iter().map(|k| k.as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn on_a_phone_the_response_is_above_the_fold_and_the_progress_strip_opens_onto_the_timeline() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    let (width, height) = PHONE;
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 2, "mobile": true }),
        )
        .await;
    browser.open_home().await;
    browser.submit_prompt("Answer me on a phone").await;
    browser.wait_for_run_state(RunState::Completed).await;
    let strip = browser.wait_for_text("#progress-strip", |t| t.ends_with("call_bedrock ✓")).await;
    assert_eq!(words(&strip), "Tasks: load_prompt_file ✓ · call_bedrock ✓");

    let layout = browser
        .eval(
            "const top = s => document.querySelector(s).getBoundingClientRect().top; \
             return { viewport: document.documentElement.clientWidth, scroll: document.documentElement.scrollWidth, \
                      response: top('section.response'), text: top('#response'), \
                      timeline: document.querySelector('#timeline').checkVisibility(), \
                      open: document.querySelector('#progress').open, scrolled: window.scrollY };",
            vec![],
        )
        .await;
    assert_eq!(layout["viewport"], json!(width), "the phone viewport is in effect: {layout}");
    assert!(layout["scroll"].as_f64().unwrap() <= f64::from(width), "nothing scrolls sideways: {layout}");
    assert_eq!(layout["scrolled"], json!(0), "{layout}");
    assert!(
        layout["response"].as_f64().unwrap() < 500.0,
        "the response panel starts high in the first screen: {layout}"
    );
    assert!(layout["text"].as_f64().unwrap() < f64::from(height) - 100.0, "the answer itself is on screen: {layout}");
    assert_eq!(layout["open"], json!(false), "the timeline starts folded into its strip on a phone: {layout}");
    assert_eq!(layout["timeline"], json!(false), "the folded timeline is hidden: {layout}");
    browser.screenshot("phone-layout").await;

    browser.click("#progress-strip").await;
    wait_for_value(
        &browser,
        "the timeline and the chart to unfold",
        "const seen = s => document.querySelector(s)?.checkVisibility() ?? false; \
         return seen('#task-call_bedrock') && seen('#attempt-chart');",
        |v| v == &json!(true),
    )
    .await;
    assert_eq!(browser.text_of("#task-call_bedrock [data-testid=task-attempt]").await, "attempt 1 of 3");
    browser.screenshot("phone-timeline-open").await;
    browser.close().await;
}

#[tokio::test]
async fn the_progress_strip_counts_down_a_retry_and_the_chart_draws_each_attempt_and_the_wait_between() {
    let site = spawn_site(0).await;
    site.inject(FaultPlan { kind: FaultKind::Throttle, fail_first: 1, every_nth: 0 }).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt("Throttle me once, then draw it").await;

    let waiting = browser.wait_for_text("#progress-strip", |t| t.contains("retrying")).await;
    let waiting = words(&waiting);
    assert!(waiting.starts_with("Tasks: load_prompt_file ✓ · call_bedrock failed, retrying in "), "{waiting:?}");
    browser.wait_for_run_state(RunState::Completed).await;
    let done = browser.wait_for_text("#progress-strip", |t| t.ends_with("✓ · call_bedrock attempt 2 ✓")).await;
    assert_eq!(words(&done), "Tasks: load_prompt_file ✓ · call_bedrock attempt 2 ✓");

    assert_eq!(chart_bars(&browser).await, ["Completed", "Failed", "wait", "Completed"]);
    let labels = browser
        .eval("return [...document.querySelectorAll('[data-testid=chart-bar]')].map(b => b.textContent);", vec![])
        .await;
    let labels: Vec<&str> = labels.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(labels[1].starts_with("call_bedrock attempt 1: failed, "), "{labels:?}");
    assert!(labels[2].starts_with("call_bedrock wait of ") && labels[2].ends_with(" before attempt 2"), "{labels:?}");
    assert!(labels[3].starts_with("call_bedrock attempt 2: completed, "), "{labels:?}");
    // The wait is the retry delay (2 s) of a run whose attempts take milliseconds: the widest bar.
    let widths = browser
        .eval(
            "return [...document.querySelectorAll('[data-testid=chart-bar]')].map(b => b.getBoundingClientRect().width);",
            vec![],
        )
        .await;
    let widths: Vec<f64> = widths.as_array().unwrap().iter().filter_map(Value::as_f64).collect();
    assert!(widths.iter().all(|&w| w > 0.0), "every bar is visible: {widths:?}");
    assert!(widths[2] > widths[1] && widths[2] > widths[3], "the 2 s wait outlasts both attempts: {widths:?}");
    browser.screenshot("attempt-chart").await;
    browser.close().await;
}

#[tokio::test]
async fn a_level_with_no_lines_says_so_the_search_narrows_the_lines_and_the_download_holds_them() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    let downloads = tempfile::tempdir().unwrap();
    browser.cdp("Page.setDownloadBehavior", json!({ "behavior": "allow", "downloadPath": downloads.path() })).await;
    browser.open_home().await;
    let id = browser.submit_prompt("Log me").await;
    browser.wait_for_run_state(RunState::Completed).await;
    let lines_script = "return [...document.querySelectorAll('[data-testid=log-line]')].map(l => l.innerText);";
    let all = wait_for_value(&browser, "log lines", lines_script, |v| v.as_array().is_some_and(|a| a.len() >= 3)).await;
    let all: Vec<String> = all.as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect();
    let warned = site.logs(id).await.iter().any(|l| l.level >= common::LogLevel::Warn);
    assert!(!warned, "a plain completed run logs no warning, which this test relies on");
    for line in &all {
        let time = line.split_whitespace().next().unwrap_or_default();
        let ms = time.rsplit_once('.').map(|(_, ms)| ms).unwrap_or_default();
        assert!(time.len() == 12 && ms.len() == 3 && ms.bytes().all(|b| b.is_ascii_digit()), "{line:?}");
    }

    browser.find("#log-level").await.select_by_value("WARN").await.unwrap();
    assert_eq!(browser.wait_for_text("[data-testid=log-empty]", |t| !t.is_empty()).await, "No WARN lines.");
    browser.find("#log-level").await.select_by_value("TRACE").await.unwrap();

    // A word of one line and not of every line: the search must narrow, not only keep.
    let word = all
        .iter()
        .flat_map(|line| line.split_whitespace().skip(3))
        .find(|w| w.len() > 4 && all.iter().filter(|l| l.contains(*w)).count() < all.len())
        .unwrap_or_else(|| panic!("no distinctive word in {all:?}"))
        .to_owned();
    let expected: Vec<&String> = all.iter().filter(|l| l.contains(&word)).collect();
    browser.find("#log-search").await.send_keys(&word.to_uppercase()).await.unwrap();
    let shown = wait_for_value(&browser, "the search to apply", lines_script, |v| {
        v.as_array().is_some_and(|a| a.len() == expected.len())
    })
    .await;
    assert!(shown.as_array().unwrap().iter().all(|l| l.as_str().unwrap().contains(&word)), "{shown}");

    browser.click("#download-logs").await;
    let file = downloads.path().join(format!("run-{}-logs.txt", &id.to_string()[..8]));
    let started = Instant::now();
    let text = loop {
        // Chromium writes to a `.crdownload` name and renames once the file is whole, but the
        // final name can also appear empty first: wait for content.
        if let Ok(text) = std::fs::read_to_string(&file)
            && !text.is_empty()
        {
            break text;
        }
        assert!(started.elapsed() < DEADLINE, "no {} downloaded", file.display());
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    };
    assert_eq!(text.lines().count(), expected.len(), "the file holds the lines shown:\n{text}");
    assert!(text.lines().all(|l| l.contains(&word) && l.contains("Z ")), "UTC times and the lines shown:\n{text}");
    browser.close().await;
}

#[tokio::test]
async fn the_end_of_a_run_is_announced_politely_while_log_lines_are_not_announced() {
    let site = spawn_site(10).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt("Tell me when you are done").await;
    browser.wait_for_run("the answer streaming", |v| v.is_streaming_text()).await;
    browser.screenshot("state-running").await;

    let regions = browser
        .eval(
            "const s = document.querySelector('#response-status'); const logs = document.querySelector('#log-list'); \
             return { live: s && s.getAttribute('aria-live'), inResponse: !!s?.closest('section.response'), \
                      text: s ? s.textContent : null, logRole: logs.getAttribute('role'), \
                      logLive: logs.getAttribute('aria-live'), \
                      liveInLogs: logs.querySelectorAll('[aria-live], [role=log], [role=status], [role=alert]').length };",
            vec![],
        )
        .await;
    assert_eq!(regions["live"], json!("polite"), "{regions}");
    assert_eq!(regions["inResponse"], json!(true), "{regions}");
    assert_eq!(regions["text"], json!(""), "nothing announced while the run goes on: {regions}");
    // role=log is a live region too, so the list must have neither.
    assert_eq!((&regions["logRole"], &regions["logLive"]), (&Value::Null, &Value::Null), "{regions}");
    assert_eq!(regions["liveInLogs"], json!(0), "{regions}");

    browser.wait_for_run_state(RunState::Completed).await;
    assert_eq!(browser.wait_for_text("#response-status", |t| !t.is_empty()).await, "Run completed.");
    browser.close().await;
}

#[tokio::test]
async fn after_cancel_focus_moves_to_run_again_and_the_cancellation_is_announced() {
    let site = spawn_site(10).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt("Cancel me and keep my focus").await;
    browser.wait_for_run("the answer streaming", |v| v.is_streaming_text()).await;

    browser.click("#cancel-run").await;
    browser.wait_for_run_state(RunState::Cancelled).await;
    let started = Instant::now();
    while browser.focused_id().await != "rerun" {
        assert!(started.elapsed() < DEADLINE, "focus is on {:?}, not Run again", browser.focused_id().await);
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    let said = browser.wait_for_text("#response-status", |t| !t.is_empty()).await;
    assert!(said.starts_with("Run cancelled. "), "{said:?}");
    browser.close().await;
}

#[tokio::test]
async fn copy_buttons_say_copied_then_copy_again_and_each_code_block_copies_its_own_code() {
    let site = spawn_site(0).await;
    // The emulator quotes the prompt, so a fenced block in it becomes a code block in the answer.
    let run = site.submit("Quote this code:\n```\nlet answer = 42;\n```\nThanks").await;
    let browser = Browser::open(&site).await;
    browser
        .cdp("Browser.grantPermissions", json!({ "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] }))
        .await;
    browser.open_run(run.id).await;
    browser.wait_for_run_state(RunState::Completed).await;

    let button = "#response .code-block [data-testid=copy-code]";
    assert_eq!(browser.wait_for_text(button, |t| !t.is_empty()).await, "Copy");
    browser.click(button).await;
    browser.wait_for_text(button, |t| t == "Copied").await;
    let copied = browser
        .client
        .execute_async("navigator.clipboard.readText().then(arguments[0], e => arguments[0]('failed: ' + e));", vec![])
        .await
        .unwrap();
    assert_eq!(copied, json!("let answer = 42;\n"), "the code block's own text");
    browser.wait_for_text(button, |t| t == "Copy").await;

    browser.click("#copy-response").await;
    browser.wait_for_text("#copy-response", |t| t == "Copied").await;
    browser.wait_for_text("#copy-response", |t| t == "Copy").await;
    assert!(browser.find_all("[data-testid=copy-error]").await.is_empty(), "copying worked");
    browser.close().await;
}
