//! The error responses the OpenAPI document names, one type per status, so every operation's
//! `#[utoipa::path]` lists its failures by name and each status is described once. The
//! statuses are those [`crate::error::ApiError`] answers with; the body is always an
//! [`ErrorBody`].

use common::ErrorBody;
use utoipa::IntoResponses;

/// What any request can be refused with before or while its parameters are read.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refused {
    #[response(status = 400, description = "A parameter, the path or the body cannot be read; the message says which.")]
    BadRequest(ErrorBody),
    #[response(
        status = 401,
        description = "The server was started with an access token and the request carries none, or another one."
    )]
    Unauthorized(ErrorBody),
    #[response(status = 403, description = "A request from another site that would change something.")]
    Forbidden(ErrorBody),
    #[response(status = 421, description = "The `Host` header names a host this server does not answer to.")]
    Misdirected(ErrorBody),
}

/// A request that writes: its body is refused before anything is stored.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyRefused {
    #[response(status = 413, description = "The body, or a field of it, is larger than the server allows.")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "The body is not sent as `application/json`.")]
    UnsupportedMediaType(ErrorBody),
    #[response(
        status = 422,
        description = "The body is well-formed JSON but a value is not acceptable (an empty prompt, a model past its end of life)."
    )]
    Invalid(ErrorBody),
}

#[derive(IntoResponses)]
#[response(status = 404, description = "No such run or batch.")]
#[allow(dead_code)]
pub struct NotFound(ErrorBody);

#[derive(IntoResponses)]
#[response(status = 409, description = "The resource's state does not allow this (cancelling a run that has ended).")]
#[allow(dead_code)]
pub struct Conflict(ErrorBody);

#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "A rate or concurrency limit is reached; nothing was accepted.",
    headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))
)]
#[allow(dead_code)]
pub struct TooManyRequests(ErrorBody);

#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "Storage or the prompt journal is failing; nothing was accepted and the request may be retried."
)]
#[allow(dead_code)]
pub struct Unavailable(ErrorBody);
