//! How runs and events are written into and read out of a database row, whatever the database.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use common::{BatchId, Event, EventKind, RunId, RunSummary, TaskName, Usage};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{RunQuery, StoreError};

/// The columns of a run's history row, as both stores read them.
pub(super) const SUMMARY_COLUMNS: &str = "id, state, created_at, started_at, finished_at, model_id, prompt_preview, input_tokens, output_tokens, error, \
     load_attempts, call_attempts, batch_id";

/// A history page's statement over `runs`: the query's filters and cursor, newest first (or,
/// for an `after` cursor, oldest first: the caller reverses it). The filters' values are all
/// text and come back in placeholder order; `param(n)` spells the n-th placeholder in the
/// database's dialect.
pub(super) struct HistoryPage {
    pub sql: String,
    pub binds: Vec<String>,
    pub ascending: bool,
}

pub(super) fn history_page(query: &RunQuery, param: impl Fn(usize) -> String) -> HistoryPage {
    // Only the filters in use are written: `(?1 IS NULL OR state = ?1)` would hide the
    // `runs_by_state` index from SQLite's planner and scan the whole history.
    let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM runs WHERE true");
    let mut binds = Vec::new();
    let mut filter = |condition: &str, value: String| {
        binds.push(value);
        sql.push_str(&condition.replace('#', &param(binds.len())));
    };
    if let Some(state) = query.state {
        filter(" AND state = #", state.as_str().to_owned());
    }
    if let Some(model) = &query.model {
        filter(" AND model_id = #", model.clone());
    }
    // Stored timestamps all have the same width (nanoseconds, `Z`), so text order is time order.
    if let Some(since) = query.since {
        filter(" AND created_at >= #", timestamp(since));
    }
    if let Some(until) = query.until {
        filter(" AND created_at < #", timestamp(until));
    }
    if let Some(batch) = query.batch {
        filter(" AND batch_id = #", batch.to_string());
    }
    if let Some(before) = query.before {
        filter(" AND seq < (SELECT seq FROM runs WHERE id = #)", before.to_string());
    }
    if let Some(after) = query.after {
        filter(" AND seq > (SELECT seq FROM runs WHERE id = #)", after.to_string());
    }
    let ascending = query.after.is_some() && query.before.is_none();
    sql.push_str(if ascending { " ORDER BY seq ASC" } else { " ORDER BY seq DESC" });
    sql.push_str(&format!(" LIMIT {}", query.limit));
    HistoryPage { sql, binds, ascending }
}

pub(super) fn event_kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::RunCreated { .. } => "run_created",
        EventKind::RunState { .. } => "run_state",
        EventKind::TaskState { .. } => "task_state",
        EventKind::Log { .. } => "log",
        EventKind::Delta { .. } => "delta",
        EventKind::ModelResult { .. } => "model_result",
    }
}

/// The `runs` column holding a task's latest attempt number. Only retries (attempt 2 on) write
/// it: a first attempt leaves it 0 (or 1 in rows the migration backfilled), which counts as no
/// retry alike, and most runs never cost the writer this update.
pub(super) fn attempts_column(task: TaskName) -> &'static str {
    match task {
        TaskName::LoadPromptFile => "load_attempts",
        TaskName::CallBedrock => "call_attempts",
    }
}

pub(super) fn timestamp(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Malformed(format!("timestamp `{text}`: {e}")))
}

pub(super) fn parse_id(text: &str) -> Result<RunId, StoreError> {
    RunId::from_str(text).map_err(|e| StoreError::Malformed(format!("run id `{text}`: {e}")))
}

pub(super) fn parse_batch_id(text: &str) -> Result<BatchId, StoreError> {
    BatchId::from_str(text).map_err(|e| StoreError::Malformed(format!("batch id `{text}`: {e}")))
}

pub(super) fn parse_event(body: &str) -> Result<Event, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Malformed(format!("event: {e}")))
}

/// A run's history row ([`SUMMARY_COLUMNS`]), from either database's row type.
pub(super) fn summary_from_row<'r, R>(row: &'r R) -> Result<RunSummary, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    Option<&'r str>: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    SummaryRow {
        id: row.try_get("id")?,
        state: row.try_get("state")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        model_id: row.try_get("model_id")?,
        prompt_preview: row.try_get("prompt_preview")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        error: row.try_get("error")?,
        load_attempts: row.try_get("load_attempts")?,
        call_attempts: row.try_get("call_attempts")?,
        batch_id: row.try_get("batch_id")?,
    }
    .decode()
}

/// A history row's columns, as read.
struct SummaryRow<'a> {
    pub id: &'a str,
    pub state: &'a str,
    pub created_at: &'a str,
    pub started_at: Option<&'a str>,
    pub finished_at: Option<&'a str>,
    pub model_id: String,
    pub prompt_preview: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub error: Option<String>,
    /// The latest attempt of each task once it retried ([`attempts_column`]).
    pub load_attempts: i64,
    pub call_attempts: i64,
    pub batch_id: Option<&'a str>,
}

impl SummaryRow<'_> {
    fn decode(self) -> Result<RunSummary, StoreError> {
        let tokens = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
        let usage = match (tokens(self.input_tokens), tokens(self.output_tokens)) {
            (Some(input_tokens), Some(output_tokens)) => Some(Usage { input_tokens, output_tokens }),
            _ => None,
        };
        Ok(RunSummary {
            id: parse_id(self.id)?,
            state: self.state.parse().map_err(|e| StoreError::Malformed(format!("{e}")))?,
            created_at: parse_time(self.created_at)?,
            started_at: self.started_at.map(parse_time).transpose()?,
            finished_at: self.finished_at.map(parse_time).transpose()?,
            model_id: self.model_id,
            prompt_preview: self.prompt_preview,
            usage,
            error: self.error,
            retries: [self.load_attempts, self.call_attempts]
                .into_iter()
                .map(|attempts| u32::try_from(attempts - 1).unwrap_or(0))
                .sum(),
            batch_id: self.batch_id.map(parse_batch_id).transpose()?,
        })
    }
}
