//! The four Bedrock Runtime routes and the one place each call goes through in order: count it and
//! maybe inject a fault, read what was asked, charge it to the model's quota or throttle it, wait
//! out the latency, then send the answer whole, paced, cut or stalled.
//!
//! This is the only module that sees every role; none of the roles imports it.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};

use super::body::{Ending, add_invoke_headers, event_stream_response, json_response, stream_frames, whole_body};
use super::error::BedrockError;
use super::faults::{Faults, Injected};
use super::pacing::Pace;
use super::quota::Quotas;
use super::reply::Completion;
use super::request::{self, Operation, Prompt};

/// The largest request body accepted; Bedrock's own limit is of this order, and the backend's
/// 2 MiB prompts can double in size once JSON-escaped.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// State shared by every request of one emulator (and by every clone of its [`Emulator`](super::Emulator)).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) faults: Faults,
    pub(crate) quotas: Quotas,
    pub(crate) pace: Pace,
}

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

/// One handler per operation. Extractor rejections are taken as values, so a bad path or body is
/// answered in Bedrock's shape (not axum's plain text) and only after the call's fault, if any.
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

async fn answer(
    op: Operation,
    shared: &Shared,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, BedrockError> {
    // Faults come first, as throttling does at AWS's front door, and every call counts.
    let fault = match shared.faults.next_call() {
        Some(Injected::Refuse(error)) => return Err(error),
        fault => fault,
    };
    let model_id = request::model_id(path)?;
    let prompt = Prompt::parse(op, body)?;
    let completion = Completion::new(&prompt.text, prompt.context_tokens, prompt.max_tokens);
    // The quota meters a model's calls and their tokens, so it needs the request read; faults
    // stay first, and a call refused by them or by validation is not charged.
    shared.quotas.admit(&model_id, completion.total_tokens())?;
    let pace = &shared.pace;
    pace.wait_latency().await;
    let timing = pace.timing(completion.output_tokens());
    match op {
        Operation::Converse | Operation::Invoke => {
            let body = match &fault {
                Some(Injected::MidStream(error)) => return Err(error.clone()),
                Some(Injected::Stall) => {
                    pace.stalled_body(Bytes::from(whole_body(op, &model_id, &completion, timing, true)))
                }
                Some(Injected::Cut) => {
                    let mut whole = whole_body(op, &model_id, &completion, timing, false);
                    whole.truncate(whole.len() / 2);
                    pace.body(vec![Bytes::from(whole)])
                }
                Some(Injected::Refuse(_)) | None => {
                    timing.wait_generation().await;
                    pace.body(vec![Bytes::from(whole_body(op, &model_id, &completion, timing, false))])
                }
            };
            let mut response = json_response(body);
            if op == Operation::Invoke && fault.is_none() {
                add_invoke_headers(&mut response, &completion, timing);
            }
            Ok(response)
        }
        Operation::ConverseStream | Operation::InvokeStream => {
            let ending = match &fault {
                Some(Injected::Cut) => Ending::Cut,
                Some(Injected::MidStream(error)) => Ending::Exception(error),
                Some(Injected::Stall | Injected::Refuse(_)) | None => Ending::Complete,
            };
            let stall = matches!(fault, Some(Injected::Stall));
            let ticks = stream_frames(op, &model_id, &completion, timing, stall || pace.is_paced(), ending)?;
            let body =
                if stall { pace.stalled_body(ticks.into_iter().next().unwrap_or_default()) } else { pace.body(ticks) };
            Ok(event_stream_response(op, body))
        }
    }
}
