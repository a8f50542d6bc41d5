//! `ApiError`: every error the HTTP API answers with, mapped to a status and a JSON body in
//! one place. Handlers return `Result<_, ApiError>` and use `?`. Internal failures (storage,
//! journal) answer with a fixed message that never carries driver text or a server path; their
//! whole cause chain travels in the response's extensions to the request middleware (see
//! [`crate::routes`]), which logs it once.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::ErrorBody;

use crate::causes::chain;
use crate::feed::FeedError;
use crate::journal::JournalError;
use crate::store::StoreError;
use crate::submission::SubmitError;

/// What the logging middleware writes about an error response: the client's message and,
/// for internal failures, every cause behind it.
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
    TooManyRequests { message: String, retry_after_secs: u64 },
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
    /// 503: the run store failed (disk full, read-only, gone); the client may retry later.
    #[error("storage is unavailable; try again later")]
    Storage(#[source] StoreError),
    /// 503: storage is failing right now (the hub is retrying); nothing was accepted.
    #[error("storage is unavailable; try again later")]
    StorageDown,
    /// 503: the prompt journal failed; nothing was accepted and the client may retry later.
    #[error("the prompt journal is unavailable; try again later")]
    Journal(#[source] JournalError),
    /// A feature this server's configuration lacks; the message says which.
    #[error("{0}")]
    NotImplemented(String),
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
            ApiError::Storage(_) | ApiError::StorageDown | ApiError::Journal(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let mut response = (self.status(), Json(ErrorBody { error: message })).into_response();
        if let ApiError::TooManyRequests { retry_after_secs, .. } = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after_secs.into());
        }
        response.extensions_mut().insert(LoggedError(chain(&self)));
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
        match error {
            StoreError::Unsupported(what) => {
                ApiError::NotImplemented(format!("{what} are not available with the PostgreSQL store yet; use SQLite"))
            }
            error => ApiError::Storage(error),
        }
    }
}

impl From<JournalError> for ApiError {
    fn from(error: JournalError) -> Self {
        ApiError::Journal(error)
    }
}

impl From<FeedError> for ApiError {
    fn from(error: FeedError) -> Self {
        match error {
            FeedError::NoSuchRun(_) => ApiError::NotFound(error.to_string()),
            FeedError::BeyondLastEvent { .. } => ApiError::BadRequest(error.to_string()),
            FeedError::Store(error) => error.into(),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Invalid(message) => ApiError::Invalid(message),
            SubmitError::TooLarge(message) => ApiError::TooLarge(message),
            SubmitError::Journal(error) => error.into(),
            SubmitError::Store(error) => error.into(),
            SubmitError::StorageDown => ApiError::StorageDown,
            SubmitError::Limited { message, retry_after_secs } => {
                ApiError::TooManyRequests { message, retry_after_secs }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use axum::body::to_bytes;

    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, String, String) {
        let response = error.into_response();
        let logged = response.extensions().get::<LoggedError>().map(|l| l.0.clone()).unwrap_or_default();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned(), logged)
    }

    #[tokio::test]
    async fn a_storage_failure_answers_503_without_driver_text_but_logs_the_cause() {
        let driver = sqlx::Error::Protocol("disk I/O error at /srv/secret/runs.db".into());
        let (status, body, logged) = body_of(StoreError::Database(driver).into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, r#"{"error":"storage is unavailable; try again later"}"#);
        assert!(logged.contains("disk I/O error at /srv/secret/runs.db"), "the log keeps the cause: {logged}");
    }

    #[tokio::test]
    async fn a_journal_failure_answers_503_without_the_journal_path() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let path = PathBuf::from("/home/operator/app/prompts.txt").display().to_string();
        let (status, body, logged) = body_of(SubmitError::from(JournalError::Io { path, source: io }).into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, r#"{"error":"the prompt journal is unavailable; try again later"}"#);
        assert!(!body.contains("/home/operator"));
        assert!(logged.contains("/home/operator/app/prompts.txt") && logged.contains("No space left on device"));
    }
}
