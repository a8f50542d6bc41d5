//! The Bedrock client: the only place that talks to `aws-sdk-bedrockruntime`.
//!
//! The flow sees [`ModelClient`]: one call sends one request, streams the response text to a
//! callback and reports what a person debugging it needs ([`CallTrace`]). Errors are
//! classified ([`ErrorKind`]) so the flow retries only what is worth retrying.
//!
//! The SDK's own retries are **disabled** on purpose: the flow retries `call_bedrock` itself,
//! with its documented delays, so every HTTP call to Bedrock is one visible attempt with its own
//! request id and log lines (left on, the SDK's 3 attempts inside each of our 3 would make one
//! run send up to 9 requests, most of them invisible).

mod connect;
mod sdk;

use std::fmt;

use async_trait::async_trait;
use common::{StopReason, Usage};

pub use connect::{BedrockChoice, BedrockSettings, ConnectError, Connected, connect};
pub use sdk::{BedrockApi, SdkClient, SdkSettings, Timeouts};

/// One model call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    /// Bedrock model id, inference profile id or ARN.
    pub model_id: String,
    pub prompt: String,
    pub system: Option<String>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
}

/// What a person debugging a call needs, whether it succeeded or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallTrace {
    /// HTTP status of the response, once one arrived.
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    /// Milliseconds from sending to the response headers.
    pub first_byte_ms: Option<u64>,
    /// Milliseconds the call took.
    pub total_ms: Option<u64>,
}

/// A successful model call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReply {
    pub text: String,
    /// Token usage; `None` when Bedrock did not report it.
    pub usage: Option<Usage>,
    pub stop_reason: Option<StopReason>,
    /// Bedrock's own latency figure.
    pub latency_ms: Option<u64>,
    pub trace: CallTrace,
}

/// What went wrong with a call, by how the flow must react.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `ThrottlingException` (429).
    Throttled,
    /// `ServiceUnavailableException` (503).
    ServiceUnavailable,
    /// `InternalServerException` (500).
    InternalServer,
    /// `ModelNotReadyException`.
    ModelNotReady,
    /// `ModelTimeoutException` (408).
    ModelTimeout,
    /// `ModelStreamErrorException`, or a stream that ended before the model finished.
    StreamBroken,
    /// `ModelErrorException`.
    ModelError,
    /// No event arrived on the stream within the idle timeout.
    StreamIdle,
    /// No response headers within the first-byte timeout, or the SDK timed out.
    Timeout,
    /// The whole call exceeded the operator's `--call-timeout-secs`.
    CallLimit,
    /// The connection could not be made or was lost.
    Connection,
    /// `ValidationException` (400): the request or the model id is wrong.
    Validation,
    /// `AccessDeniedException` (403).
    AccessDenied,
    /// `ResourceNotFoundException` (404), e.g. an unknown or retired model.
    NotFound,
    /// `ServiceQuotaExceededException`.
    QuotaExceeded,
    /// Anything else (an unexpected response, a request the SDK could not build).
    Other,
}

