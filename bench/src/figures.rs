//! The figures of the suite, one function each. Each starts its own server with the settings
//! the figure calls for and returns a [`Figure`] for the report.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::response::Response;
use backend::emulator::{Emulator, EmulatorConfig};
use backend::store::{SqliteStore, Synchronous, seed_finished_runs};
use common::{Event, EventKind, RunId, RunState};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::feed::{self, follow, next_event, submit, terminal_state};
use crate::server::{Server, mb, scratch};
use crate::stats::{Samples, ms};

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What is measured.
    pub name: &'static str,
    /// How.
    pub how: String,
    /// The target.
    pub target: &'static str,
    /// The measurement.
    pub measured: String,
    /// Whether the target is met.
    pub met: bool,
}

/// Sizes of the suite: the full run, or a quick one for trying it out.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Sequential runs for the overhead figure.
    pub sequential_runs: usize,
    /// Seconds of sustained load.
    pub throughput_secs: u64,
    /// Concurrent runs with 2 s latency.
    pub in_flight: usize,
    /// WebSocket clients for fan-out.
    pub fan_out_clients: usize,
    /// Runs stored for the history query.
    pub history_runs: usize,
    /// Items of the batch run at a quota.
    pub batch_items: usize,
    /// How long items are run one at a time, for the comparison.
    pub one_at_a_time: Duration,
    /// Items of the large batch.
    pub large_batch: usize,
}

/// Flags of a server on the built-in emulator with zero latency and an unpaced reply.
const INSTANT_EMULATOR: [&str; 6] =
    ["--bedrock", "emulator", "--emulator-latency-ms", "0", "--emulator-tokens-per-sec", "0"];

/// Orchestration overhead: `POST /api/runs` to the `Completed` event, one run at a time.
pub async fn orchestration(binary: &Path, scale: Scale) -> anyhow::Result<Figure> {
    orchestration_with(binary, scale, &[]).await
}

/// [`orchestration`] of a server with `extra` flags (another store).
pub async fn orchestration_with(binary: &Path, scale: Scale, extra: &[&str]) -> anyhow::Result<Figure> {
    let dir = scratch("overhead")?;
    let flags: Vec<&str> = INSTANT_EMULATOR.iter().copied().chain(extra.iter().copied()).collect();
    let server = Server::start(binary, &dir, &flags, &[]).await?;
    let client = reqwest::Client::new();
    let mut feed = feed::connect(&server.addr).await?;
    let mut total = Samples::default();
    let mut bedrock = Samples::default();
    let mut overhead = Samples::default();
    for n in 0..scale.sequential_runs + 20 {
        let started = Instant::now();
        let id = submit(&client, &server.url, &format!("overhead run {n}")).await?;
        let (state, _) = follow(&mut feed, id).await?;
        let took = started.elapsed();
        if state != RunState::Completed {
            bail!("run {id} ended {state}");
        }
        // The first runs warm connections and caches; they are not what a user waits for.
        if n >= 20 {
            let call = bedrock_call_time(&client, &server.url, id).await?;
            total.push(took);
            bedrock.push(call);
            overhead.push(took.saturating_sub(call));
        }
    }
    server.stop();
    let p50 = overhead.percentile(50.0);
    let p99 = overhead.percentile(99.0);
    Ok(Figure {
        name: "orchestration overhead per run",
        how: format!(
            "{} sequential runs, zero-latency unpaced emulator, SQLite synchronous=FULL and fsynced journal; \
             POST to the `Completed` event on a WebSocket took {} end to end, minus the `call_bedrock` attempt \
             (SDK, loopback HTTP and emulator, from the attempt's own timestamps) {}",
            total.len(),
            total.describe(),
            bedrock.describe()
        ),
        target: "p50 ≤ 2 ms, p99 ≤ 10 ms",
        measured: overhead.describe(),
        met: p50 <= Duration::from_millis(2) && p99 <= Duration::from_millis(10),
    })
}

