//! How runs and events are written into and read out of a database row, whatever the database.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use common::{Event, EventKind, RunId, RunSummary, Usage};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::StoreError;

/// The columns of a run's history row, as both stores read them.
pub(super) const SUMMARY_COLUMNS: &str =
    "id, state, created_at, started_at, finished_at, model_id, prompt_preview, input_tokens, output_tokens, error";

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
        })
    }
}
