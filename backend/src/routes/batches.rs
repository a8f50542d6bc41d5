//! `/api/batches`: submit, list, inspect, cancel and export batches.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use common::{BatchId, BatchItem, BatchSummary, ModelPace, SubmitBatch};
use serde::{Deserialize, Serialize};

use super::documented::{BodyRefused, NotFound, Refused, Unavailable};
use super::extract::{Json, Object, Path, Query};
use super::params::{ExportParams, FileFormat, accepted, attachment, page_limit, parse_id};
use crate::app::App;
use crate::batch::file::Format;
use crate::batch::{BatchError, ItemNames, PlanError, export};
use crate::error::ApiError;

/// Batches listed when the client does not say how many.
const DEFAULT_BATCHES: u32 = 50;
/// Items per page of `GET /api/batches/{id}/items` when the client does not say.
const DEFAULT_ITEMS: u32 = 100;
/// Most batches or items one request may ask for.
const MAX_ITEMS: u32 = 1_000;
/// Items read from the store per step of an export.
const EXPORT_CHUNK: u32 = 500;

pub fn router(max_batch_bytes: usize) -> Router<Arc<App>> {
    Router::new()
        .route("/api/batches", post(create).layer(DefaultBodyLimit::max(max_batch_bytes)).get(list))
        .route("/api/batches/{id}", get(detail))
        .route("/api/batches/{id}/items", get(items))
        .route("/api/batches/{id}/cancel", post(cancel))
        .route("/api/batches/{id}/retry", post(retry))
        .route("/api/batches/{id}/export", get(export_results))
}

fn parse_batch_id(text: &str) -> Result<BatchId, ApiError> {
    parse_id(text, "batch")
}

fn not_found(id: BatchId) -> ApiError {
    ApiError::NotFound(format!("no batch {id}"))
}

impl From<BatchError> for ApiError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::Plan(PlanError::Invalid(message)) => ApiError::Invalid(message),
            BatchError::Plan(PlanError::TooLarge(message)) => ApiError::TooLarge(message),
            BatchError::File(error) => ApiError::Invalid(error.to_string()),
            BatchError::Store(error) => error.into(),
        }
    }
}

/// The run settings and template of a batch uploaded as a file, in the query string; for a
/// JSON batch, the values of those its body leaves out.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FileSettings {
    model_id: Option<String>,
    system: Option<String>,
    #[param(minimum = 1)]
    max_tokens: Option<u32>,
    #[param(minimum = 0.0, maximum = 1.0)]
    temperature: Option<f32>,
    /// A template with `{{name}}` placeholders, filled from each line of a JSON Lines or CSV file.
    template: Option<String>,
}

impl FileSettings {
    /// `batch` with these settings where it has none.
    fn under(self, batch: SubmitBatch) -> SubmitBatch {
        SubmitBatch {
            model_id: batch.model_id.or(self.model_id),
            system: batch.system.or(self.system),
            max_tokens: batch.max_tokens.or(self.max_tokens),
            temperature: batch.temperature.or(self.temperature),
            template: batch.template.or(self.template),
            ..batch
        }
    }
}

/// A JSON [`SubmitBatch`], or a file (text, JSON Lines or CSV, by its `Content-Type`) with
/// the settings in the query string.
#[utoipa::path(
    post,
    path = "/api/batches",
    tag = "batches",
    params(FileSettings),
    request_body(
        description = "A JSON batch, or a file with one prompt (or one row of template values) per line.",
        content(
            (SubmitBatch = "application/json"),
            (String = "text/plain"),
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )
    ),
    responses(
        (
            status = 202,
            description = "Stored; the scheduler starts its items at the pace the model's quota allows.",
            body = BatchSummary,
            headers(("Location" = String, description = "The new batch's URL."))
        ),
        Refused,
        BodyRefused,
        Unavailable,
    )
)]
pub(super) async fn create(
    State(app): State<Arc<App>>,
    Query(settings): Query<FileSettings>,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
    let policy = app.submissions().policy();
    let batch = match content_type.and_then(Format::from_media_type) {
        Some(format) => {
            let bytes = Bytes::from_request(request, &()).await.map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge("the file is larger than --max-batch-bytes".into()),
                _ => ApiError::BadRequest(rejection.body_text()),
            })?;
            app.batches().submit_file(format, &bytes, settings.under(SubmitBatch::default()), policy).await?
        }
        None => {
            let Json(Object(body)) = Json::<Object<SubmitBatch>>::from_request(request, &()).await?;
            app.batches().submit(settings.under(body), policy, ItemNames::Index).await?
        }
    };
    Ok(accepted(&batch, &format!("/api/batches/{}", batch.id)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Batches to list (1 to 1000; 50 when absent), newest first.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/batches",
    tag = "batches",
    params(ListParams),
    responses((status = 200, description = "The batches, newest first.", body = Vec<BatchSummary>), Refused, Unavailable)
)]
pub(super) async fn list(
    State(app): State<Arc<App>>,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<BatchSummary>>, ApiError> {
    Ok(Json(app.batches().list(page_limit(params.limit, DEFAULT_BATCHES, MAX_ITEMS)?).await?))
}

/// A batch with how its model is paced now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct BatchDetail {
    #[serde(flatten)]
    summary: BatchSummary,
    pace: ModelPace,
}