impl ErrorKind {
    /// Whether another attempt may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::ServiceUnavailable
                | ErrorKind::InternalServer
                | ErrorKind::ModelNotReady
                | ErrorKind::ModelTimeout
                | ErrorKind::StreamBroken
                | ErrorKind::ModelError
                | ErrorKind::StreamIdle
                | ErrorKind::Timeout
                | ErrorKind::Connection
        )
    }

    /// What the HTTP status alone says, whatever the body: a 429 is throttling and any 5xx a
    /// server-side failure, both worth another attempt. A proxy or load balancer in front of
    /// Bedrock answers 502/503/504 with an HTML page and no error code, and AWS itself may
    /// answer a generic `InternalFailure` or `ServiceUnavailable`; the status is the contract.
    pub fn from_status(status: u16) -> Option<ErrorKind> {
        match status {
            429 => Some(ErrorKind::Throttled),
            503 => Some(ErrorKind::ServiceUnavailable),
            500..=599 => Some(ErrorKind::InternalServer),
            _ => None,
        }
    }

    /// Classifies a Bedrock error code (`ThrottlingException`, ...).
    pub fn from_code(code: &str) -> ErrorKind {
        match code {
            "ThrottlingException" | "throttlingException" => ErrorKind::Throttled,
            "ServiceUnavailableException" | "serviceUnavailableException" | "ServiceUnavailable" => {
                ErrorKind::ServiceUnavailable
            }
            "InternalServerException" | "internalServerException" | "InternalFailure" => ErrorKind::InternalServer,
            "ModelNotReadyException" => ErrorKind::ModelNotReady,
            "ModelTimeoutException" => ErrorKind::ModelTimeout,
            "ModelStreamErrorException" | "modelStreamErrorException" => ErrorKind::StreamBroken,
            "ModelErrorException" => ErrorKind::ModelError,
            "ValidationException" | "validationException" => ErrorKind::Validation,
            "AccessDeniedException" => ErrorKind::AccessDenied,
            "ResourceNotFoundException" => ErrorKind::NotFound,
            "ServiceQuotaExceededException" => ErrorKind::QuotaExceeded,
            _ => ErrorKind::Other,
        }
    }

    /// A stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::InternalServer => "internal_server",
            ErrorKind::ModelNotReady => "model_not_ready",
            ErrorKind::ModelTimeout => "model_timeout",
            ErrorKind::StreamBroken => "stream_broken",
            ErrorKind::ModelError => "model_error",
            ErrorKind::StreamIdle => "stream_idle",
            ErrorKind::Timeout => "timeout",
            ErrorKind::CallLimit => "call_limit",
            ErrorKind::Connection => "connection",
            ErrorKind::Validation => "validation",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed model call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    /// How the flow must react.
    pub kind: ErrorKind,
    /// The service's message, or what went wrong locally.
    pub message: String,
    /// HTTP details, as far as the call got.
    pub trace: CallTrace,
}

/// Receives the response text as it arrives.
pub trait TextSink: Send {
    /// Takes the next piece of text.
    fn text(&mut self, text: &str);
}

impl<F: FnMut(&str) + Send> TextSink for F {
    fn text(&mut self, text: &str) {
        self(text);
    }
}

/// Sends prompts to a Claude model.
#[async_trait]
pub trait ModelClient: Send + Sync + 'static {
    /// Makes exactly one call, passing each piece of response text to `sink` as it arrives.
    async fn call(&self, request: &ModelRequest, sink: &mut dyn TextSink) -> Result<ModelReply, CallError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_5xx_or_429_is_retryable_whatever_the_body_says() {
        for status in [429, 500, 502, 503, 504, 599] {
            let kind = ErrorKind::from_status(status).expect("classified by status");
            assert!(kind.is_retryable(), "{status} -> {kind}");
        }
        for status in [200, 400, 403, 404, 408] {
            assert_eq!(ErrorKind::from_status(status), None, "{status}");
        }
        assert!(ErrorKind::from_code("InternalFailure").is_retryable());
        assert!(ErrorKind::from_code("ServiceUnavailable").is_retryable());
    }

    #[test]
    fn only_transient_failures_are_retried() {
        for code in
            ["ThrottlingException", "ServiceUnavailableException", "InternalServerException", "ModelTimeoutException"]
        {
            assert!(ErrorKind::from_code(code).is_retryable(), "{code}");
        }
        for code in ["ValidationException", "AccessDeniedException", "ResourceNotFoundException", "Whatever"] {
            assert!(!ErrorKind::from_code(code).is_retryable(), "{code}");
        }
        assert!(ErrorKind::StreamIdle.is_retryable());
        assert!(ErrorKind::Connection.is_retryable());
        assert!(!ErrorKind::CallLimit.is_retryable(), "a limit the operator set would cut every attempt");
    }
}
