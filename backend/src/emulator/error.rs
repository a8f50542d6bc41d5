//! How a call fails: [`BedrockError`], answered with Bedrock's status, `x-amzn-ErrorType` header
//! and `{"message"}` body.
//!
//! It has a module of its own because request parsing, body building and the router all fail with
//! it: kept in any one of them, the others would import it back.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::eventstream::EncodeError;

const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");

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
    /// 424: the model failed while producing its answer.
    #[error("The model encountered an error while streaming its response. Try your request again.")]
    ModelStreamError,
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
            BedrockError::ModelStreamError => "ModelStreamErrorException",
            BedrockError::UnknownOperation => "UnknownOperationException",
        }
    }

    /// The HTTP status Bedrock sends with this error.
    pub fn status(&self) -> StatusCode {
        match self {
            BedrockError::Validation(_) => StatusCode::BAD_REQUEST,
            BedrockError::Throttling => StatusCode::TOO_MANY_REQUESTS,
            BedrockError::InternalServer => StatusCode::INTERNAL_SERVER_ERROR,
            BedrockError::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            BedrockError::ModelStreamError => StatusCode::FAILED_DEPENDENCY,
            BedrockError::UnknownOperation => StatusCode::NOT_FOUND,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        BedrockError::Validation(message.into())
    }

    /// The `:exception-type` of this error sent inside an event stream: the shape name with a
    /// lower-case first letter (`throttlingException`), as Bedrock names stream members.
    pub(crate) fn stream_exception_type(&self) -> String {
        let name = self.name();
        let mut chars = name.chars();
        chars.next().map(|first| first.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
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
        let json = HeaderValue::from_static("application/json");
        let mut response = (self.status(), [(CONTENT_TYPE, json)], body).into_response();
        if let Ok(value) = HeaderValue::from_str(&error_type) {
            response.headers_mut().insert(ERROR_TYPE, value);
        }
        response
    }
}
