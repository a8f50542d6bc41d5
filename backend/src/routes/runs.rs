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

use super::documented::{BodyRefused, Conflict, NotFound, Refused, TooManyRequests, Unavailable};
use super::extract::{Json, Object, Path, Query};
use super::params::{ExportParams, FileFormat, accepted, attachment, page_limit, parse_id, truncate};
use crate::app::App;
use crate::error::ApiError;
use crate::run_export;
use crate::runs::Cancel;
use crate::store::RunQuery;
use crate::submission::without_nul;

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

/// Submit a prompt: the run is stored, its prompt journalled, and its flow started.
#[utoipa::path(
    post,
    path = "/api/runs",
    tag = "runs",
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "Repeating a submission with the same key returns the first run instead of a new one: \
                       1 to 255 visible ASCII characters (HTTP drops the spaces around a header's value).",
        pattern = r"^[\t ]*[!-~]([\t -~]{0,253}[!-~])?[\t ]*$"
    )),
    request_body = SubmitRun,
    responses(
        (
            status = 202,
            description = "Stored and started: the run as it stands.",
            body = RunDetail,
            headers(("Location" = String, description = "The new run's URL."))
        ),
        Refused,
        BodyRefused,
        TooManyRequests,
        Unavailable,
    )
)]
pub(super) async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(Object(body)): Json<Object<SubmitRun>>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let run = app.submissions().submit(body, key).await?;
    Ok(accepted(&run, &format!("/api/runs/{}", run.id)))
}

/// Query of `GET /api/runs`: the history's filters, newest runs first.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Runs per page (1 to 1000; 50 when absent). Ignored by the totals and the export.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    #[param(value_type = Option<RunState>)]
    state: Option<String>,
    /// The model id the runs used, exactly.
    #[param(pattern = r"^[^\x00]*$")]
    model: Option<String>,
    /// Runs accepted at or after this instant; a bare date (`2026-12-01`) means its start, UTC.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Runs accepted before this instant; a bare date means the end of that day, UTC.
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Page cursor: runs older than this run.
    #[param(value_type = Option<RunId>)]
    before: Option<String>,
    /// Page cursor: runs newer than this run (the ones just newer, still listed newest first).
    /// With `before` too: the runs between the two.
    #[param(value_type = Option<RunId>)]
    after: Option<String>,
    /// Only the items of this batch.
    #[param(value_type = Option<common::BatchId>)]
    batch: Option<String>,
    /// `GET /api/runs/export` only: `ndjson` or `csv`.
    #[param(ignore)]
    format: Option<String>,
    /// Words the prompt or the response must hold, all of them: the runs of letters and digits
    /// in it, whatever separates them.
    #[param(max_length = 500)]
    q: Option<String>,
}

/// Longest search accepted, in characters: at most 250 words, which both stores' full-text
/// indexes answer in milliseconds.
const MAX_SEARCH_CHARS: usize = 500;

/// The words of `q`, or why it cannot be searched for. A `q` without a word (`***`) asks for
/// no word, which every run holds: it filters nothing.
fn search(q: &str) -> Result<Option<Vec<String>>, ApiError> {
    if q.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::BadRequest(format!("q is longer than {MAX_SEARCH_CHARS} characters")));
    }
    let words = common::search_words(q);
    Ok((!words.is_empty()).then_some(words))
}

/// The history, filtered and paged.
#[utoipa::path(
    get,
    path = "/api/runs",
    tag = "runs",
    params(ListParams),
    responses((status = 200, description = "The runs, newest first.", body = Vec<RunSummary>), Refused, Unavailable)
)]
pub(super) async fn list(
    State(app): State<Arc<App>>,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    Ok(Json(app.runs().list(&run_query(params)?).await?))
}

/// The usage and cost of all the runs a history filter selects: the same parameters as
/// `GET /api/runs`, whose `limit` and cursors it ignores.
#[utoipa::path(
    get,
    path = "/api/runs/totals",
    tag = "runs",
    params(ListParams),
    responses((status = 200, description = "Usage and estimated cost of every run the filters select.", body = RunTotals), Refused, Unavailable)
)]
pub(super) async fn totals(
    State(app): State<Arc<App>>,
    Query(params): Query<ListParams>,
) -> Result<Json<RunTotals>, ApiError> {
    Ok(Json(app.runs().totals(&run_query(params)?).await?))
}

/// Runs read from the store per step of a history export: the memory an export holds.
const EXPORT_PAGE: u32 = 200;

