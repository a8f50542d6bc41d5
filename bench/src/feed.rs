//! Clients of the server under test: submitting runs and reading the WebSocket feed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use common::{Event, EventKind, RunId, RunState};
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket connection to `/api/ws`.
pub type Feed = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the all-runs feed of the server at `addr`.
pub async fn connect(addr: &str) -> anyhow::Result<Feed> {
    let (feed, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws")).await.context("WebSocket connect")?;
    Ok(feed)
}

/// The next event on the feed, with the instant it arrived.
pub async fn next_event(feed: &mut Feed) -> anyhow::Result<(Event, Instant)> {
    loop {
        match feed.next().await {
            Some(Ok(Message::Text(text))) => {
                let arrived = Instant::now();
                return Ok((serde_json::from_str(&text).context("event JSON")?, arrived));
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => bail!("WebSocket error: {error}"),
            None => bail!("the WebSocket closed"),
        }
    }
}

/// Whether the event ends its run.
pub fn terminal_state(event: &Event) -> Option<RunState> {
    match &event.kind {
        EventKind::RunState { state, .. } if state.is_terminal() => Some(*state),
        _ => None,
    }
}

/// Submits a run and returns its id.
pub async fn submit(client: &reqwest::Client, url: &str, prompt: &str) -> anyhow::Result<RunId> {
    let response = client
        .post(format!("{url}/api/runs"))
        .json(&serde_json::json!({ "prompt": prompt }))
        .send()
        .await
        .context("POST /api/runs")?;
    if response.status().as_u16() != 202 {
        bail!("POST /api/runs answered {}: {}", response.status(), response.text().await.unwrap_or_default());
    }
    let run: serde_json::Value = response.json().await?;
    run["id"].as_str().context("run without id")?.parse().context("run id")
}

/// Reads the feed until `run` ends; returns its terminal state and the arrival of each delta.
pub async fn follow(feed: &mut Feed, run: RunId) -> anyhow::Result<(RunState, Vec<Instant>)> {
    let mut deltas = Vec::new();
    loop {
        let (event, arrived) = next_event(feed).await?;
        if event.run_id != run {
            continue;
        }
        if matches!(event.kind, EventKind::Delta { .. }) {
            deltas.push(arrived);
        }
        if let Some(state) = terminal_state(&event) {
            return Ok((state, deltas));
        }
    }
}

/// A load generator: submits runs (prompts `{name}-{i}`) to `url` until `deadline`, each after
/// taking a slot of `slots`, which whoever watches the runs end gives back. A refused submission
/// gives its slot back and counts in `refused`.
pub fn submit_until(
    client: reqwest::Client,
    url: String,
    slots: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
    deadline: Instant,
    name: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0u64;
        while Instant::now() < deadline {
            let Ok(permit) = slots.acquire().await else { break };
            permit.forget();
            if submit(&client, &url, &format!("{name}-{i}")).await.is_err() {
                refused.fetch_add(1, Ordering::Relaxed);
                slots.add_permits(1);
            }
            i += 1;
        }
    })
}
