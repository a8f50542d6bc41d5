//! Figures of several replicas on one PostgreSQL: scaling from 1 to 3 replicas, takeover after
//! `kill -9`, cross-replica event latency, and the orchestration overhead of the PostgreSQL store.
//!
//! The database is `DATABASE_URL`'s server, else the one on `127.0.0.1:5432`; every figure
//! gets a database of its own. The Bedrock is one `backend emulator` process shared by the
//! replicas, as one AWS region would be.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{EventKind, RunState, TaskState};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::Semaphore;

use crate::feed::{self, next_event, submit, terminal_state};
use crate::figures::{Figure, Scale};
use crate::server::{Server, free_port, scratch};
use crate::stats::Samples;

/// A fresh database on the benchmark's PostgreSQL.
async fn fresh_database() -> anyhow::Result<String> {
    let server = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin = PgConnection::connect(&server).await.with_context(|| format!("cannot connect to {server}"))?;
    let name = format!("pipeline_bench_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
    let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// A `backend emulator` process.
struct Emulator {
    child: Child,
    url: String,
}

impl Emulator {
    async fn start(binary: &Path, latency_ms: u64, tokens_per_sec: u32) -> anyhow::Result<Emulator> {
        let port = free_port()?;
        let child = Command::new(binary)
            .args(["emulator", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--latency-ms", &latency_ms.to_string(), "--tokens-per-sec", &tokens_per_sec.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the emulator")?;
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the emulator did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Emulator { child, url: format!("http://127.0.0.1:{port}") })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts replica `n` of a cluster on `database` calling `bedrock`, with `extra` flags.
async fn replica(binary: &Path, database: &str, bedrock: &str, n: usize, extra: &[&str]) -> anyhow::Result<Server> {
    let dir = scratch(&format!("replica-{n}"))?;
    let id = format!("r{n}");
    let mut flags =
        vec!["--database-url", database, "--replica-id", &id, "--bedrock", "aws", "--bedrock-endpoint", bedrock];
    flags.extend_from_slice(extra);
    let env = [("AWS_ACCESS_KEY_ID", "AKIDBENCH"), ("AWS_SECRET_ACCESS_KEY", "bench"), ("AWS_REGION", "us-east-1")];
    Server::start(binary, &dir, &flags, &env).await
}

/// Runs completed per second by `count` replicas, each capped at `cap` Bedrock calls at once,
/// against an emulator answering after `latency_ms`.
async fn cluster_rate(binary: &Path, count: usize, cap: usize, latency_ms: u64, secs: u64) -> anyhow::Result<f64> {
    let database = fresh_database().await?;
    let emulator = Emulator::start(binary, latency_ms, 0).await?;
    let cap_flag = cap.to_string();
    let mut replicas = Vec::new();
    for n in 0..count {
        replicas
            .push(replica(binary, &database, &emulator.url, n, &["--max-concurrent-bedrock-calls", &cap_flag]).await?);
    }
    let client = reqwest::Client::new();
    // One watcher on replica 0 counts every run's end, wherever it ran: the fan-out across
    // replicas is part of what is measured.
    let mut watcher = feed::connect(&replicas[0].addr).await?;
    // Twice the cluster's call slots in flight, so no replica waits for work.
    let slots = Arc::new(Semaphore::new(2 * cap * count));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut submitters = Vec::new();
    for (n, server) in replicas.iter().enumerate() {
        for k in 0..8 {
            let (slots, refused) = (Arc::clone(&slots), Arc::clone(&refused));
            let name = format!("scale {n}-{k}");
            submitters.push(feed::submit_until(client.clone(), server.url.clone(), slots, refused, deadline, name));
        }
    }
    let started = Instant::now();
    let mut completed = 0u64;
    while Instant::now() < deadline {
        let Ok(received) = tokio::time::timeout_at(deadline.into(), next_event(&mut watcher)).await else { break };
        let (event, _) = received?;
        match terminal_state(&event) {
            Some(RunState::Completed) => completed += 1,
            Some(other) => bail!("run {} ended {other}", event.run_id),
            None => continue,
        }
        slots.add_permits(1);
    }
    let elapsed = started.elapsed();
    slots.close();
    for submitter in submitters {
        let _ = submitter.await;
    }
    for server in replicas {
        server.stop();
    }
    if refused.load(Ordering::Relaxed) > 0 {
        bail!("{} submissions were refused", refused.load(Ordering::Relaxed));
    }
    Ok(completed as f64 / elapsed.as_secs_f64())
}

/// Throughput with 1, 2 and 3 replicas at a fixed per-replica cap.
pub async fn scaling(binary: &Path, scale: Scale) -> anyhow::Result<Figure> {
    const CAP: usize = 16;
    const LATENCY_MS: u64 = 500;
    let secs = scale.throughput_secs.min(20);
    let mut rates = Vec::new();
    for count in 1..=3 {
        rates.push(cluster_rate(binary, count, CAP, LATENCY_MS, secs).await?);
    }
    let ratio = rates[2] / rates[0];
    Ok(Figure {
        name: "replicas: throughput 1 → 3",
        how: format!(
            "each replica capped at {CAP} Bedrock calls at once, one emulator answering after {LATENCY_MS} ms (so at most \
             {:.0} runs/s per replica), {secs} s of load spread over the replicas, completions counted by one WebSocket \
             client on replica 1: {:.1}, {:.1} and {:.1} runs/s with 1, 2 and 3 replicas; PostgreSQL, emulator, \
             replicas and load generator share the 2 cores",
            CAP as f64 * 1000.0 / LATENCY_MS as f64,
            rates[0],
            rates[1],
            rates[2]
        ),
        target: "≥ 2.5× from 1 to 3 replicas",
        measured: format!("{ratio:.2}×"),
        met: ratio >= 2.5,
    })
}

/// Takeover after `kill -9` of a run's owner, and the latency of events from the owner to a
/// client on another replica.
pub async fn failover_and_fan_out(binary: &Path, quick: bool) -> anyhow::Result<(Figure, Figure)> {
    let rounds = if quick { 5 } else { 20 };
    let database = fresh_database().await?;
    let emulator = Emulator::start(binary, 50, 100).await?;
    let mut replicas = vec![
        replica(binary, &database, &emulator.url, 0, &[]).await?,
        replica(binary, &database, &emulator.url, 1, &[]).await?,
    ];
    let client = reqwest::Client::new();
    let mut takeover = Samples::default();
    let mut cross = Samples::default();
    for round in 0..rounds {
        let owner = replicas.len() - 1;
        let other = owner - 1;
        let mut on_owner = feed::connect(&replicas[owner].addr).await?;
        let mut on_other = feed::connect(&replicas[other].addr).await?;
        let id = submit(&client, &replicas[owner].url, &format!("failover round {round}: a streamed answer")).await?;
        // The other replica's client reads all along, timing each event as it arrives.
        let watcher = tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let (event, arrived) = tokio::time::timeout(Duration::from_secs(30), next_event(&mut on_other))
                    .await
                    .context("no event for 30 s on the surviving replica")??;
                if event.run_id != id {
                    continue;
                }
                let end = terminal_state(&event).is_some();
                seen.push((event, arrived));
                if end {
                    return anyhow::Ok(seen);
                }
            }
        });
        // Cross-replica latency: the same events reach the owner's client (right after their
        // commit) and the other replica's client; the difference is the fan-out between them.
        let mut local = std::collections::HashMap::new();
        let mut deltas_seen = 0;
        while deltas_seen < 20 {
            let (event, arrived) = next_event(&mut on_owner).await?;
            if event.run_id != id {
                continue;
            }
            deltas_seen += usize::from(matches!(event.kind, EventKind::Delta { .. }));
            local.insert(event.seq, arrived);
        }
        replicas.remove(owner).stop();
        let killed = Instant::now();
        let mut taken = None;
        for (event, arrived) in watcher.await?? {
            if let Some(at) = local.get(&event.seq) {
                cross.push(arrived.saturating_duration_since(*at));
            }
            if taken.is_none() && matches!(event.kind, EventKind::TaskState { state: TaskState::AwaitingRetry, .. }) {
                taken = Some(arrived.saturating_duration_since(killed));
            }
        }
        takeover.push(taken.context("the run ended without a takeover")?);
        let next = round + 2;
        replicas.push(replica(binary, &database, &emulator.url, next, &[]).await?);
    }
    for server in replicas {
        server.stop();
    }
    let takeover_figure = Figure {
        name: "replicas: takeover after kill -9",
        how: format!(
            "{rounds} rounds: a run streaming on its owner, `kill -9` of the owner, until a client on another replica \
             receives the event that ends the cut attempt (the new owner's first); default lease 3 s, heartbeat 1 s: {}",
            takeover.describe()
        ),
        target: "p50 ≤ 5 s",
        measured: format!("p50 {}", crate::stats::ms(takeover.percentile(50.0))),
        met: takeover.percentile(50.0) <= Duration::from_secs(5),
    };
    let cross_figure = Figure {
        name: "replicas: cross-replica event latency",
        how: format!(
            "{} events of {rounds} runs streaming at 100 tokens/s, each timed from its arrival at a client of the \
             owner (just after its commit) to its arrival at a client of another replica (NOTIFY, then a read of the \
             new rows)",
            cross.len()
        ),
        target: "p99 ≤ 50 ms",
        measured: cross.describe(),
        met: cross.percentile(99.0) <= Duration::from_millis(50),
    };
    Ok((takeover_figure, cross_figure))
}

/// The orchestration overhead figure, with the PostgreSQL store.
pub async fn orchestration_postgres(binary: &Path, scale: Scale) -> anyhow::Result<Figure> {
    let database = fresh_database().await?;
    let mut figure = crate::figures::orchestration_with(binary, scale, &["--database-url", &database]).await?;
    figure.name = "orchestration overhead per run (PostgreSQL)";
    figure.how = figure.how.replace("SQLite synchronous=FULL and fsynced journal", "PostgreSQL store (one replica)");
    Ok(figure)
}