/// The history the filters select, as JSON Lines (`format=ndjson`, the default) or CSV,
/// streamed a page at a time so any number of runs exports in the same memory.
#[utoipa::path(
    get,
    path = "/api/runs/export",
    tag = "runs",
    params(
        ListParams,
        ("format" = Option<HistoryFormat>, Query, description = "`ndjson` (the default) or `csv`."),
    ),
    responses(
        (
            status = 200,
            description = "One run detail per line (NDJSON) or per row (CSV), as a download.",
            content((String = "application/x-ndjson"), (String = "text/csv"))
        ),
        Refused,
        Unavailable,
    )
)]
pub(super) async fn export_history(
    State(app): State<Arc<App>>,
    Query(mut params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let csv = match HistoryFormat::parse(params.format.take().as_deref())? {
        HistoryFormat::Ndjson => false,
        HistoryFormat::Csv => true,
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
#[utoipa::path(
    get,
    path = "/api/runs/{id}/export",
    tag = "runs",
    params(
        ("id" = RunId, Path),
        ("format" = Option<RunFormat>, Query, description = "`json` (the default) or `md`."),
    ),
    responses(
        (
            status = 200,
            description = "The run as a download: its detail as JSON, or a Markdown report.",
            content((RunDetail = "application/json"), (String = "text/markdown"))
        ),
        Refused,
        NotFound,
        Unavailable,
    )
)]
pub(super) async fn export_run(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let id = parse_run_id(&id)?;
    let markdown = match RunFormat::parse(params.format.as_deref())? {
        RunFormat::Json => false,
        RunFormat::Md => true,
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
    if let Some(model) = &model {
        without_nul("model", model).map_err(ApiError::BadRequest)?;
    }
    // A `since` at or after `until`, like cursors that leave no run between them, selects
    // nothing: an empty answer, not an error, as any filter that matches nothing.
    let since = params.since.as_deref().map(|text| instant("since", text, Day::Start)).transpose()?;
    let until = params.until.as_deref().map(|text| instant("until", text, Day::End)).transpose()?;
    let before = params.before.as_deref().map(parse_run_id).transpose()?;
    let after = params.after.as_deref().map(parse_run_id).transpose()?;
    let batch = params.batch.as_deref().map(|text| parse_id(text, "batch")).transpose()?;
    let search = params.q.as_deref().map(search).transpose()?.flatten();
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

/// A run in full: settings, response so far, tasks and their attempts.
#[utoipa::path(
    get,
    path = "/api/runs/{id}",
    tag = "runs",
    params(("id" = RunId, Path)),
    responses((status = 200, description = "The run.", body = RunDetail), Refused, NotFound, Unavailable)
)]
pub(super) async fn detail(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<RunDetail>, ApiError> {
    let id = parse_run_id(&id)?;
    app.runs().detail(id).await?.map(Json).ok_or_else(|| not_found(id))
}

#[utoipa::path(
    get,
    path = "/api/runs/{id}/logs",
    tag = "runs",
    params(("id" = RunId, Path)),
    responses((status = 200, description = "The run's log lines, oldest first.", body = Vec<LogEntry>), Refused, NotFound, Unavailable)
)]
pub(super) async fn logs(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Vec<LogEntry>>, ApiError> {
    let id = parse_run_id(&id)?;
    app.runs().logs(id).await?.map(Json).ok_or_else(|| not_found(id))
}

/// A new run of the same prompt, linked to the original, with any settings changed.
#[utoipa::path(
    post,
    path = "/api/runs/{id}/replay",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run to replay.")),
    request_body = ReplayRun,
    responses(
        (
            status = 202,
            description = "The new run, stored and started.",
            body = RunDetail,
            headers(("Location" = String, description = "The new run's URL."))
        ),
        Refused,
        BodyRefused,
        NotFound,
        TooManyRequests,
        Unavailable,
    )
)]
pub(super) async fn replay(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(Object(changes)): Json<Object<ReplayRun>>,
) -> Result<Response, ApiError> {
    let id = parse_run_id(&id)?;
    let run = app.submissions().replay(id, changes).await?.ok_or_else(|| not_found(id))?;
    Ok(accepted(&run, &format!("/api/runs/{}", run.id)))
}

/// Cancel a pending or running run.
#[utoipa::path(
    post,
    path = "/api/runs/{id}/cancel",
    tag = "runs",
    params(("id" = RunId, Path)),
    responses(
        (status = 202, description = "Cancelling: the run ends as `Cancelled` shortly.", body = RunSummary),
        Refused,
        NotFound,
        Conflict,
        Unavailable,
    )
)]
pub(super) async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
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

/// The file formats of a history export.
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum HistoryFormat {
    Ndjson,
    Csv,
}

impl FileFormat for HistoryFormat {
    const DEFAULT: Self = HistoryFormat::Ndjson;
    const NAMES: &'static [(&'static str, Self)] =
        &[("ndjson", HistoryFormat::Ndjson), ("csv", HistoryFormat::Csv), ("jsonl", HistoryFormat::Ndjson)];
    const DOCUMENTED: &'static str = "ndjson, csv";
}

/// The file formats of one run's export.
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum RunFormat {
    Json,
    Md,
}

impl FileFormat for RunFormat {
    const DEFAULT: Self = RunFormat::Json;
    const NAMES: &'static [(&'static str, Self)] =
        &[("json", RunFormat::Json), ("md", RunFormat::Md), ("markdown", RunFormat::Md)];
    const DOCUMENTED: &'static str = "json, md";
}
