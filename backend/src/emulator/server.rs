//! The HTTP side: the four Bedrock Runtime operations, their validation, errors and (paced) bodies.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use base64::Engine as _;
use bytes::BytesMut;
use common::FaultKind;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::eventstream::{self, EncodeError};
use super::faults::Faults;
use super::reply::{Completion, count_tokens};

/// The largest request body accepted; Bedrock's own limit is of this order, and the backend's
/// 2 MiB prompts can double in size once JSON-escaped.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Converse's token limit when `inferenceConfig.maxTokens` is absent (the model's own maximum).
const DEFAULT_CONVERSE_MAX_TOKENS: u32 = 4096;
/// The only `anthropic_version` Bedrock accepts in an Anthropic Messages body.
const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Cross-region inference-profile prefixes accepted in front of a model id.
const PROFILE_PREFIXES: [&str; 4] = ["us.", "eu.", "apac.", "global."];
/// Source of AWS's `p` padding member, which hides token lengths from traffic analysis.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("application/vnd.amazon.eventstream");

/// State shared by every request of one emulator.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Delay before the first byte of every answer.
    pub(crate) latency: Duration,
    /// Time between stream chunks; `None` sends everything at once.
    pub(crate) interval: Option<Duration>,
    /// The fault plan and call counter.
    pub(crate) faults: Faults,
    /// Flipped to `true` at shutdown so stalled and paced bodies end instead of holding the
    /// graceful shutdown open forever.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Response bodies still streaming, so tests can prove that disconnected clients leak nothing.
    pub(crate) open_bodies: Arc<AtomicUsize>,
}

/// One of the four Bedrock Runtime operations the emulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
}

/// An error answered exactly as Bedrock answers it: status, `x-amzn-ErrorType` and `{"message"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BedrockError {
    /// 400: a bad model id or request body; not worth retrying.
    #[error("{0}")]
    Validation(String),
    /// 429: the account is over its request rate.
    #[error("Too many requests, please wait before trying again.")]
    Throttling,
    /// 500: the service failed.
    #[error("The system encountered an unexpected error during processing. Try your request again.")]
    InternalServer,
    /// 503: the service is overloaded.
    #[error("Bedrock is unable to process your request.")]
    ServiceUnavailable,
    /// 404: no such operation (a path outside the four routes).
    #[error("The requested operation is not recognized by the service.")]
    UnknownOperation,
}

impl BedrockError {
    /// The error's shape name, as in `x-amzn-ErrorType` and the SDK's error enums.
    pub fn name(&self) -> &'static str {
        match self {
            BedrockError::Validation(_) => "ValidationException",
            BedrockError::Throttling => "ThrottlingException",
            BedrockError::InternalServer => "InternalServerException",
            BedrockError::ServiceUnavailable => "ServiceUnavailableException",
            BedrockError::UnknownOperation => "UnknownOperationException",
        }
    }

    /// The HTTP status Bedrock sends with it.
    pub fn status(&self) -> StatusCode {
        match self {
            BedrockError::Validation(_) => StatusCode::BAD_REQUEST,
            BedrockError::Throttling => StatusCode::TOO_MANY_REQUESTS,
            BedrockError::InternalServer => StatusCode::INTERNAL_SERVER_ERROR,
            BedrockError::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            BedrockError::UnknownOperation => StatusCode::NOT_FOUND,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        BedrockError::Validation(message.into())
    }

    /// The injected error for a fault kind; `None` for a stall, which is not an error response.
    fn injected(kind: FaultKind) -> Option<Self> {
        match kind {
            FaultKind::Throttle => Some(BedrockError::Throttling),
            FaultKind::Internal => Some(BedrockError::InternalServer),
            FaultKind::Unavailable => Some(BedrockError::ServiceUnavailable),
            FaultKind::Validation => Some(BedrockError::invalid(
                "The emulator's fault plan rejected this request (injected ValidationException).",
            )),
            FaultKind::Stall | FaultKind::Cut => None,
        }
    }
}

impl From<EncodeError> for BedrockError {
    fn from(_: EncodeError) -> Self {
        // Only a single chunk over 16 MiB can fail to encode; Bedrock would fail such a reply too.
        BedrockError::InternalServer
    }
}

