//! Which bytes go back: whole JSON bodies, event-stream frames cut into ticks, and the headers
//! that ride with them.
//!
//! Everything here is a pure function of the request and the [`Completion`], so the same prompt
//! always yields the same bytes; when each tick is released is the business of
//! [`pacing`](super::pacing).

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use base64::Engine as _;
use bytes::BytesMut;
use serde::Serialize;

use super::error::BedrockError;
use super::eventstream;
use super::pacing::Timing;
use super::reply::Completion;
use super::request::Operation;

/// Source of AWS's `p` padding member, which hides token lengths from traffic analysis.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("application/vnd.amazon.eventstream");

pub(crate) fn json_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

/// An event-stream response; InvokeWithResponseStream also names the content type of its chunks.
pub(crate) fn event_stream_response(op: Operation, body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(CONTENT_TYPE, EVENT_STREAM);
    if op == Operation::InvokeStream {
        response.headers_mut().insert(HeaderName::from_static("x-amzn-bedrock-content-type"), JSON);
    }
    response
}

/// InvokeModel reports usage and latency in headers, its body being the model's own JSON.
pub(crate) fn add_invoke_headers(response: &mut Response, completion: &Completion, timing: Timing) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-amzn-bedrock-input-token-count", u64::from(completion.input_tokens)),
        ("x-amzn-bedrock-output-token-count", u64::from(completion.output_tokens())),
        ("x-amzn-bedrock-invocation-latency", timing.total_ms),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// A non-streaming body: the whole JSON answer, or with `head_only` just its opening up to the
/// first chunk of text (what a stalled connection has sent before it hangs).
pub(crate) fn whole_body(
    op: Operation,
    model_id: &str,
    completion: &Completion,
    timing: Timing,
    head_only: bool,
) -> Vec<u8> {
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
    /// Scratch space for each event's JSON, reused so a long stream allocates it once.
    json: Vec<u8>,
    /// Whether `tick` cuts; unsplit, the whole stream is one piece.
    split: bool,
    /// Events written so far, which vary the padding.
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

    /// An exception frame, which ends a stream the way Bedrock ends one that fails mid-answer.
    fn exception(&mut self, error: &BedrockError) -> Result<(), BedrockError> {
        #[derive(Serialize)]
        struct ExceptionBody<'a> {
            message: &'a str,
        }
        self.json.clear();
        let message = error.to_string();
        serde_json::to_writer(&mut self.json, &ExceptionBody { message: &message })
            .map_err(|_| BedrockError::InternalServer)?;
        let exception_type = error.stream_exception_type();
        eventstream::encode_str_headers(
            &mut self.buf,
            &[
                (":exception-type", exception_type.as_str()),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
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

    /// Ends a stream before its closing events: silently for a cut, with the exception otherwise.
    fn end_early(mut self, ending: Ending<'_>) -> Result<Vec<Bytes>, BedrockError> {
        if let Ending::Exception(error) = ending {
            self.tick();
            self.exception(error)?;
        }
        Ok(self.finish())
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.buf.is_empty() || self.ticks.is_empty() {
            self.ticks.push(self.buf.freeze());
        }
        self.ticks
    }
}

// The per-chunk events are structs rather than `json!` values: one is built for every token.

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

/// How a streamed answer ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ending<'a> {
    /// The whole answer and the closing events.
    Complete,
    /// The first half of the answer (at least one delta), then nothing: no closing events.
    Cut,
    /// The first half of the answer, then this error as an exception frame.
    Exception(&'a BedrockError),
}

/// The event-stream body of a streaming operation, cut into ticks when `split`: the opening events
/// and the first delta, then one delta per tick, the closing events riding with the last delta
/// (an exception frame gets a tick of its own).
pub(crate) fn stream_frames(
    op: Operation,
    model_id: &str,
    completion: &Completion,
    timing: Timing,
    split: bool,
    ending: Ending<'_>,
) -> Result<Vec<Bytes>, BedrockError> {
    use serde_json::json;
    let (input, output) = (completion.input_tokens, completion.output_tokens());
    let stop = completion.stop_reason.as_str();
    let mut frames = Frames::new(completion.text.len() * 2 + completion.chunks().len() * 160 + 1024, split);
    let produced = match ending {
        Ending::Complete => completion.chunks().len(),
        Ending::Cut | Ending::Exception(_) => completion.chunks().len().div_ceil(2),
    };
    match op {
        Operation::ConverseStream | Operation::Converse => {
            frames.event("messageStart", &json!({"p": frames.padding(), "role": "assistant"}))?;
            for (i, text) in completion.chunks().take(produced).enumerate() {
                if i > 0 {
                    frames.tick();
                }
                let p = frames.padding();
                frames.event(
                    "contentBlockDelta",
                    &ConverseDelta { content_block_index: 0, delta: TextDelta { text }, p },
                )?;
            }
            if !matches!(ending, Ending::Complete) {
                return frames.end_early(ending);
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
            for (i, text) in completion.chunks().take(produced).enumerate() {
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
            if !matches!(ending, Ending::Complete) {
                return frames.end_early(ending);
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
