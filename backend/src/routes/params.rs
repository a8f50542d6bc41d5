//! What requests name in paths and queries, read the same way by every route: ids, page sizes,
//! and the echo of a bad value in an error message.

use std::str::FromStr;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::extract::Json;
use crate::error::ApiError;

/// A client's text as an error message repeats it: short enough to read.
pub fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Parses a UUID id (`what` names its kind: "run", "batch"), with an error that says what was
/// wrong.
pub fn parse_id<T: FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| ApiError::BadRequest(format!("`{}` is not a {what} id (expected a UUID)", truncate(text))))
}

/// A list's `limit`: `default` when absent, refused outside `1..=max`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {max}")));
    }
    Ok(limit)
}

/// `202 Accepted` with the new resource and where to find it.
pub fn accepted(body: &impl Serialize, location: &str) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Query of a download of one thing (a run, a batch's results): the file format it comes in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    pub format: Option<String>,
}

/// A download: the body with its type, named `filename`.
pub fn attachment(body: Body, content_type: &'static str, filename: &str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}
