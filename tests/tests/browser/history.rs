//! The history: the latest runs on the home page, every run on the history page.

use common::{FaultKind, FaultPlan, RunId, RunState};

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

/// The page's path and query string.
async fn location(browser: &Browser) -> String {
    browser.eval("return location.pathname + location.search;", vec![]).await.as_str().unwrap_or_default().to_owned()
}

async fn wait_for_location(browser: &Browser, what: &str, check: impl Fn(&str) -> bool) -> String {
    let started = std::time::Instant::now();
    loop {
        let at = location(browser).await;
        if check(&at) {
            return at;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "timed out waiting for {what}; at {at}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn rows(browser: &Browser) -> Vec<String> {
    let script = "return [...document.querySelectorAll('[data-testid=history-row]')].map(r => r.dataset.runId);";
    let ids = browser.eval(script, vec![]).await;
    ids.as_array().into_iter().flatten().filter_map(|id| id.as_str().map(str::to_owned)).collect()
}

/// The listed run ids once `check` holds for them.
async fn rows_once(browser: &Browser, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
    let started = std::time::Instant::now();
    loop {
        let ids = rows(browser).await;
        if check(&ids) {
            return ids;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "timed out waiting for {what}: {ids:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The history page (`/history`): a compact table with why a run failed and how often it was
/// retried, whose filter and page live in the URL, so leaving for a run and coming back with
/// the browser's back button shows the same rows.
#[tokio::test]
async fn the_history_page_keeps_its_filter_and_page_through_a_visit_to_a_run_and_back() {
    let site = spawn_site(0).await;
    // 52 completed runs, then a failure and a retried run: more than a page of 50.
    let mut completed = Vec::new();
    for n in 0..52 {
        completed.push(site.submit(&format!("Page filler {n}")).await.id);
    }
    for id in &completed {
        site.wait_until_finished(*id).await;
    }
    site.inject(FaultPlan { kind: FaultKind::Validation, fail_first: 1, every_nth: 0 }).await;
    let failed = site.submit("Refused by validation").await.id;
    site.wait_for_state(failed, RunState::Failed).await;
    site.inject(FaultPlan { kind: FaultKind::Throttle, fail_first: 2, every_nth: 0 }).await;
    let retried = site.submit("Throttled twice, then fine").await.id;
    site.wait_for_state(retried, RunState::Completed).await;

    let browser = Browser::open(&site).await;
    browser.goto("/history").await;
    let row = |id: RunId| format!("[data-testid=history-row][data-run-id='{id}']");
    browser.find(&row(retried)).await;
    assert_eq!(browser.text_of(&format!("{} [data-testid=history-retries]", row(retried))).await, "2");
    assert_eq!(browser.text_of(&format!("{} [data-testid=history-retries]", row(completed[51]))).await, "");
    let reason = browser.text_of(&format!("{} [data-testid=history-reason]", row(failed))).await;
    assert!(reason.to_lowercase().contains("validation"), "the failed row says why: {reason:?}");
    assert_eq!(rows(&browser).await.len(), 50, "a page holds 50 runs");

    // Only completed runs: the retried one first, the failure gone; then the older page.
    let pick = "const s = document.querySelector('#history-state-filter'); s.value = 'Completed'; \
                s.dispatchEvent(new Event('change', { bubbles: true }));";
    browser.eval(pick, vec![]).await;
    wait_for_location(&browser, "the filter in the URL", |at| at == "/history?state=Completed").await;
    let first_page =
        rows_once(&browser, "the completed runs", |ids| !ids.contains(&failed.to_string()) && ids.len() == 50).await;
    assert_eq!(first_page[0], retried.to_string());
    browser.click("#history-older").await;
    let older_url = wait_for_location(&browser, "the older page", |at| at.contains("before=")).await;
    assert!(older_url.starts_with("/history?state=Completed&before="), "{older_url}");
    // 53 completed runs (the retried one too): 50 on the first page, the 3 oldest on this one.
    let expected: Vec<String> = completed[..3].iter().rev().map(ToString::to_string).collect();
    rows_once(&browser, "the three oldest completed runs", |ids| ids == expected).await;
    browser.screenshot("history-filtered-older-page").await;

    // Into a run and back: the same filtered page.
    browser.click(&format!("{} a", row(completed[1]))).await;
    browser.wait_for_path("the run page", |path| path == format!("/runs/{}", completed[1])).await;
    browser.eval("history.back();", vec![]).await;
    wait_for_location(&browser, "the history page again", |at| at == older_url).await;
    rows_once(&browser, "the same three runs", |ids| ids == expected).await;
    assert_eq!(browser.value_of("#history-state-filter").await, "Completed", "the filter shows what is applied");
    browser.click("#history-newer").await;
    wait_for_location(&browser, "the newer page", |at| at.contains("after=")).await;
    browser.find(&row(retried)).await;
    browser.close().await;
}

/// Searching the history: the words typed go into the URL, only the runs holding all of them
/// (in the prompt or the emulator's reply) are listed, the matches are marked, and the totals
/// line sums what the search found.
#[tokio::test]
async fn a_search_lists_the_runs_holding_the_words_and_marks_them() {
    let site = spawn_site(0).await;
    let wanted = site.submit("Summarise the Quarterly report").await.id;
    let other = site.submit("Write a poem about rain").await.id;
    for id in [wanted, other] {
        site.wait_until_finished(id).await;
    }

    let browser = Browser::open(&site).await;
    browser.goto("/history").await;
    rows_once(&browser, "both runs", |ids| ids.len() == 2).await;
    let search = "const s = document.querySelector('#history-search'); s.value = 'quarterly REPORT'; \
                  s.dispatchEvent(new Event('change', { bubbles: true }));";
    browser.eval(search, vec![]).await;
    wait_for_location(&browser, "the search in the URL", |at| at == "/history?q=quarterly%20REPORT").await;
    rows_once(&browser, "the one run holding both words", |ids| ids == [wanted.to_string()]).await;
    let marks = browser
        .eval(
            "return [...document.querySelectorAll('[data-testid=history-preview] mark')].map(m => m.textContent);",
            vec![],
        )
        .await;
    assert_eq!(marks, serde_json::json!(["Quarterly", "report"]), "the matches, as written");
    let totals = browser.wait_for_text("#history-totals", |t| t.starts_with("1 run")).await;
    assert!(totals.contains("export"), "{totals}");
    browser.screenshot("history-search").await;
    browser.close().await;
}
