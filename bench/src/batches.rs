//! The batch figures: a batch against an emulated per-minute quota, beside what sending its
//! items all at once or one at a time does; and a 20,000-item batch's memory and page load.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{BatchSummary, EmulatorStatus, RunState, RunSummary};
use futures_util::StreamExt;
use serde_json::json;

use crate::feed::submit;
use crate::figures::Figure;
use crate::server::{Server, mb, scratch};
use crate::stats::Samples;

/// Requests per minute of the emulated quota, and its latency.
const QUOTA_RPM: u64 = 600;
const LATENCY_MS: &str = "1000";

fn quota_flags(rpm: &str) -> Vec<&str> {
    vec![
        "--bedrock",
        "emulator",
        "--emulator-latency-ms",
        LATENCY_MS,
        "--emulator-tokens-per-sec",
        "0",
        "--emulator-quota-rpm",
        rpm,
    ]
}

async fn get<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str) -> anyhow::Result<T> {
    let response = client.get(url).send().await?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    Ok(response.json().await?)
}

/// Attempts the emulator saw and those it throttled.
async fn emulator_calls(client: &reqwest::Client, server: &Server) -> anyhow::Result<(u64, u64)> {
    let status: EmulatorStatus = get(client, &format!("{}/api/emulator/faults", server.url)).await?;
    Ok((status.calls, status.throttled))
}

async fn submit_batch(client: &reqwest::Client, server: &Server, prompts: &[String]) -> anyhow::Result<BatchSummary> {
    let response =
        client.post(format!("{}/api/batches", server.url)).json(&json!({ "prompts": prompts })).send().await?;
    if response.status() != reqwest::StatusCode::ACCEPTED {
        bail!("POST /api/batches: {} {}", response.status(), response.text().await.unwrap_or_default());
    }
    Ok(response.json().await?)
}