impl IntoResponse for BedrockError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            message: &'a str,
        }
        let message = self.to_string();
        let body = serde_json::to_vec(&ErrorBody { message: &message }).unwrap_or_default();
        let error_type = format!("{}:http://internal.amazon.com/coral/com.amazon.bedrock/", self.name());
        let mut response = (self.status(), [(CONTENT_TYPE, JSON)], body).into_response();
        if let Ok(value) = HeaderValue::from_str(&error_type) {
            response.headers_mut().insert(ERROR_TYPE, value);
        }
        response
    }
}

/// The emulator's router with its state applied.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/model/{model_id}/converse", route(Operation::Converse))
        .route("/model/{model_id}/converse-stream", route(Operation::ConverseStream))
        .route("/model/{model_id}/invoke", route(Operation::Invoke))
        .route("/model/{model_id}/invoke-with-response-stream", route(Operation::InvokeStream))
        .fallback(|| async { with_request_id(BedrockError::UnknownOperation.into_response()) })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(shared)
}

fn route(op: Operation) -> MethodRouter<Arc<Shared>> {
    post(
        move |State(shared): State<Arc<Shared>>,
              path: Result<Path<String>, PathRejection>,
              body: Result<Bytes, BytesRejection>| async move {
            let response = match answer(op, &shared, path, body).await {
                Ok(response) => response,
                Err(error) => {
                    tracing::debug!(error = error.name(), message = %error, "emulator answers with an error");
                    error.into_response()
                }
            };
            with_request_id(response)
        },
    )
}