#[utoipa::path(
    get,
    path = "/api/batches/{id}",
    tag = "batches",
    params(("id" = BatchId, Path)),
    responses((status = 200, description = "The batch, its counts and its model's pace.", body = BatchDetail), Refused, NotFound, Unavailable)
)]
pub(super) async fn detail(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<BatchDetail>, ApiError> {
    let id = parse_batch_id(&id)?;
    let summary = app.batches().get(id).await?.ok_or_else(|| not_found(id))?;
    let pace = app.batches().pace(&summary.model_id);
    Ok(Json(BatchDetail { summary, pace }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ItemParams {
    /// The first item's index (0 when absent).
    #[param(minimum = 0)]
    from: Option<i64>,
    /// Items per page (1 to 1000; 100 when absent).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/batches/{id}/items",
    tag = "batches",
    params(("id" = BatchId, Path), ItemParams),
    responses((status = 200, description = "The items in order, with their runs once started.", body = Vec<BatchItem>), Refused, NotFound, Unavailable)
)]
pub(super) async fn items(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(params): Query<ItemParams>,
) -> Result<Json<Vec<BatchItem>>, ApiError> {
    let id = parse_batch_id(&id)?;
    let limit = page_limit(params.limit, DEFAULT_ITEMS, MAX_ITEMS)?;
    app.batches().get(id).await?.ok_or_else(|| not_found(id))?;
    let from = params.from.unwrap_or(0);
    if from < 0 {
        return Err(ApiError::BadRequest("from must be 0 or more".into()));
    }
    // No batch holds more items than a u32 counts: a `from` beyond that is past the end.
    let from = u32::try_from(from).unwrap_or(u32::MAX);
    Ok(Json(app.batches().items(id, from, limit).await?))
}

/// A batch after "retry the failed items", with how many were queued again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Retried {
    #[serde(flatten)]
    summary: BatchSummary,
    retried: u64,
}

/// Queue the failed, crashed and cancelled items again.
#[utoipa::path(
    post,
    path = "/api/batches/{id}/retry",
    tag = "batches",
    params(("id" = BatchId, Path)),
    responses((status = 202, description = "The items are queued again.", body = Retried), Refused, NotFound, Unavailable)
)]
pub(super) async fn retry(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_batch_id(&id)?;
    let (summary, retried) = app.batches().retry_failed(id).await?.ok_or_else(|| not_found(id))?;
    Ok((StatusCode::ACCEPTED, Json(Retried { summary, retried })).into_response())
}

/// Cancel the items not started and those in flight.
#[utoipa::path(
    post,
    path = "/api/batches/{id}/cancel",
    tag = "batches",
    params(("id" = BatchId, Path)),
    responses((status = 202, description = "Cancelling.", body = BatchSummary), Refused, NotFound, Unavailable)
)]
pub(super) async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_batch_id(&id)?;
    let batch = app.batches().cancel(id).await?.ok_or_else(|| not_found(id))?;
    Ok((StatusCode::ACCEPTED, Json(batch)).into_response())
}

/// The results, streamed a chunk of items at a time so a large batch never sits in memory.
#[utoipa::path(
    get,
    path = "/api/batches/{id}/export",
    tag = "batches",
    params(
        ("id" = BatchId, Path),
        ("format" = Option<ResultsFormat>, Query, description = "`jsonl` (the default) or `csv`."),
    ),
    responses(
        (
            status = 200,
            description = "One line (JSON Lines) or row (CSV) per item: input, variables, response, usage, state, error, timings.",
            content((String = "application/x-ndjson"), (String = "text/csv"))
        ),
        Refused,
        NotFound,
        Unavailable,
    )
)]
pub(super) async fn export_results(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let id = parse_batch_id(&id)?;
    let csv = match ResultsFormat::parse(params.format.as_deref())? {
        ResultsFormat::Jsonl => false,
        ResultsFormat::Csv => true,
    };
    app.batches().get(id).await?.ok_or_else(|| not_found(id))?;
    let header = csv.then(|| Ok::<_, std::io::Error>(export::CSV_HEADER.to_owned()));
    let chunks = futures_util::stream::unfold(Some(0u32), move |from| {
        let app = Arc::clone(&app);
        async move {
            let from = from?;
            match app.batches().results(id, from, EXPORT_CHUNK).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|row| row.item.index + 1);
                    let line = if csv { export::csv_line } else { export::json_line };
                    Some((Ok(rows.iter().map(line).collect::<String>()), next))
                }
                Err(error) => {
                    // The status line is gone by now: ending the body early tells the client.
                    tracing::warn!(batch = %id, error = %crate::causes::chain(&error), "batch export failed");
                    Some((Err(std::io::Error::other("the batch store failed")), None))
                }
            }
        }
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(futures_util::stream::iter(header), chunks));
    let (content_type, extension) =
        if csv { ("text/csv; charset=utf-8", "csv") } else { ("application/x-ndjson", "jsonl") };
    Ok(attachment(body, content_type, &format!("batch-{id}.{extension}")))
}

/// The file formats of a batch's results.
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum ResultsFormat {
    Jsonl,
    Csv,
}

impl FileFormat for ResultsFormat {
    const DEFAULT: Self = ResultsFormat::Jsonl;
    const NAMES: &'static [(&'static str, Self)] =
        &[("jsonl", ResultsFormat::Jsonl), ("csv", ResultsFormat::Csv), ("ndjson", ResultsFormat::Jsonl)];
    const DOCUMENTED: &'static str = "jsonl, csv";
}
