//! Every REST call of the app, typed, in one place: URL building, JSON, and error mapping.
//!
//! Components never build URLs or parse JSON; they call these functions and match on
//! [`ApiError`]. All URLs are same-origin (`/api/...`), so the page works behind any host and,
//! in development, through Trunk's proxy.

use chrono::{DateTime, Utc};
use common::{
    ApiLimits, BatchCounts, BatchId, BedrockBackend, Defaults, EmulatorStatus, ErrorBody, FaultPlan, ItemState,
    LogEntry, ModelPace, RunDetail, RunId, RunSummary, SubmitRun,
};
use gloo_net::http::Request;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;

use crate::format;

const CONTENT_TYPE: &str = "Content-Type";
const JSON: &str = "application/json";

/// Why a request did not produce what was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request never got an answer: server down, network gone.
    #[error("Cannot reach the server: {0}")]
    Network(String),
    /// The server answered with an error status and its `error` message.
    #[error("{message}")]
    Status {
        status: u16,
        /// The server's explanation (its `ErrorBody`), or the status text.
        message: String,
    },
    /// The answer was not the JSON this version of the app expects.
    #[error("Unexpected answer from the server: {0}")]
    Decode(String),
}

impl ApiError {
    /// Whether the server said the thing does not exist (404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { status: 404, .. })
    }

    /// Whether the server refused because of the resource's state (409).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Status { status: 409, .. })
    }
}

/// The header carrying a submission's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Sends a request and reads a successful answer's body, or turns a failed one into an
/// [`ApiError`] with the server's message. Not generic, so every answer type shares one copy
/// of it in the Wasm.
async fn answer(request: Result<Request, gloo_net::Error>) -> Result<String, ApiError> {
    let request = request.map_err(|e| ApiError::Network(e.to_string()))?;
    let response = request.send().await.map_err(|e| ApiError::Network(e.to_string()))?;
    let text = response.text().await;
    if response.ok() {
        return text.map_err(|e| ApiError::Network(e.to_string()));
    }
    let status = response.status();
    let message = match text.ok().and_then(|text| serde_json::from_str::<ErrorBody>(&text).ok()) {
        Some(body) => body.error,
        None if !response.status_text().is_empty() => format!("{status} {}", response.status_text()),
        None => format!("The server answered {status}."),
    };
    Err(ApiError::Status { status, message })
}

async fn send<T: DeserializeOwned>(request: Result<Request, gloo_net::Error>) -> Result<T, ApiError> {
    let text = answer(request).await?;
    serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
}

async fn get<T: DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    send(Request::get(url).build()).await
}

/// The part of `common::Health` the page reads. Its own type because serde writes code for
/// every field a type names: the server's version, store and cluster peers, which the page
/// never shows, cost the Wasm kilobytes, where the fields a type leaves out are skipped by code
/// every type shares.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Health {
    pub bedrock: Bedrock,
    pub defaults: Defaults,
    pub limits: ApiLimits,
}

/// Which Bedrock the server calls: `common::BedrockInfo` without region, API and credentials.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Bedrock {
    pub backend: BedrockBackend,
    /// The URL every Bedrock call goes to.
    pub endpoint: String,
}

/// `GET /api/health`: which Bedrock, form defaults and limits.
pub async fn health() -> Result<Health, ApiError> {
    get("/api/health").await
}

/// `GET /api/models`: the model catalog, each model's lifecycle as it stands today.
pub async fn models() -> Result<common::Catalog, ApiError> {
    get("/api/models").await
}

/// `POST /api/runs`: starts a run; retrying with the same `key` never creates a second one.
pub async fn submit(body: &SubmitRun, key: &str) -> Result<RunDetail, ApiError> {
    let json = format::json_with_temperature(&SubmitRun { temperature: None, ..body.clone() }, body.temperature);
    send(Request::post("/api/runs").header(IDEMPOTENCY_HEADER, key).header(CONTENT_TYPE, JSON).body(json)).await
}

/// `GET /api/runs?{parameters}`: a page of the history, newest first.
pub async fn runs(parameters: &str) -> Result<Vec<RunSummary>, ApiError> {
    get(&format!("/api/runs?{parameters}")).await
}

/// `GET /api/runs/totals?{parameters}`: the usage and cost of every run the filters select.
pub async fn run_totals(parameters: &str) -> Result<common::RunTotals, ApiError> {
    get(&format!("/api/runs/totals?{parameters}")).await
}

/// `GET /api/runs/{id}`: one run in full.
pub async fn run(id: RunId) -> Result<RunDetail, ApiError> {
    get(&format!("/api/runs/{id}")).await
}

/// `GET /api/runs/{id}/logs`: the run's stored log lines.
pub async fn logs(id: RunId) -> Result<Vec<LogEntry>, ApiError> {
    get(&format!("/api/runs/{id}/logs")).await
}

/// `POST /api/runs/{id}/cancel`: asks a live run to stop (409 once it has finished).
pub async fn cancel(id: RunId) -> Result<RunSummary, ApiError> {
    send(Request::post(&format!("/api/runs/{id}/cancel")).build()).await
}