/// Stamps a fresh request id, as AWS does on successes and errors alike.
fn with_request_id(mut response: Response) -> Response {
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// What the model is asked, reduced to what the emulator needs.
struct Prompt {
    /// The last user turn's text.
    text: String,
    /// Input tokens besides that text: the system prompt and earlier turns.
    context_tokens: u32,
    max_tokens: u32,
}

async fn answer(
    op: Operation,
    shared: &Shared,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, BedrockError> {
    // Faults come first, as throttling does at AWS's front door, and every call counts.
    let fault = shared.faults.next_call();
    if let Some(error) = fault.and_then(BedrockError::injected) {
        return Err(error);
    }
    let Path(model_id) = path.map_err(|_| BedrockError::invalid("The provided model identifier is invalid."))?;
    check_model_id(&model_id)?;
    let body = body.map_err(|e| BedrockError::invalid(format!("Malformed request body: {}", e.body_text())))?;
    let prompt = match op {
        Operation::Converse | Operation::ConverseStream => parse_converse(&body)?,
        Operation::Invoke | Operation::InvokeStream => parse_anthropic(&body)?,
    };
    let completion = Completion::new(&prompt.text, prompt.context_tokens, prompt.max_tokens);
    let stall = fault == Some(FaultKind::Stall);
    let cut = fault == Some(FaultKind::Cut);
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let timing = Timing::new(shared, completion.output_tokens());
    match op {
        Operation::Converse | Operation::Invoke => {
            if stall {
                let head = Bytes::from(whole_body(op, &model_id, &completion, timing, true));
                return Ok(json_response(stalled_body(shared, vec![head])));
            }
            if cut {
                let mut whole = whole_body(op, &model_id, &completion, timing, false);
                whole.truncate(whole.len() / 2);
                return Ok(json_response(Body::from(whole)));
            }
            if let Some(generation) = timing.generation {
                tokio::time::sleep(generation).await;
            }
            let body = Body::from(whole_body(op, &model_id, &completion, timing, false));
            let mut response = json_response(body);
            if op == Operation::Invoke {
                add_invoke_headers(&mut response, &completion, timing);
            }
            Ok(response)
        }
        Operation::ConverseStream | Operation::InvokeStream => {
            let mut ticks =
                stream_frames(op, &model_id, &completion, timing, stall || cut || shared.interval.is_some())?;
            if cut {
                // Half the frames, and never the closing ones: the stream just ends.
                ticks.truncate((ticks.len() / 2).max(1));
            }
            let body = if stall {
                stalled_body(shared, ticks.into_iter().take(1).collect())
            } else if let Some(interval) = shared.interval {
                paced_body(shared, ticks, interval)
            } else if cut {
                Body::from(ticks.concat())
            } else {
                Body::from(ticks.into_iter().next().unwrap_or_default())
            };
            let mut response = Response::new(body);
            response.headers_mut().insert(CONTENT_TYPE, EVENT_STREAM);
            if op == Operation::InvokeStream {
                response.headers_mut().insert(HeaderName::from_static("x-amzn-bedrock-content-type"), JSON);
            }
            Ok(response)
        }
    }
}

fn json_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

fn add_invoke_headers(response: &mut Response, completion: &Completion, timing: Timing) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-amzn-bedrock-input-token-count", u64::from(completion.input_tokens)),
        ("x-amzn-bedrock-output-token-count", u64::from(completion.output_tokens())),
        ("x-amzn-bedrock-invocation-latency", timing.total_ms),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// Accepts what looks like an Anthropic Claude model: a bare or inference-profile id, or an ARN naming one.
fn check_model_id(id: &str) -> Result<(), BedrockError> {
    let valid = if id.starts_with("arn:") {
        id.contains("anthropic.claude")
    } else {
        PROFILE_PREFIXES.iter().find_map(|prefix| id.strip_prefix(prefix)).unwrap_or(id).starts_with("anthropic.claude")
    };
    if valid && id.len() <= 2048 {
        Ok(())
    } else {
        Err(BedrockError::invalid("The provided model identifier is invalid."))
    }
}

// --- request bodies -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest {
    #[serde(default)]
    messages: Vec<ConverseMessage>,
    #[serde(default)]
    system: Vec<TextBlock>,
    #[serde(default)]
    inference_config: InferenceConfig,
}

#[derive(Deserialize)]
struct ConverseMessage {
    role: Role,
    #[serde(default)]
    content: Vec<TextBlock>,
}

/// A content block; only text matters to the emulator, other members are ignored.
#[derive(Deserialize)]
struct TextBlock {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
}

fn constraint(value: impl std::fmt::Display, at: &str, rule: &str) -> BedrockError {
    BedrockError::invalid(format!(
        "1 validation error detected: Value '{value}' at '{at}' failed to satisfy constraint: Member must {rule}"
    ))
}

fn parse_converse(body: &[u8]) -> Result<Prompt, BedrockError> {
    let request: ConverseRequest =
        serde_json::from_slice(body).map_err(|e| BedrockError::invalid(format!("Malformed request body: {e}")))?;
    let config = request.inference_config;
    let max_tokens = match config.max_tokens {
        None => DEFAULT_CONVERSE_MAX_TOKENS,
        Some(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
        Some(n) => return Err(constraint(n, "inferenceConfig.maxTokens", "have value greater than or equal to 1")),
    };
    for (value, at) in [(config.temperature, "inferenceConfig.temperature"), (config.top_p, "inferenceConfig.topP")] {
        if let Some(value) = value.filter(|v| !(0.0..=1.0).contains(v)) {
            return Err(constraint(value, at, "have value between 0 and 1"));
        }
    }
    if request.messages.is_empty() {
        return Err(constraint("[]", "messages", "have length greater than or equal to 1"));
    }
    if request.messages.first().map(|m| m.role) != Some(Role::User) {
        return Err(BedrockError::invalid(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        ));
    }
    let texts = |blocks: &[TextBlock]| blocks.iter().filter_map(|b| b.text.as_deref()).map(count_tokens).sum::<u32>();
    let last_user = request.messages.iter().rposition(|m| m.role == Role::User).unwrap_or(0);
    let context_tokens = texts(&request.system)
        + request
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != last_user)
            .map(|(_, m)| texts(&m.content))
            .sum::<u32>();
    let text = join_texts(
        request
            .messages
            .into_iter()
            .nth(last_user)
            .map(|m| m.content)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| b.text),
    );
    Ok(Prompt { text, context_tokens, max_tokens })
}

/// Joins text blocks with newlines, moving a lone block instead of copying it.
fn join_texts(mut texts: impl Iterator<Item = String>) -> String {
    let mut joined = texts.next().unwrap_or_default();
    for text in texts {
        joined.push('\n');
        joined.push_str(&text);
    }
    joined
}