/// Polls the batch until nothing more will happen to its items.
async fn until_finished(
    client: &reqwest::Client,
    server: &Server,
    batch: &BatchSummary,
) -> anyhow::Result<BatchSummary> {
    let url = format!("{}/api/batches/{}", server.url, batch.id);
    loop {
        let now: BatchSummary = get(client, &url).await?;
        if now.counts.finished() == now.total {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn prompts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("Summarise ticket {i} in one line")).collect()
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

/// A batch of `items` against a 600 requests-per-minute quota with 1 s latency, compared with
/// the same items submitted as single runs all at once, and one at a time for `one_by_one`.
pub async fn quota(binary: &Path, items: usize, one_by_one: Duration) -> anyhow::Result<Figure> {
    let client = reqwest::Client::new();
    let rpm = QUOTA_RPM.to_string();
    let quota_per_sec = QUOTA_RPM as f64 / 60.0;

    let dir = scratch("batch-quota")?;
    let server = Server::start(binary, &dir, &quota_flags(&rpm), &[]).await?;
    let started = Instant::now();
    let batch = submit_batch(&client, &server, &prompts(items)).await?;
    let done = until_finished(&client, &server, &batch).await?;
    let took = started.elapsed();
    let (attempts, throttled) = emulator_calls(&client, &server).await?;
    let detail: serde_json::Value = get(&client, &format!("{}/api/batches/{}", server.url, batch.id)).await?;
    let budget = detail["pace"]["per_minute"].as_u64();
    let peak = server.peak_rss()?;
    server.stop();
    let failed = done.counts.failed + done.counts.crashed + done.counts.cancelled;
    let rate = items as f64 / took.as_secs_f64();
    let share = percent(throttled, attempts);

    // The same items as single runs, all submitted at once, as a script would.
    let dir = scratch("batch-all-at-once")?;
    let server = Server::start(binary, &dir, &quota_flags(&rpm), &[]).await?;
    let started = Instant::now();
    let url = server.url.clone();
    let ids: Vec<anyhow::Result<common::RunId>> = futures_util::stream::iter(prompts(items))
        .map(|prompt| {
            let (client, url) = (client.clone(), url.clone());
            async move { submit(&client, &url, &prompt).await }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let submitted = ids.into_iter().collect::<anyhow::Result<Vec<_>>>()?.len();
    loop {
        let running: Vec<RunSummary> = get(&client, &format!("{url}/api/runs?limit=1&state=Running")).await?;
        let pending: Vec<RunSummary> = get(&client, &format!("{url}/api/runs?limit=1&state=Pending")).await?;
        if running.is_empty() && pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let completed = count(&client, &url, RunState::Completed).await?;
    let naive_failed = count(&client, &url, RunState::Failed).await?;
    let naive_took = started.elapsed();
    let (naive_attempts, naive_throttled) = emulator_calls(&client, &server).await?;
    server.stop();

    // One at a time, for a while: its rate is one item per call's latency.
    let dir = scratch("batch-one-at-a-time")?;
    let server = Server::start(binary, &dir, &quota_flags(&rpm), &[]).await?;
    let started = Instant::now();
    let mut sequential = 0usize;
    while started.elapsed() < one_by_one {
        let id = submit(&client, &server.url, &format!("Summarise ticket {sequential} in one line")).await?;
        let run = format!("{}/api/runs/{id}", server.url);
        while !get::<common::RunDetail>(&client, &run).await?.state.is_terminal() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sequential += 1;
    }
    let sequential_rate = sequential as f64 / started.elapsed().as_secs_f64();
    server.stop();

    Ok(Figure {
        name: "batch at a quota",
        how: format!(
            "{items} items, emulator quota {QUOTA_RPM} requests/min ({quota_per_sec:.0}/s) with {LATENCY_MS} ms latency, \
             default retries (2, 5–10 s apart): the batch took {:.0} s, {attempts} attempts, {throttled} throttled, \
             learnt budget {} calls/min, peak RSS {}. All at once ({submitted} single runs submitted together): \
             {completed} completed, {naive_failed} failed in {:.0} s, {naive_throttled} of {naive_attempts} attempts \
             throttled ({:.0} %). One at a time: {sequential} items in {:.0} s = {sequential_rate:.2} items/s ({:.0} % of \
             the quota), so {items} items would take {:.0} min",
            took.as_secs_f64(),
            budget.map_or_else(|| "none".to_owned(), |b| b.to_string()),
            mb(peak),
            naive_took.as_secs_f64(),
            percent(naive_throttled, naive_attempts),
            one_by_one.as_secs_f64(),
            100.0 * sequential_rate / quota_per_sec,
            items as f64 / sequential_rate / 60.0,
        ),
        target: "rate ≥ 90 % of the quota, 0 failed items, throttled ≤ 5 % of attempts",
        measured: format!(
            "{rate:.2} items/s = {:.1} % of the quota; {failed} failed items; {share:.1} % of attempts throttled",
            100.0 * rate / quota_per_sec
        ),
        met: rate >= 0.9 * quota_per_sec && failed == 0 && share <= 5.0,
    })
}

/// Runs in `state`, paging through the whole history.
async fn count(client: &reqwest::Client, url: &str, state: RunState) -> anyhow::Result<usize> {
    let first = format!("{url}/api/runs?limit=1000&state={state}");
    let mut page: Vec<RunSummary> = get(client, &first).await?;
    let mut total = page.len();
    while page.len() == 1000 {
        let last = page.last().map(|run| run.id).context("a full page has a last run")?;
        page = get(client, &format!("{first}&before={last}")).await?;
        total += page.len();
    }
    Ok(total)
}

/// A batch of `items` on the instant emulator: the server's peak memory, and the batch page's
/// first load (its two requests: the batch with its pace, and the first 100 items) while the
/// batch runs and once it is over.
pub async fn large(binary: &Path, items: usize) -> anyhow::Result<Figure> {
    let client = reqwest::Client::new();
    let dir = scratch("batch-large")?;
    let flags = ["--bedrock", "emulator", "--emulator-latency-ms", "0", "--emulator-tokens-per-sec", "0"];
    let server = Server::start(binary, &dir, &flags, &[]).await?;
    let idle = server.rss()?;
    let started = Instant::now();
    let batch = submit_batch(&client, &server, &prompts(items)).await?;
    let accepted = started.elapsed();
    let detail = format!("{}/api/batches/{}", server.url, batch.id);
    let first_items = format!("{}/api/batches/{}/items?limit=100", server.url, batch.id);
    let page_load = || async {
        let started = Instant::now();
        let (summary, items) =
            tokio::join!(get::<BatchSummary>(&client, &detail), get::<Vec<serde_json::Value>>(&client, &first_items));
        let summary = summary?;
        if items?.len() != 100.min(items_len(&summary)) {
            bail!("the first page of items is short");
        }
        Ok::<_, anyhow::Error>((started.elapsed(), summary))
    };
    let mut during = Samples::default();
    let done = loop {
        let (took, summary) = page_load().await?;
        during.push(took);
        if summary.counts.finished() == summary.total {
            break summary;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ran = started.elapsed();
    let mut after = Samples::default();
    for _ in 0..100 {
        after.push(page_load().await?.0);
    }
    let peak = server.peak_rss()?;
    server.stop();
    let worst = during.percentile(99.0).max(after.percentile(99.0));
    Ok(Figure {
        name: "large batch",
        how: format!(
            "one batch of {items} items on the instant emulator: accepted in {:.2} s, all {} completed {:.1} s after \
             submission; idle RSS {}. The batch page's first load (GET the batch and its first 100 items, together) \
             while it ran: {}; once it was over: {}",
            accepted.as_secs_f64(),
            done.counts.completed,
            ran.as_secs_f64(),
            mb(idle),
            during.describe(),
            after.describe(),
        ),
        target: "peak RSS ≤ 100 MB; page load < 200 ms",
        measured: format!("peak RSS {}; page load p99 {:.1} ms", mb(peak), worst.as_secs_f64() * 1000.0),
        met: peak <= 100 * 1024 * 1024 && worst < Duration::from_millis(200) && done.counts.completed == items as u64,
    })
}

fn items_len(summary: &BatchSummary) -> usize {
    usize::try_from(summary.total).unwrap_or(usize::MAX)
}
