//! How runs and events are written into and read out of a database row, whatever the database.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use common::{BatchCounts, BatchId, BatchItem, BatchSummary, Event, EventKind, RunId, RunSummary, TaskName, Usage};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{BatchItemRef, ModelUsage, QueuedItem, RunQuery, StoreError};

/// The columns of a run's history row, as both stores read them.
pub(super) const SUMMARY_COLUMNS: &str = "id, state, created_at, started_at, finished_at, model_id, prompt_preview, input_tokens, output_tokens, error, \
     load_attempts, call_attempts, batch_id";

/// The columns of a batch's row, as [`batch_from_row`] reads them.
pub(super) const BATCH_COLUMNS: &str =
    "seq, id, created_at, model_id, system, max_tokens, temperature, total, cancelled";

/// An item's state in a query over `batch_items i LEFT JOIN runs r`: a started item's is its
/// run's.
macro_rules! item_state {
    () => {
        "CASE WHEN i.state = 'Started' THEN COALESCE(r.state, 'Pending') ELSE i.state END"
    };
}

/// A batch's items counted by state (`s`, `n`); the caller adds the batch and `GROUP BY s`.
pub(super) const ITEM_COUNTS: &str =
    concat!("SELECT ", item_state!(), " AS s, count(*) AS n FROM batch_items i LEFT JOIN runs r ON r.id = i.run_id");

/// A batch's items, as [`item_from_row`] reads them; the caller adds the batch and the page.
pub(super) const ITEMS: &str = concat!(
    "SELECT i.idx, i.prompt, i.variables, i.run_id, ",
    item_state!(),
    " AS s FROM batch_items i JOIN batches b ON b.seq = i.batch_seq LEFT JOIN runs r ON r.id = i.run_id"
);

/// The scheduler's queue, as [`queued_item_from_row`] reads it: oldest batch, first item first.
pub(super) const QUEUED_ITEMS: &str = concat!(
    "SELECT b.id, i.idx, i.round, i.prompt, b.model_id, b.system, b.max_tokens, b.temperature",
    " FROM batch_items i JOIN batches b ON b.seq = i.batch_seq",
    " WHERE i.state = 'Queued' AND b.cancelled = 0 ORDER BY i.batch_seq, i.idx"
);

/// A history page's statement over `runs`: the query's filters and cursor, newest first (or,
/// for an `after` cursor, oldest first: the caller reverses it). The filters' values are all
/// text and come back in placeholder order; `param(n)` spells the n-th placeholder in the
/// database's dialect.
pub(super) struct HistoryPage {
    pub sql: String,
    pub binds: Vec<String>,
    pub ascending: bool,
    /// Whether each row also has a `snippet` column: the search's passage, marked.
    pub snippets: bool,
}

/// What the SQL of the two stores differs in, for the statements written here.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The n-th (1-based) placeholder.
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// The condition keeping the runs whose prompt or response holds every word searched for,
    /// with `#` for the placeholder, and the value bound to it.
    fn search(self, words: &[String]) -> (&'static str, String) {
        match self {
            Dialect::Sqlite => {
                (" AND seq IN (SELECT rowid FROM run_search WHERE run_search MATCH #)", fts_query(words))
            }
            Dialect::Postgres => (
                " AND id IN (SELECT run_id FROM run_search WHERE doc @@ plainto_tsquery('simple', #))",
                words.join(" "),
            ),
        }
    }
}

/// An FTS5 query holding every word: each quoted, an FTS5 string, so nothing in it is query
/// syntax (words hold only letters and digits anyway).
pub(super) fn fts_query(words: &[String]) -> String {
    words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" ")
}

pub(super) fn history_page(query: &RunQuery, dialect: Dialect) -> HistoryPage {
    let ascending = query.after.is_some() && query.before.is_none();
    let searching = query.search.as_ref().is_some_and(|words| !words.is_empty());
    if searching && matches!(dialect, Dialect::Sqlite) {
        // FTS5 walks its matches in rowid (= seq) order and the page stops after `limit`, with
        // each row's passage in the same statement: a word in every other run costs no more
        // than a rare one. Found first and filtered after, as the other stores do, the
        // common word cost milliseconds twice over (the matches, then their snippets).
        let select = format!(
            "SELECT {SUMMARY_COLUMNS}, snippet(run_search, -1, char(2), char(3), '…', 16) AS snippet \
             FROM run_search JOIN runs ON runs.seq = run_search.rowid"
        );
        let (mut sql, binds) = filtered(&select, query, Search::Joined);
        sql.push_str(if ascending { " ORDER BY run_search.rowid ASC" } else { " ORDER BY run_search.rowid DESC" });
        sql.push_str(&format!(" LIMIT {}", query.limit));
        return HistoryPage { sql, binds, ascending, snippets: true };
    }
    let (mut sql, binds) = filtered(&format!("SELECT {SUMMARY_COLUMNS} FROM runs"), query, Search::In(dialect));
    sql.push_str(if ascending { " ORDER BY seq ASC" } else { " ORDER BY seq DESC" });
    sql.push_str(&format!(" LIMIT {}", query.limit));
    HistoryPage { sql, binds, ascending, snippets: false }
}

