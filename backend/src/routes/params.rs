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

/// A download's file format, read from its `format` query parameter. Each format is an enum that
/// the handler matches on and the OpenAPI document lists, so the two cannot drift apart.
pub trait FileFormat: Copy + 'static {
    /// The format without a `format` parameter.
    const DEFAULT: Self;
    /// Every name accepted, the documented ones first, then aliases.
    const NAMES: &'static [(&'static str, Self)];
    /// The names an error lists: the documented ones.
    const DOCUMENTED: &'static str;

    fn parse(format: Option<&str>) -> Result<Self, ApiError> {
        let Some(name) = format else { return Ok(Self::DEFAULT) };
        Self::NAMES.iter().find(|(known, _)| *known == name).map(|(_, format)| *format).ok_or_else(|| {
            ApiError::BadRequest(format!("format `{}` is not one of {}", truncate(name), Self::DOCUMENTED))
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Sheet {
        Csv,
        Tsv,
    }

    impl FileFormat for Sheet {
        const DEFAULT: Self = Sheet::Csv;
        const NAMES: &'static [(&'static str, Self)] = &[("csv", Sheet::Csv), ("tsv", Sheet::Tsv), ("tab", Sheet::Tsv)];
        const DOCUMENTED: &'static str = "csv, tsv";
    }

    #[test]
    fn a_format_is_its_default_when_unnamed_and_answers_to_its_aliases() {
        assert_eq!(Sheet::parse(None).ok(), Some(Sheet::Csv));
        assert_eq!(Sheet::parse(Some("tsv")).ok(), Some(Sheet::Tsv));
        assert_eq!(Sheet::parse(Some("tab")).ok(), Some(Sheet::Tsv));
    }

    #[test]
    fn an_unknown_format_is_refused_naming_the_documented_ones() {
        match Sheet::parse(Some("xlsx")) {
            Err(ApiError::BadRequest(message)) => assert_eq!(message, "format `xlsx` is not one of csv, tsv"),
            other => panic!("expected a 400, got {:?}", other.map(|_| ())),
        }
    }
}