/// How long the run's `call_bedrock` attempt took, from its start and end timestamps.
async fn bedrock_call_time(client: &reqwest::Client, url: &str, id: RunId) -> anyhow::Result<Duration> {
    let detail: common::RunDetail = client.get(format!("{url}/api/runs/{id}")).send().await?.json().await?;
    let attempt = detail.tasks.get(1).and_then(|t| t.attempts.first()).context("no call_bedrock attempt")?;
    let finished = attempt.finished_at.context("attempt not finished")?;
    Ok((finished - attempt.started_at).to_std().unwrap_or_default())
}

/// Sustained throughput: as many runs as the server completes, with a bounded number in flight.
pub async fn throughput(binary: &Path, scale: Scale) -> anyhow::Result<Figure> {
    const IN_FLIGHT: usize = 256;
    const SUBMITTERS: usize = 32;
    let dir = scratch("throughput")?;
    let server = Server::start(binary, &dir, &INSTANT_EMULATOR, &[]).await?;
    let client = reqwest::Client::new();
    let mut feed = feed::connect(&server.addr).await?;
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let failures = Arc::new(AtomicU64::new(0));
    let window = Duration::from_secs(scale.throughput_secs);
    let deadline = Instant::now() + window;
    let mut submitters = Vec::new();
    for n in 0..SUBMITTERS {
        let (slots, failures) = (Arc::clone(&slots), Arc::clone(&failures));
        let name = format!("throughput {n}");
        submitters.push(feed::submit_until(client.clone(), server.url.clone(), slots, failures, deadline, name));
    }
    let started = Instant::now();
    let mut completed = 0u64;
    let mut other = 0u64;
    while Instant::now() < deadline {
        let Ok(received) = tokio::time::timeout_at(deadline.into(), next_event(&mut feed)).await else { break };
        let (event, _) = received?;
        match terminal_state(&event) {
            Some(RunState::Completed) => completed += 1,
            Some(_) => other += 1,
            None => continue,
        }
        slots.add_permits(1);
    }
    let elapsed = started.elapsed();
    slots.close();
    for submitter in submitters {
        let _ = submitter.await;
    }
    let peak = server.peak_rss()?;
    server.stop();
    let rate = completed as f64 / elapsed.as_secs_f64();
    Ok(Figure {
        name: "sustained throughput",
        how: format!(
            "{SUBMITTERS} submitters, at most {IN_FLIGHT} runs in flight, {} s, zero-latency unpaced emulator, durable writes; \
             {completed} completed, {other} ended otherwise, {} submissions refused; server peak RSS {}",
            scale.throughput_secs,
            failures.load(Ordering::Relaxed),
            mb(peak)
        ),
        target: "≥ 1,000 completed runs/s",
        measured: format!("{rate:.0} completed runs/s"),
        met: rate >= 1000.0 && other == 0,
    })
}

/// Runs in flight: many concurrent runs held open by a slow model.
pub async fn in_flight(binary: &Path, scale: Scale) -> anyhow::Result<Figure> {
    let target = scale.in_flight;
    let capped = in_flight_with(binary, target, None).await?;
    // The same load with every call let through at once, to show what the cap buys.
    let uncapped = in_flight_with(binary, target, Some(target)).await?;
    Ok(Figure {
        name: "runs in flight",
        how: format!(
            "{target} runs submitted at once (64 concurrent POSTs), emulator latency 2 s, Bedrock calls capped at the \
             default `--max-concurrent-bedrock-calls 1000`: all finished in {:.1} s, idle RSS {}. With the cap raised to \
             {target} (every call at once): {} of {target} completed in {:.1} s, peak RSS {}",
            capped.took.as_secs_f64(),
            mb(capped.idle),
            uncapped.completed,
            uncapped.took.as_secs_f64(),
            mb(uncapped.peak),
        ),
        target: "all complete; peak RSS ≤ 200 MB",
        measured: format!(
            "{} of {target} completed ({} otherwise, {} refused); peak RSS {}",
            capped.completed,
            capped.other,
            capped.refused,
            mb(capped.peak)
        ),
        met: capped.completed == target && capped.peak <= 200 * 1024 * 1024,
    })
}

