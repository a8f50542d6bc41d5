//! `/api/runs`: submit, list, inspect, read the logs of, and cancel runs.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use common::{LogEntry, ReplayRun, RunDetail, RunId, RunState, RunSummary, RunTotals, SubmitRun};
use serde::Deserialize;

use super::extract::{Json, Object, Path, Query};
use super::params::{ExportParams, accepted, attachment, page_limit, parse_id, truncate};
use crate::app::App;
use crate::error::ApiError;
use crate::run_export;
use crate::runs::Cancel;
use crate::store::RunQuery;

/// Runs listed when the client does not say how many.
const DEFAULT_LIMIT: u32 = 50;
/// Most runs one list request may ask for.
const MAX_LIMIT: u32 = 1000;
/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/runs", post(create).get(list))
        .route("/api/runs/totals", get(totals))
        .route("/api/runs/export", get(export_history))
        .route("/api/runs/{id}/export", get(export_run))
        .route("/api/runs/{id}", get(detail))
        .route("/api/runs/{id}/logs", get(logs))
        .route("/api/runs/{id}/cancel", post(cancel))
        .route("/api/runs/{id}/replay", post(replay))
}

/// Parses a run id from a path or query, with an error that says what was wrong.
pub fn parse_run_id(text: &str) -> Result<RunId, ApiError> {
    parse_id(text, "run")
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key =
        value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN).ok_or_else(
            || {
                ApiError::BadRequest(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
                ))
            },
        )?;
    Ok(Some(key.to_owned()))
}

async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(Object(body)): Json<Object<SubmitRun>>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let run = app.submissions().submit(body, key).await?;
    Ok(accepted(&run, &format!("/api/runs/{}", run.id)))
}

/// Query of `GET /api/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    state: Option<String>,
    model: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    after: Option<String>,
    batch: Option<String>,
    /// `GET /api/runs/export` only: `ndjson` or `csv`.
    format: Option<String>,
    /// Words the prompt or the response must hold, all of them.
    q: Option<String>,
}

/// Longest search accepted, in characters.
const MAX_SEARCH_CHARS: usize = 500;
/// Most words one search may hold.
const MAX_SEARCH_WORDS: usize = 32;

/// The words of `q`, or why it cannot be searched for.
fn search(q: &str) -> Result<Vec<String>, ApiError> {
    if q.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::BadRequest(format!("q is longer than {MAX_SEARCH_CHARS} characters")));
    }
    let words = common::search_words(q);
    if words.is_empty() {
        return Err(ApiError::BadRequest("q has no words to search for (letters or digits)".to_owned()));
    }
    if words.len() > MAX_SEARCH_WORDS {
        return Err(ApiError::BadRequest(format!("q has more than {MAX_SEARCH_WORDS} words")));
    }
    Ok(words)
}

async fn list(
    State(app): State<Arc<App>>,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    Ok(Json(app.runs().list(&run_query(params)?).await?))
}

/// The usage and cost of all the runs a history filter selects: the same parameters as
/// `GET /api/runs`, whose `limit` and cursors it ignores.
async fn totals(State(app): State<Arc<App>>, Query(params): Query<ListParams>) -> Result<Json<RunTotals>, ApiError> {
    Ok(Json(app.runs().totals(&run_query(params)?).await?))
}

/// Runs read from the store per step of a history export: the memory an export holds.
const EXPORT_PAGE: u32 = 200;

/// The history the filters select, as JSON Lines (`format=ndjson`, the default) or CSV,
/// streamed a page at a time so any number of runs exports in the same memory.
async fn export_history(
    State(app): State<Arc<App>>,
    Query(mut params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let csv = match params.format.take().as_deref().unwrap_or("ndjson") {
        "ndjson" | "jsonl" => false,
        "csv" => true,
        other => return Err(ApiError::BadRequest(format!("format `{}` is not one of ndjson, csv", truncate(other)))),
    };
    let query = RunQuery { limit: EXPORT_PAGE, before: None, after: None, ..run_query(params)? };
    let line = if csv { run_export::csv_line } else { run_export::json_line };
    // The first page is read before answering, so a store that is down answers 503, not a
    // 200 with a cut body.
    let (first, next) = app.runs().details_page(&query).await?;
    let mut head = if csv { run_export::CSV_HEADER.to_owned() } else { String::new() };
    head.extend(first.iter().map(line));
    let rest = next.map(|before| RunQuery { before: Some(before), ..query });
    let pages = futures_util::stream::unfold(rest, move |query| {
        let app = Arc::clone(&app);
        async move {
            let mut query = query?;
            match app.runs().details_page(&query).await {
                Ok((runs, next)) => {
                    let text: String = runs.iter().map(line).collect();
                    query.before = next;
                    Some((Ok(text), next.map(|_| query)))
                }
                Err(error) => {
                    // The status line is gone by now: ending the body early tells the client.
                    tracing::warn!(error = %crate::causes::chain(&error), "history export failed");
                    Some((Err(std::io::Error::other("the run store failed")), None))
                }
            }
        }
    });
    let first = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) });
    let body = Body::from_stream(futures_util::StreamExt::chain(first, pages));
    let (content_type, extension) =
        if csv { ("text/csv; charset=utf-8", "csv") } else { ("application/x-ndjson", "ndjson") };
    Ok(attachment(body, content_type, &format!("runs.{extension}")))
}