/// `GET /api/emulator/faults`: the emulator's fault plan (409 when not on the emulator).
pub async fn faults() -> Result<EmulatorStatus, ApiError> {
    get("/api/emulator/faults").await
}

/// `PUT /api/emulator/faults`: injects faults into the next emulator calls.
pub async fn set_faults(plan: &FaultPlan) -> Result<EmulatorStatus, ApiError> {
    send(Request::put("/api/emulator/faults").json(plan)).await
}

/// `DELETE /api/emulator/faults`: back to healthy answers.
pub async fn clear_faults() -> Result<EmulatorStatus, ApiError> {
    send(Request::delete("/api/emulator/faults").build()).await
}

/// A batch as the pages show it: `common::BatchSummary` without the settings they do not show,
/// for the same reason as [`Health`], and with the model's pace, which only `GET
/// /api/batches/{id}` sends (beside the summary's fields, so one type reads both answers).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Batch {
    pub id: BatchId,
    #[serde(deserialize_with = "common::time::deserialize")]
    pub created_at: DateTime<Utc>,
    pub model_id: String,
    pub total: u64,
    pub counts: BatchCounts,
    pub cancelled: bool,
    #[serde(default)]
    pub pace: ModelPace,
}

/// An item as the batch page lists it: `common::BatchItem` without the template's values.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Item {
    pub index: u32,
    pub prompt: String,
    pub state: ItemState,
    #[serde(default)]
    pub run_id: Option<RunId>,
}

/// `GET /api/batches`: the batches, newest first.
pub async fn batches() -> Result<Vec<Batch>, ApiError> {
    get("/api/batches").await
}

/// `POST /api/batches` with a file (or pasted text) as `content_type` (JSON Lines, CSV or text)
/// and the settings and template as the query string `parameters`. `body` is a `File`, which
/// the browser sends without the page reading it into memory, or a string. Pasted text goes
/// this way too, as a text file, so the server's errors name the lines the person sees.
pub async fn submit_batch_file(body: JsValue, content_type: &str, parameters: &str) -> Result<Batch, ApiError> {
    send(Request::post(&format!("/api/batches?{parameters}")).header(CONTENT_TYPE, content_type).body(body)).await
}

/// `GET /api/batches/{id}`: the batch with its model's current pace.
pub async fn batch(id: BatchId) -> Result<Batch, ApiError> {
    get(&format!("/api/batches/{id}")).await
}

/// `GET /api/batches/{id}/items?from=&limit=`: items by position.
pub async fn batch_items(id: BatchId, from: u32, limit: u32) -> Result<Vec<Item>, ApiError> {
    get(&format!("/api/batches/{id}/items?from={from}&limit={limit}")).await
}

/// `POST /api/batches/{id}/cancel`: its queued items never start.
pub async fn cancel_batch(id: BatchId) -> Result<Batch, ApiError> {
    send(Request::post(&format!("/api/batches/{id}/cancel")).build()).await
}

/// `POST /api/batches/{id}/retry`: its failed items are queued again for new runs.
pub async fn retry_batch(id: BatchId) -> Result<Batch, ApiError> {
    send(Request::post(&format!("/api/batches/{id}/retry")).build()).await
}

/// The export link of a batch, `jsonl` or `csv`.
pub fn batch_export_url(id: BatchId, format: &str) -> String {
    format!("/api/batches/{id}/export?format={format}")
}

/// What a WebSocket connection follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamTarget {
    /// Every run's events (the history list).
    AllRuns,
    /// One run's events after a sequence number.
    Run {
        id: RunId,
        /// Replay starts after this `seq`; 0 replays everything.
        after_seq: u64,
    },
}

/// The WebSocket URL for `target` on the page's own origin (`http:` → `ws:`, `https:` → `wss:`).
pub fn ws_url(page_protocol: &str, host: &str, target: StreamTarget) -> String {
    let scheme = if page_protocol == "https:" { "wss" } else { "ws" };
    match target {
        StreamTarget::AllRuns => format!("{scheme}://{host}/api/ws"),
        StreamTarget::Run { id, after_seq } => format!("{scheme}://{host}/api/ws?run_id={id}&after_seq={after_seq}"),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn websocket_urls_follow_the_page_origin() {
        let id = RunId(Uuid::nil());
        assert_eq!(ws_url("http:", "localhost:8080", StreamTarget::AllRuns), "ws://localhost:8080/api/ws");
        assert_eq!(
            ws_url("https:", "example.com", StreamTarget::Run { id, after_seq: 7 }),
            "wss://example.com/api/ws?run_id=00000000-0000-0000-0000-000000000000&after_seq=7"
        );
    }

    #[test]
    fn errors_read_as_the_server_wrote_them() {
        let error = ApiError::Status { status: 400, message: "prompt is empty".into() };
        assert_eq!(error.to_string(), "prompt is empty");
        assert!(ApiError::Status { status: 404, message: String::new() }.is_not_found());
        assert!(ApiError::Status { status: 409, message: String::new() }.is_conflict());
    }
}