struct InFlight {
    completed: usize,
    other: usize,
    refused: usize,
    took: Duration,
    idle: u64,
    peak: u64,
}

async fn in_flight_with(binary: &Path, target: usize, call_cap: Option<usize>) -> anyhow::Result<InFlight> {
    let dir = scratch("in-flight")?;
    let cap = call_cap.map(|n| n.to_string());
    let mut flags = vec!["--bedrock", "emulator", "--emulator-latency-ms", "2000", "--emulator-tokens-per-sec", "0"];
    if let Some(cap) = &cap {
        flags.extend(["--max-concurrent-bedrock-calls", cap.as_str()]);
    }
    let server = Server::start(binary, &dir, &flags, &[]).await?;
    let idle = server.rss()?;
    let client = reqwest::Client::new();
    let mut feed = feed::connect(&server.addr).await?;
    // Refusals are counted as they happen: a refused run never ends, so the wait below must
    // not expect it.
    let refusals = Arc::new(AtomicU64::new(0));
    let submitting = {
        let (client, url, refusals) = (client.clone(), server.url.clone(), Arc::clone(&refusals));
        tokio::spawn(async move {
            futures_util::stream::iter(0..target)
                .map(|n| {
                    let (client, url, refusals) = (client.clone(), url.clone(), Arc::clone(&refusals));
                    async move {
                        if let Err(error) = submit(&client, &url, &format!("in flight {n}")).await {
                            eprintln!("bench: in flight: submission {n} failed: {error:#}");
                            refusals.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<()>>()
                .await;
        })
    };
    let started = Instant::now();
    let (mut completed, mut other) = (0, 0);
    let refused = || usize::try_from(refusals.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
    while completed + other + refused() < target {
        let Ok(received) = tokio::time::timeout(Duration::from_secs(60), next_event(&mut feed)).await else {
            bail!(
                "no run finished for 60 s: {completed} completed, {other} ended otherwise, {} refused, {} never ended",
                refused(),
                target - completed - other - refused()
            );
        };
        match terminal_state(&received?.0) {
            Some(RunState::Completed) => completed += 1,
            Some(_) => other += 1,
            None => {}
        }
    }
    let took = started.elapsed();
    submitting.await?;
    let refused = refused();
    let peak = server.peak_rss()?;
    server.stop();
    Ok(InFlight { completed, other, refused, took, idle, peak })
}

/// An emulator in this process whose response bodies note when each delta frame is written.
struct StampedEmulator {
    addr: String,
    stamps: Arc<Mutex<Vec<Instant>>>,
}

impl StampedEmulator {
    async fn start(tokens_per_sec: u32) -> anyhow::Result<StampedEmulator> {
        let emulator = Emulator::new(EmulatorConfig { tokens_per_sec, ..EmulatorConfig::unpaced() });
        let stamps = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&stamps);
        let router = emulator.router().layer(axum::middleware::map_response(move |response: Response| {
            let stamps = Arc::clone(&recorder);
            async move {
                let (parts, body) = response.into_parts();
                let frames = body.into_data_stream().map(move |frame| {
                    if let Ok(bytes) = &frame
                        && bytes.windows(17).any(|w| w == b"contentBlockDelta")
                        && let Ok(mut stamps) = stamps.lock()
                    {
                        stamps.push(Instant::now());
                    }
                    frame
                });
                Response::from_parts(parts, Body::from_stream(frames))
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        tokio::spawn(async move { axum::serve(backend::net::without_nagle(listener), router).await });
        Ok(StampedEmulator { addr, stamps })
    }

    fn take(&self) -> Vec<Instant> {
        self.stamps.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
    }

    async fn server(&self, binary: &Path, dir: &Path) -> anyhow::Result<Server> {
        let endpoint = format!("http://{}", self.addr);
        let env = [("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"), ("AWS_REGION", "us-east-1")];
        Server::start(binary, dir, &["--bedrock-endpoint", &endpoint], &env).await
    }
}

/// Pairs the k-th delta written by the emulator with the k-th delta received.
fn pair(written: &[Instant], received: &[Instant], samples: &mut Samples) -> bool {
    for (w, r) in written.iter().zip(received) {
        samples.push(r.saturating_duration_since(*w));
    }
    written.len() == received.len()
}

/// First token to browser: emulator writing a delta to a WebSocket client receiving it.
pub async fn first_token(binary: &Path) -> anyhow::Result<Figure> {
    let emulator = StampedEmulator::start(50).await?;
    let dir = scratch("first-token")?;
    let server = emulator.server(binary, &dir).await?;
    let client = reqwest::Client::new();
    let mut feed = feed::connect(&server.addr).await?;
    let mut samples = Samples::default();
    let mut complete = true;
    for n in 0..10 {
        emulator.take();
        let id = submit(&client, &server.url, &format!("first token {n}")).await?;
        let (_, received) = follow(&mut feed, id).await?;
        complete &= pair(&emulator.take(), &received, &mut samples);
    }
    server.stop();
    let (p50, p99) = (samples.percentile(50.0), samples.percentile(99.0));
    Ok(Figure {
        name: "first token to browser",
        how: "10 streamed runs at 50 tokens/s from an emulator in the bench process (via --bedrock-endpoint); \
              each delta timed from the emulator's body write to its arrival on a WebSocket client"
            .into(),
        target: "p50 ≤ 1 ms, p99 ≤ 5 ms",
        measured: format!("{}{}", samples.describe(), if complete { "" } else { "; some deltas unpaired" }),
        met: complete && p50 <= Duration::from_millis(1) && p99 <= Duration::from_millis(5),
    })
}

/// Fan-out: many WebSocket clients following one streaming run.
pub async fn fan_out(binary: &Path, scale: Scale) -> anyhow::Result<Figure> {
    let emulator = StampedEmulator::start(20).await?;
    let dir = scratch("fan-out")?;
    let server = emulator.server(binary, &dir).await?;
    let client = reqwest::Client::new();
    let mut watchers = Vec::new();
    for _ in 0..scale.fan_out_clients {
        let mut feed = feed::connect(&server.addr).await?;
        watchers.push(tokio::spawn(async move {
            let mut deltas: HashMap<RunId, Vec<Instant>> = HashMap::new();
            loop {
                let (event, arrived): (Event, Instant) = next_event(&mut feed).await?;
                if matches!(event.kind, EventKind::Delta { .. }) {
                    deltas.entry(event.run_id).or_default().push(arrived);
                }
                if terminal_state(&event).is_some() {
                    return anyhow::Ok((event.run_id, deltas.remove(&event.run_id).unwrap_or_default()));
                }
            }
        }));
    }
    emulator.take();
    let id = submit(&client, &server.url, "fan out to every watcher").await?;
    let mut samples = Samples::default();
    let mut complete = 0;
    let mut written = Vec::new();
    for watcher in watchers {
        let (ended, received) =
            tokio::time::timeout(Duration::from_secs(60), watcher).await.context("watcher stuck")???;
        if written.is_empty() {
            written = emulator.take();
        }
        if ended == id && pair(&written, &received, &mut samples) {
            complete += 1;
        }
    }
    server.stop();
    let clients = scale.fan_out_clients;
    Ok(Figure {
        name: "fan-out",
        how: format!(
            "{clients} WebSocket clients on the all-runs feed, one run streaming {} deltas at 20 tokens/s; \
             each delta timed from the emulator's write to each client's receipt",
            written.len()
        ),
        target: "every delta delivered; p99 ≤ 50 ms",
        measured: format!("{complete} of {clients} clients got every delta; {}", samples.describe()),
        met: complete == clients && samples.percentile(99.0) <= Duration::from_millis(50),
    })
}

/// Cold start: process start to `/api/health` answering, and idle memory after one run.
pub async fn cold_start_and_idle_memory(binary: &Path) -> anyhow::Result<(Figure, Figure)> {
    let dir = scratch("cold-start")?;
    let mut starts = Samples::default();
    for _ in 0..10 {
        let server = Server::start(binary, &dir, &INSTANT_EMULATOR, &[]).await?;
        starts.push(server.started_in);
        server.stop();
    }
    let server = Server::start(binary, &dir, &INSTANT_EMULATOR, &[]).await?;
    let client = reqwest::Client::new();
    let mut feed = feed::connect(&server.addr).await?;
    let id = submit(&client, &server.url, "one run before measuring memory").await?;
    follow(&mut feed, id).await?;
    drop(feed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = server.rss()?;
    server.stop();
    let cold = Figure {
        name: "cold start",
        how: "spawn of the release binary to the first 200 from /api/health (existing data dir, built-in emulator), 10 starts".into(),
        target: "≤ 100 ms",
        measured: format!("p50 {}, max {}", ms(starts.percentile(50.0)), ms(starts.percentile(100.0))),
        met: starts.percentile(50.0) <= Duration::from_millis(100),
    };
    let idle = Figure {
        name: "idle memory",
        how: "VmRSS of the server 0.5 s after start and one completed run".into(),
        target: "≤ 30 MB",
        measured: mb(rss),
        met: rss <= 30 * 1024 * 1024,
    };
    Ok((cold, idle))
}

/// Page weight: gzip-compressed bytes of everything the first page load fetches.
pub fn page_weight(dist: &Path) -> anyhow::Result<Figure> {
    let mut total = 0;
    let mut parts = Vec::new();
    let entries = std::fs::read_dir(dist).with_context(|| format!("{} (build the frontend first)", dist.display()))?;
    for entry in entries {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        // `.gz` files are the build's precompressed copies of the same assets.
        if !["html", "js", "wasm", "css"].contains(&ext) {
            continue;
        }
        let output = std::process::Command::new("gzip").args(["-9", "-c"]).arg(&path).output().context("gzip")?;
        total += output.stdout.len();
        parts.push(format!("{ext} {:.1} KB", output.stdout.len() as f64 / 1024.0));
    }
    parts.sort();
    Ok(Figure {
        name: "page weight",
        how: format!("gzip -9 of dist/ (HTML, JS, Wasm, CSS): {}", parts.join(", ")),
        target: "≤ 250 KB",
        measured: format!("{:.1} KB", total as f64 / 1024.0),
        met: total <= 250 * 1024,
    })
}

/// History query: listing the newest runs with a large history stored.
/// The history query, search and export figures, over one seeded history.
pub async fn history(binary: &Path, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let dir = scratch("history")?;
    let seeded = Instant::now();
    let store = SqliteStore::open(&dir.join("data"), Synchronous::Normal).await?;
    seed_finished_runs(&store, scale.history_runs, backend::config::DEFAULT_MODEL_ID).await?;
    drop(store);
    let seed_time = seeded.elapsed();
    let server = Server::start(binary, &dir, &INSTANT_EMULATOR, &[]).await?;
    let client = reqwest::Client::new();
    let mut quiet = Samples::default();
    let mut filtered = Samples::default();
    for n in 0..1000 {
        let (url, samples) = if n % 2 == 0 {
            (format!("{}/api/runs?limit=50", server.url), &mut quiet)
        } else {
            (format!("{}/api/runs?limit=50&state=Failed", server.url), &mut filtered)
        };
        let started = Instant::now();
        let runs: Vec<serde_json::Value> = client.get(&url).send().await?.json().await?;
        samples.push(started.elapsed());
        if runs.len() != 50 {
            bail!("expected 50 runs from {url}, got {}", runs.len());
        }
    }
    let loaded = loaded_latency(&client, &server.url).await?;
    let search = search(&client, &server.url, scale.history_runs).await?;
    let export = export(&client, &server, scale.history_runs).await?;
    server.stop();
    let query = Figure {
        name: "history query",
        how: format!(
            "{} runs stored (seeded in {:.1} s); GET /api/runs?limit=50 sequentially: {}; with state=Failed (1 % of \
             runs): {}",
            scale.history_runs,
            seed_time.as_secs_f64(),
            quiet.describe(),
            filtered.describe()
        ),
        target: "p99 ≤ 5 ms",
        measured: format!("under load (8 concurrent clients): {}", loaded.describe()),
        met: quiet.percentile(99.0) <= Duration::from_millis(5) && loaded.percentile(99.0) <= Duration::from_millis(5),
    };
    Ok(vec![query, search, export])
}

/// Full-text search over the seeded history: a word of one run in 20 (`q=contracts`, the first
/// 50 of 5,000), a word of one run alone (its number, in its prompt and its response), and
/// two words together.
async fn search(client: &reqwest::Client, url: &str, runs: usize) -> anyhow::Result<Figure> {
    let mut samples = Samples::default();
    let topics = backend::store::SEED_TOPICS;
    for n in 0..600 {
        let (q, expected) = match n % 3 {
            0 => (topics[n % topics.len()].to_owned(), 50),
            1 => {
                // A completed run's number: found in its prompt and its response.
                let run = (n * 7919) % runs;
                let run = if run.is_multiple_of(100) { run + 1 } else { run };
                (run.to_string(), 1)
            }
            _ => (format!("answer {}", topics[(n + 1) % topics.len()]), 50),
        };
        let started = Instant::now();
        let found: Vec<serde_json::Value> = client
            .get(format!("{url}/api/runs"))
            .query(&[("q", q.as_str()), ("limit", "50")])
            .send()
            .await?
            .json()
            .await?;
        samples.push(started.elapsed());
        if found.len() != expected {
            bail!("q={q} found {} runs, expected {expected}", found.len());
        }
    }
    let p99 = samples.percentile(99.0);
    Ok(Figure {
        name: "search",
        how: format!(
            "GET /api/runs?q=…&limit=50 over {runs} stored runs (SQLite FTS5 over prompts and responses), \
             sequentially: a word of 1 run in 20, a run's number (1 run), two words; each answer's count checked"
        ),
        target: "p99 ≤ 10 ms",
        measured: samples.describe(),
        met: p99 <= Duration::from_millis(10),
    })
}

/// The whole history as JSON Lines, streamed: how fast, and what it costs the server in memory.
async fn export(client: &reqwest::Client, server: &Server, runs: usize) -> anyhow::Result<Figure> {
    let before = server.rss()?;
    let started = Instant::now();
    let mut response = client.get(format!("{}/api/runs/export", server.url)).send().await?;
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let took = started.elapsed();
    let peak = server.peak_rss()?;
    if lines != runs {
        bail!("the export held {lines} runs, not {runs}");
    }
    let rate = runs as f64 / took.as_secs_f64();
    Ok(Figure {
        name: "history export",
        how: format!(
            "GET /api/runs/export (JSON Lines, every run in full: settings, prompt, response, usage, cost, timings) \
             of {runs} stored runs, read by one client: {:.1} MB in {:.1} s; server RSS {} before it",
            bytes as f64 / 1e6,
            took.as_secs_f64(),
            mb(before)
        ),
        target: "constant memory (peak RSS ≤ 100 MB)",
        measured: format!("{rate:.0} runs/s; server peak RSS {}", mb(peak)),
        met: lines == runs && peak <= 100 * 1024 * 1024,
    })
}

async fn loaded_latency(client: &reqwest::Client, url: &str) -> anyhow::Result<Samples> {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), format!("{url}/api/runs?limit=50"));
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            for _ in 0..250 {
                let started = Instant::now();
                client.get(&url).send().await?.bytes().await?;
                samples.push(started.elapsed());
            }
            anyhow::Ok(samples)
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}