/// One run as a file: `format=json` (the default; the detail itself) or `format=md`.
async fn export_run(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let id = parse_run_id(&id)?;
    let markdown = match params.format.as_deref().unwrap_or("json") {
        "json" => false,
        "md" | "markdown" => true,
        other => return Err(ApiError::BadRequest(format!("format `{}` is not one of json, md", truncate(other)))),
    };
    let run = app.runs().detail(id).await?.ok_or_else(|| not_found(id))?;
    Ok(if markdown {
        attachment(Body::from(run_export::markdown(&run)), "text/markdown; charset=utf-8", &format!("run-{id}.md"))
    } else {
        let mut json = serde_json::to_string_pretty(&run).unwrap_or_default();
        json.push('\n');
        attachment(Body::from(json), "application/json", &format!("run-{id}.json"))
    })
}

fn run_query(params: ListParams) -> Result<RunQuery, ApiError> {
    if params.format.is_some() {
        return Err(ApiError::BadRequest("format is a parameter of /api/runs/export only".to_owned()));
    }
    let limit = page_limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let state = params
        .state
        .map(|s| {
            s.parse::<RunState>().map_err(|_| {
                let names: Vec<_> = RunState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(format!("state `{}` is not one of {}", truncate(&s), names.join(", ")))
            })
        })
        .transpose()?;
    let model = params.model.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty());
    let since = params.since.as_deref().map(|text| instant("since", text, Day::Start)).transpose()?;
    let until = params.until.as_deref().map(|text| instant("until", text, Day::End)).transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(ApiError::BadRequest("since must be earlier than until".to_owned()));
    }
    let before = params.before.as_deref().map(parse_run_id).transpose()?;
    let after = params.after.as_deref().map(parse_run_id).transpose()?;
    if before.is_some() && after.is_some() {
        return Err(ApiError::BadRequest("give before or after, not both".to_owned()));
    }
    let batch = params.batch.as_deref().map(|text| parse_id(text, "batch")).transpose()?;
    let search = params.q.as_deref().map(search).transpose()?;
    Ok(RunQuery { limit, state, model, since, until, batch, before, after, search })
}

/// Which end of a day a bare date in a time filter stands for.
#[derive(Clone, Copy)]
enum Day {
    Start,
    /// The next day's start, so `until=2026-12-01` includes all of that day.
    End,
}

/// An RFC 3339 instant, or a bare `YYYY-MM-DD` date (UTC).
fn instant(name: &str, text: &str, day: Day) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|date| match day {
        Day::Start => Some(date),
        Day::End => date.succ_opt(),
    });
    date.and_then(|date| date.and_hms_opt(0, 0, 0)).map(|midnight| midnight.and_utc()).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name} `{}` is not a date (YYYY-MM-DD) or an RFC 3339 time (2026-12-01T09:30:00Z)",
            truncate(text)
        ))
    })
}

async fn detail(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<RunDetail>, ApiError> {
    let id = parse_run_id(&id)?;
    app.runs().detail(id).await?.map(Json).ok_or_else(|| not_found(id))
}

async fn logs(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Vec<LogEntry>>, ApiError> {
    let id = parse_run_id(&id)?;
    app.runs().logs(id).await?.map(Json).ok_or_else(|| not_found(id))
}

/// A new run of the same prompt, linked to the original, with any settings changed.
async fn replay(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(Object(changes)): Json<Object<ReplayRun>>,
) -> Result<Response, ApiError> {
    let id = parse_run_id(&id)?;
    let run = app.submissions().replay(id, changes).await?.ok_or_else(|| not_found(id))?;
    Ok(accepted(&run, &format!("/api/runs/{}", run.id)))
}

async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_run_id(&id)?;
    match app.runs().cancel(id).await? {
        Cancel::Cancelling(summary) => Ok((StatusCode::ACCEPTED, Json(summary)).into_response()),
        Cancel::AlreadyEnded(state) => Err(ApiError::Conflict(format!("run {id} is already {state}"))),
        Cancel::Finishing => Err(ApiError::Conflict(format!("run {id} is finishing and can no longer be cancelled"))),
        Cancel::NotFound => Err(not_found(id)),
    }
}

fn not_found(id: RunId) -> ApiError {
    ApiError::NotFound(format!("no run with id {id}"))
}