#[derive(Deserialize)]
struct AnthropicRequest {
    anthropic_version: Option<String>,
    max_tokens: Option<i64>,
    messages: Option<Vec<AnthropicMessage>>,
    system: Option<AnthropicContent>,
    temperature: Option<f64>,
    top_p: Option<f64>,
}

#[derive(Deserialize)]
struct AnthropicMessage {
    role: String,
    content: AnthropicContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnthropicContent {
    Text(String),
    Blocks(Vec<TextBlock>),
}

impl AnthropicContent {
    fn tokens(&self) -> u32 {
        match self {
            AnthropicContent::Text(text) => count_tokens(text),
            AnthropicContent::Blocks(blocks) => blocks.iter().filter_map(|b| b.text.as_deref()).map(count_tokens).sum(),
        }
    }

    fn into_text(self) -> String {
        match self {
            AnthropicContent::Text(text) => text,
            AnthropicContent::Blocks(blocks) => join_texts(blocks.into_iter().filter_map(|b| b.text)),
        }
    }
}

fn malformed(detail: impl std::fmt::Display) -> BedrockError {
    BedrockError::invalid(format!("Malformed input request: {detail}, please reformat your input and try again."))
}

fn parse_anthropic(body: &[u8]) -> Result<Prompt, BedrockError> {
    let request: AnthropicRequest = serde_json::from_slice(body).map_err(malformed)?;
    match request.anthropic_version.as_deref() {
        None => return Err(malformed("#: required key [anthropic_version] not found")),
        Some(ANTHROPIC_VERSION) => {}
        Some(other) => return Err(malformed(format!("#/anthropic_version: {other} is not a valid enum value"))),
    }
    let max_tokens = match request.max_tokens {
        None => return Err(malformed("#: required key [max_tokens] not found")),
        Some(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
        Some(n) => return Err(malformed(format!("#/max_tokens: {n} is not greater or equal to 1"))),
    };
    for (value, at) in [(request.temperature, "temperature"), (request.top_p, "top_p")] {
        if let Some(value) = value.filter(|v| !(0.0..=1.0).contains(v)) {
            return Err(malformed(format!("#/{at}: {value} is not in the range 0 to 1")));
        }
    }
    let messages = request.messages.ok_or_else(|| malformed("#: required key [messages] not found"))?;
    if messages.is_empty() {
        return Err(malformed("#/messages: expected minimum item count: 1, found: 0"));
    }
    if let Some((i, m)) = messages.iter().enumerate().find(|(_, m)| m.role != "user" && m.role != "assistant") {
        return Err(malformed(format!("#/messages/{i}/role: {} is not a valid enum value", m.role)));
    }
    if messages.first().map(|m| m.role.as_str()) != Some("user") {
        return Err(BedrockError::invalid("messages: first message must use the \"user\" role"));
    }
    let last_user = messages.iter().rposition(|m| m.role == "user").unwrap_or(0);
    let context_tokens = request.system.as_ref().map_or(0, AnthropicContent::tokens)
        + messages.iter().enumerate().filter(|(i, _)| *i != last_user).map(|(_, m)| m.content.tokens()).sum::<u32>();
    let text = messages.into_iter().nth(last_user).map(|m| m.content.into_text()).unwrap_or_default();
    Ok(Prompt { text, context_tokens, max_tokens })
}

// --- response bodies ------------------------------------------------------------------------

/// The emulated timings reported in metrics, derived from the configuration so they are deterministic.
#[derive(Debug, Clone, Copy)]
struct Timing {
    first_byte_ms: u64,
    total_ms: u64,
    /// How long generating the whole reply takes when paced.
    generation: Option<Duration>,
}

impl Timing {
    fn new(shared: &Shared, chunks: u32) -> Self {
        let generation = shared.interval.map(|interval| interval.saturating_mul(chunks));
        let first_byte_ms = millis(shared.latency);
        Timing { first_byte_ms, total_ms: first_byte_ms + generation.map_or(0, millis), generation }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A non-streaming body: the whole JSON answer, or with `head_only` just its opening up to the
/// first chunk of text (what a stalled connection has sent before it hangs).
fn whole_body(op: Operation, model_id: &str, completion: &Completion, timing: Timing, head_only: bool) -> Vec<u8> {
    let text = if head_only { completion.chunks().next().unwrap_or_default() } else { completion.text.as_str() };
    let usage = (completion.input_tokens, completion.output_tokens());
    let value = match op {
        Operation::Converse | Operation::ConverseStream => serde_json::json!({
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": completion.stop_reason.as_str(),
            "usage": {"inputTokens": usage.0, "outputTokens": usage.1, "totalTokens": usage.0.saturating_add(usage.1)},
            "metrics": {"latencyMs": timing.total_ms},
        }),
        Operation::Invoke | Operation::InvokeStream => serde_json::json!({
            "id": message_id(completion),
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": [{"type": "text", "text": text}],
            "stop_reason": completion.stop_reason.as_str(),
            "stop_sequence": null,
            "usage": {"input_tokens": usage.0, "output_tokens": usage.1},
        }),
    };
    let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
    if head_only {
        // Cut right after the first chunk's text so the client holds a valid-looking prefix.
        let quoted = serde_json::to_string(text).unwrap_or_default();
        if let Some(at) = find(&bytes, quoted.as_bytes()) {
            bytes.truncate(at + quoted.len() - 1);
        }
    }
    bytes
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len().max(1)).position(|window| window == needle)
}

/// A deterministic Anthropic message id, so the same prompt yields the same bytes.
fn message_id(completion: &Completion) -> String {
    format!("msg_bdrk_emulator_{:08x}", crc32fast::hash(completion.text.as_bytes()))
}

/// Writes event-stream frames, cutting them into ticks: the pieces released one pacing interval apart.
struct Frames {
    buf: BytesMut,
    ticks: Vec<Bytes>,
    json: Vec<u8>,
    split: bool,
    events: usize,
}

impl Frames {
    fn new(capacity: usize, split: bool) -> Self {
        Frames {
            buf: BytesMut::with_capacity(capacity),
            ticks: Vec::new(),
            json: Vec::with_capacity(256),
            split,
            events: 0,
        }
    }

    /// Deterministic padding of varying length, as AWS's `p` member varies.
    fn padding(&self) -> &'static str {
        &PADDING[..(self.events * 7 + 3) % PADDING.len()]
    }

    fn event(&mut self, event_type: &str, payload: &impl Serialize) -> Result<(), BedrockError> {
        self.json.clear();
        serde_json::to_writer(&mut self.json, payload).map_err(|_| BedrockError::InternalServer)?;
        eventstream::encode_str_headers(
            &mut self.buf,
            &[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
            &self.json,
        )?;
        self.events += 1;
        Ok(())
    }

    /// Wraps an Anthropic stream event in a `chunk` event, as InvokeWithResponseStream does.
    fn chunk(&mut self, anthropic_event: &impl Serialize) -> Result<(), BedrockError> {
        #[derive(Serialize)]
        struct Chunk<'a> {
            bytes: String,
            p: &'a str,
        }
        let json = serde_json::to_vec(anthropic_event).map_err(|_| BedrockError::InternalServer)?;
        let bytes = base64::engine::general_purpose::STANDARD.encode(json);
        let p = self.padding();
        self.event("chunk", &Chunk { bytes, p })
    }

    fn tick(&mut self) {
        if self.split {
            self.ticks.push(self.buf.split().freeze());
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.buf.is_empty() || self.ticks.is_empty() {
            self.ticks.push(self.buf.freeze());
        }
        self.ticks
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseDelta<'a> {
    content_block_index: u32,
    delta: TextDelta<'a>,
    p: &'a str,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct AnthropicDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: AnthropicTextDelta<'a>,
}

#[derive(Serialize)]
struct AnthropicTextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

/// The event-stream body of a streaming operation, cut into ticks when `split`: the opening events
/// and the first delta, then one delta per tick, the closing events riding with the last delta.
fn stream_frames(
    op: Operation,
    model_id: &str,
    completion: &Completion,
    timing: Timing,
    split: bool,
) -> Result<Vec<Bytes>, BedrockError> {
    use serde_json::json;
    let (input, output) = (completion.input_tokens, completion.output_tokens());
    let stop = completion.stop_reason.as_str();
    let mut frames = Frames::new(completion.text.len() * 2 + completion.chunks().len() * 160 + 1024, split);
    match op {
        Operation::ConverseStream | Operation::Converse => {
            frames.event("messageStart", &json!({"p": frames.padding(), "role": "assistant"}))?;
            for (i, text) in completion.chunks().enumerate() {
                if i > 0 {
                    frames.tick();
                }
                let p = frames.padding();
                frames.event(
                    "contentBlockDelta",
                    &ConverseDelta { content_block_index: 0, delta: TextDelta { text }, p },
                )?;
            }
            frames.event("contentBlockStop", &json!({"contentBlockIndex": 0, "p": frames.padding()}))?;
            frames.event("messageStop", &json!({"p": frames.padding(), "stopReason": stop}))?;
            frames.event(
                "metadata",
                &json!({
                    "metrics": {"latencyMs": timing.total_ms},
                    "p": frames.padding(),
                    "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input.saturating_add(output)},
                }),
            )?;
        }
        Operation::InvokeStream | Operation::Invoke => {
            frames.chunk(&json!({
                "type": "message_start",
                "message": {
                    "id": message_id(completion), "type": "message", "role": "assistant", "model": model_id,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": input, "output_tokens": 1},
                },
            }))?;
            frames.chunk(
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            )?;
            for (i, text) in completion.chunks().enumerate() {
                if i > 0 {
                    frames.tick();
                }
                let delta = AnthropicDelta {
                    kind: "content_block_delta",
                    index: 0,
                    delta: AnthropicTextDelta { kind: "text_delta", text },
                };
                frames.chunk(&delta)?;
            }
            frames.chunk(&json!({"type": "content_block_stop", "index": 0}))?;
            frames.chunk(&json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": output},
            }))?;
            frames.chunk(&json!({
                "type": "message_stop",
                "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": input, "outputTokenCount": output,
                    "invocationLatency": timing.total_ms, "firstByteLatency": timing.first_byte_ms,
                },
            }))?;
        }
    }
    Ok(frames.finish())
}

/// Counts a streaming body as open until hyper drops it (stream finished or client gone).
struct OpenBody(Arc<AtomicUsize>);

impl OpenBody {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        OpenBody(Arc::clone(counter))
    }
}