/// How a statement keeps the runs that hold the searched words.
#[derive(Clone, Copy)]
enum Search {
    /// A condition on `runs` alone: `IN` the dialect's full-text matches.
    In(Dialect),
    /// SQLite's `run_search` is joined in the `FROM` clause: `MATCH` on it.
    Joined,
}

impl Search {
    fn dialect(self) -> Dialect {
        match self {
            Search::In(dialect) => dialect,
            Search::Joined => Dialect::Sqlite,
        }
    }
}

/// The token totals of the runs a query's filters select (its limit and cursors aside), by
/// model: columns `model_id`, `runs`, `with_usage`, `input_tokens`, `output_tokens`.
pub(super) fn usage_by_model(query: &RunQuery, dialect: Dialect) -> (String, Vec<String>) {
    let unpaged = RunQuery { before: None, after: None, ..query.clone() };
    let select = "SELECT model_id, COUNT(*) AS runs, COUNT(input_tokens) AS with_usage, \
                  CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
                  CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens FROM runs";
    let (mut sql, binds) = filtered(select, &unpaged, Search::In(dialect));
    sql.push_str(" GROUP BY model_id");
    (sql, binds)
}

/// `select` over `runs` with the query's filters and cursors as a `WHERE` clause, and their
/// values in placeholder order.
fn filtered(select: &str, query: &RunQuery, search: Search) -> (String, Vec<String>) {
    let dialect = search.dialect();
    // Only the filters in use are written: `(?1 IS NULL OR state = ?1)` would hide the
    // `runs_by_state` index from SQLite's planner and scan the whole history.
    let mut sql = format!("{select} WHERE true");
    let mut binds = Vec::new();
    let mut filter = |condition: &str, value: String| {
        binds.push(value);
        sql.push_str(&condition.replace('#', &dialect.param(binds.len())));
    };
    if let Some(words) = query.search.as_deref().filter(|words| !words.is_empty()) {
        match search {
            Search::In(dialect) => {
                let (condition, value) = dialect.search(words);
                filter(condition, value);
            }
            Search::Joined => filter(" AND run_search MATCH #", fts_query(words)),
        }
    }
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
    (sql, binds)
}

/// Decodes a row of [`usage_by_model`].
pub(super) fn model_usage_from_row<'r, R>(row: &'r R) -> Result<ModelUsage, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let count = |column: &'static str| -> Result<u64, StoreError> {
        Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
    };
    Ok(ModelUsage {
        model_id: row.try_get("model_id")?,
        runs: count("runs")?,
        with_usage: count("with_usage")?,
        input_tokens: count("input_tokens")?,
        output_tokens: count("output_tokens")?,
    })
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
            cost_usd: None,
            snippet: None,
        })
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn small(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn item_state(text: &str) -> Result<common::ItemState, StoreError> {
    text.parse().map_err(|e| StoreError::Malformed(format!("batch item: {e}")))
}

/// A batch from its row ([`BATCH_COLUMNS`]) and its counts ([`ITEM_COUNTS`]).
pub(super) fn batch_from_row<'r, R>(row: &'r R, counted: &'r [R]) -> Result<BatchSummary, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut counts = BatchCounts::default();
    for row in counted {
        counts.add(item_state(row.try_get("s")?)?, count(row.try_get("n")?));
    }
    Ok(BatchSummary {
        id: parse_batch_id(row.try_get("id")?)?,
        created_at: parse_time(row.try_get("created_at")?)?,
        model_id: row.try_get("model_id")?,
        system: row.try_get("system")?,
        max_tokens: small(row.try_get("max_tokens")?),
        temperature: row.try_get::<Option<f64>, _>("temperature")?.map(|t| t as f32),
        total: count(row.try_get("total")?),
        counts,
        cancelled: row.try_get::<i64, _>("cancelled")? != 0,
    })
}

/// An item from its row ([`ITEMS`]).
pub(super) fn item_from_row<'r, R>(row: &'r R) -> Result<BatchItem, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    Option<&'r str>: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let variables: Option<&str> = row.try_get("variables")?;
    Ok(BatchItem {
        index: small(row.try_get("idx")?),
        prompt: row.try_get("prompt")?,
        variables: variables
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Malformed(format!("batch item variables: {e}")))?,
        state: item_state(row.try_get("s")?)?,
        run_id: row.try_get::<Option<&str>, _>("run_id")?.map(parse_id).transpose()?,
    })
}

/// A queued item from its row ([`QUEUED_ITEMS`]).
pub(super) fn queued_item_from_row<'r, R>(row: &'r R) -> Result<QueuedItem, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(QueuedItem {
        item: BatchItemRef {
            batch: parse_batch_id(row.try_get("id")?)?,
            index: small(row.try_get("idx")?),
            round: small(row.try_get("round")?),
        },
        prompt: row.try_get("prompt")?,
        model_id: row.try_get("model_id")?,
        system: row.try_get("system")?,
        max_tokens: small(row.try_get("max_tokens")?),
        temperature: row.try_get::<Option<f64>, _>("temperature")?.map(|t| t as f32),
    })
}
