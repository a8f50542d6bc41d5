//! `ApiError`: every error the HTTP API answers with, mapped to a status and a JSON body in
//! one place. Handlers return `Result<_, ApiError>` and use `?`; the details of internal
//! failures are logged once by the request middleware (see [`crate::routes`]), never sent.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::ErrorBody;

use crate::app::SubmitError;
use crate::journal::JournalError;
use crate::store::StoreError;

/// The message of an error response, kept in its extensions for the logging middleware.
#[derive(Debug, Clone)]
pub struct LoggedError(pub String);

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad query, bad id).
    #[error("{0}")]
    BadRequest(String),
    /// 422: the request is well-formed but a value is not acceptable (empty prompt...).
    #[error("{0}")]
    Invalid(String),
    /// 401: an access token is required and was missing or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the request comes from another site, or may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 421: the request names a host this server does not answer to (DNS rebinding).
    #[error("{0}")]
    MisdirectedRequest(String),
    /// 429: a rate or concurrency limit is reached; `Retry-After` says when to come back.
    #[error("{message}")]
    TooManyRequests {
        /// What limit was reached.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// 404: no such run or route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with the resource's state (cancelling a finished run).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body or a field is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: storage failed (disk full, read-only, gone); the client may retry later.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let mut response = (self.status(), Json(ErrorBody { error: message.clone() })).into_response();
        if let ApiError::TooManyRequests { retry_after_secs, .. } = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after_secs.into());
        }
        response.extensions_mut().insert(LoggedError(message));
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge("request body is larger than the configured limit".into())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::UnsupportedMediaType("expected a JSON body with `Content-Type: application/json`".into())
            }
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Invalid(message),
            _ => ApiError::BadRequest(message),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Unavailable(error.to_string())
    }
}

impl From<JournalError> for ApiError {
    fn from(error: JournalError) -> Self {
        ApiError::Unavailable(error.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Invalid(message) => ApiError::Invalid(message),
            SubmitError::TooLarge(message) => ApiError::TooLarge(message),
            SubmitError::Journal(error) => error.into(),
            SubmitError::Store(error) => error.into(),
            SubmitError::Limited { message, retry_after_secs } => {
                ApiError::TooManyRequests { message, retry_after_secs }
            }
        }
    }
}