impl Drop for OpenBody {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves when the emulator shuts down (or is dropped altogether).
fn shutdown_signal(shared: &Shared) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = shared.shutdown.subscribe();
    async move {
        let _ = rx.wait_for(|stopping| *stopping).await;
    }
}

/// Sends `ticks` one interval apart, sleeping (never spinning) between them. No task is spawned:
/// hyper drives the stream, so a client that disconnects drops it and nothing keeps running.
fn paced_body(shared: &Shared, ticks: Vec<Bytes>, interval: Duration) -> Body {
    let start = Instant::now();
    let open = OpenBody::new(&shared.open_bodies);
    let stream = futures_util::stream::iter(ticks.into_iter().enumerate())
        .then(move |(i, tick)| async move {
            if i > 0 {
                let offset = interval.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                tokio::time::sleep_until(start + offset).await;
            }
            Ok::<_, Infallible>(tick)
        })
        .take_until(shutdown_signal(shared))
        .map(move |tick| {
            let _open = &open;
            tick
        });
    Body::from_stream(stream)
}

/// Sends `head` and then nothing, ever: the connection stays open until the client gives up or the
/// emulator shuts down. Pending without a waker costs nothing while it waits.
fn stalled_body(shared: &Shared, head: Vec<Bytes>) -> Body {
    let open = OpenBody::new(&shared.open_bodies);
    let stream = futures_util::stream::iter(head.into_iter().map(Ok::<_, Infallible>))
        .chain(futures_util::stream::pending())
        .take_until(shutdown_signal(shared))
        .map(move |tick| {
            let _open = &open;
            tick
        });
    Body::from_stream(stream)
}
