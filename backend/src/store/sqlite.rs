//! The SQLite store: WAL mode, one writer connection that group-commits, a small reader pool.
//!
//! Durability: `synchronous=FULL` by default for every commit that stores a new run or a run's
//! terminal event, so a run is durable before `POST /api/runs` answers and its outcome as soon
//! as it ends. Batches of other events commit without a sync of their own (see `write_loop`);
//! they reach the disk with the next synced commit or checkpoint, and a process crash loses
//! none of them. Every write goes through one
//! writer task that folds whatever is queued (run creations, events from all runs) into one
//! transaction, so a burst of N writes costs one sync instead of N. `--sqlite-synchronous normal` trades the
//! last moments before a power loss (not a process crash: WAL survives that) for fewer syncs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{BatchId, BatchItem, BatchSummary, Event, EventKind, LogEntry, RunId, RunState, RunSummary};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::wire::{Published, Stamped};

use super::codec::{
    self, BATCH_COLUMNS, Dialect, ITEM_COUNTS, ITEMS, QUEUED_ITEMS, SUMMARY_COLUMNS, attempts_column, batch_from_row,
    event_kind_name, history_page, item_from_row, parse_event, parse_id, queued_item_from_row, summary_from_row,
    timestamp,
};
use super::{
    BatchItemRef, Created, InterruptedRun, ModelUsage, NewBatch, NewRun, QueuedItem, RunQuery, Store, StoreError,
    Stored,
};

/// Most queued writes folded into one transaction.
const MAX_BATCH: usize = 4096;
/// How long a reader waits for a lock before reporting the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections; SQLite readers in WAL mode never block the writer.
const READERS: u32 = 4;

/// How hard SQLite syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Synchronous {
    /// Every commit is synced: nothing acknowledged is lost, even on power loss.
    #[default]
    Full,
    /// WAL syncs at checkpoints only: survives process crashes, may lose the last commits on power loss.
    Normal,
}

enum WriteOp {
    Create(Box<NewRun>, oneshot::Sender<Result<Created, StoreError>>),
    /// A change to batches, answered with the rows it changed.
    Batch(BatchWrite, oneshot::Sender<Result<u64, StoreError>>),
    /// Events, whether their commit must be synced, and who waits for the commit.
    Events(Vec<Published>, bool, oneshot::Sender<Result<(), StoreError>>),
}

/// Runs and events in a SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    readers: SqlitePool,
    writes: mpsc::UnboundedSender<WriteOp>,
    /// The open file that holds the data directory's exclusive lock, until [`Store::release`].
    lock: Arc<std::sync::Mutex<Option<std::fs::File>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens `runs.db` in `data_dir` (creating both if needed), migrates it and starts the writer.
    pub async fn open(data_dir: &Path, synchronous: Synchronous) -> Result<SqliteStore, StoreError> {
        let dir_error = |source| StoreError::DataDir { path: data_dir.display().to_string(), source };
        std::fs::create_dir_all(data_dir).map_err(dir_error)?;
        // Before SQLite opens anything: a second process must fail here, having changed nothing.
        let lock_path = data_dir.join("runs.lock");
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(dir_error)?;
        crate::lockfile::lock_exclusive(&lock, &lock_path, "data directory")?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("runs.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(BUSY_TIMEOUT);
        let mut writer = SqliteConnection::connect_with(&options).await?;
        sqlx::migrate!("./migrations").run(&mut writer).await?;
        let readers = SqlitePoolOptions::new().max_connections(READERS).connect_with(options.read_only(true)).await?;
        let (writes, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(writer, rx, synchronous));
        Ok(SqliteStore { readers, writes, lock: Arc::new(std::sync::Mutex::new(Some(lock))) })
    }

    fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        self.writes.send(op).map_err(|_| StoreError::Closed)
    }

    async fn batch_exists(&self, batch: BatchId) -> Result<bool, StoreError> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM batches WHERE id = ?1")
            .bind(batch.to_string())
            .fetch_optional(&self.readers)
            .await?;
        Ok(exists.is_some())
    }

    /// A batch's summary from its row ([`BATCH_COLUMNS`]), with its items counted by state.
    async fn batch_summary(&self, row: &SqliteRow) -> Result<BatchSummary, StoreError> {
        let counted = sqlx::query(&format!("{ITEM_COUNTS} WHERE i.batch_seq = ?1 GROUP BY s"))
            .bind(row.try_get::<i64, _>("seq")?)
            .fetch_all(&self.readers)
            .await?;
        batch_from_row(row, &counted)
    }

    async fn batch_write(&self, write: BatchWrite) -> Result<u64, StoreError> {
        let (reply, done) = oneshot::channel();
        self.send(WriteOp::Batch(write, reply))?;
        done.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: NewRun) -> Result<Created, StoreError> {
        let (reply, done) = oneshot::channel();
        self.send(WriteOp::Create(Box::new(run), reply))?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    async fn append_events(&self, events: &[Published], sync: bool) -> Result<Stored, StoreError> {
        let (reply, done) = oneshot::channel();
        self.send(WriteOp::Events(events.to_vec(), sync, reply))?;
        done.await.map_err(|_| StoreError::Closed)??;
        Ok(Stored::default())
    }

    async fn release(&self) {
        self.readers.close().await;
        self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    }

    async fn run_for_idempotency_key(&self, key: &str) -> Result<Option<RunId>, StoreError> {
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM runs WHERE idempotency_key = ?1")
            .bind(key)
            .fetch_optional(&self.readers)
            .await?;
        id.as_deref().map(parse_id).transpose()
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunSummary>, StoreError> {
        let page = history_page(query, Dialect::Sqlite);
        let mut statement = sqlx::query(&page.sql);
        for value in &page.binds {
            statement = statement.bind(value);
        }
        let rows = statement.fetch_all(&self.readers).await?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut run = summary_from_row(row)?;
            if page.snippets {
                run.snippet = row.try_get("snippet")?;
            }
            runs.push(run);
        }
        if page.ascending {
            runs.reverse();
        }
        Ok(runs)
    }

    async fn usage_by_model(&self, query: &RunQuery) -> Result<Vec<ModelUsage>, StoreError> {
        let (sql, binds) = codec::usage_by_model(query, Dialect::Sqlite);
        let mut statement = sqlx::query(&sql);
        for value in &binds {
            statement = statement.bind(value);
        }
        let rows = statement.fetch_all(&self.readers).await?;
        rows.iter().map(codec::model_usage_from_row).collect()
    }

    async fn run_summary(&self, id: RunId) -> Result<Option<RunSummary>, StoreError> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM runs WHERE id = ?1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.readers).await?;
        row.as_ref().map(summary_from_row).transpose()
    }

    async fn replays(&self, id: RunId) -> Result<Vec<RunId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM runs WHERE replay_of = ?1 ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.readers)
            .await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    async fn run_events(&self, id: RunId, after_seq: u64) -> Result<Vec<Event>, StoreError> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let rows = sqlx::query("SELECT body FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq")
            .bind(id.to_string())
            .bind(after)
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(|row| parse_event(row.try_get("body")?)).collect()
    }

    async fn run_logs(&self, id: RunId) -> Result<Vec<LogEntry>, StoreError> {
        let rows = sqlx::query("SELECT body FROM events WHERE run_id = ?1 AND kind = 'log' ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.readers)
            .await?;
        let mut logs = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = parse_event(row.try_get("body")?)?;
            if let Ok(entry) = LogEntry::try_from(&event) {
                logs.push(entry);
            }
        }
        Ok(logs)
    }

    async fn interrupted_runs(&self) -> Result<Vec<InterruptedRun>, StoreError> {
        let rows = sqlx::query("SELECT id FROM runs WHERE state IN ('Pending', 'Running') ORDER BY seq")
            .fetch_all(&self.readers)
            .await?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = parse_id(row.try_get("id")?)?;
            runs.push(InterruptedRun { id, events: self.run_events(id, 0).await? });
        }
        Ok(runs)
    }

    async fn create_batch(&self, batch: NewBatch) -> Result<(), StoreError> {
        self.batch_write(BatchWrite::Create(Box::new(batch))).await.map(drop)
    }

    async fn queued_items(&self, limit: u32) -> Result<Vec<QueuedItem>, StoreError> {
        let rows =
            sqlx::query(&format!("{QUEUED_ITEMS} LIMIT ?1")).bind(i64::from(limit)).fetch_all(&self.readers).await?;
        rows.iter().map(queued_item_from_row).collect()
    }

    async fn start_item(&self, batch: BatchId, index: u32, run: RunId) -> Result<bool, StoreError> {
        Ok(self.batch_write(BatchWrite::Start { batch, index, run }).await? == 1)
    }

    async fn cancel_batch(&self, batch: BatchId) -> Result<Option<u64>, StoreError> {
        if !self.batch_exists(batch).await? {
            return Ok(None);
        }
        self.batch_write(BatchWrite::Cancel(batch)).await.map(Some)
    }

    async fn requeue_item(&self, item: BatchItemRef, run: RunId) -> Result<(), StoreError> {
        self.batch_write(BatchWrite::Requeue { item, run }).await.map(drop)
    }

    async fn retry_failed_items(&self, batch: BatchId) -> Result<Option<u64>, StoreError> {
        if !self.batch_exists(batch).await? {
            return Ok(None);
        }
        self.batch_write(BatchWrite::RetryFailed(batch)).await.map(Some)
    }

    async fn list_batches(&self, limit: u32) -> Result<Vec<BatchSummary>, StoreError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches ORDER BY seq DESC LIMIT ?1");
        let rows = sqlx::query(&sql).bind(i64::from(limit)).fetch_all(&self.readers).await?;
        let mut batches = Vec::with_capacity(rows.len());
        for row in &rows {
            batches.push(self.batch_summary(row).await?);
        }
        Ok(batches)
    }

    async fn batch(&self, id: BatchId) -> Result<Option<BatchSummary>, StoreError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?1");
        match sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.readers).await? {
            Some(row) => Ok(Some(self.batch_summary(&row).await?)),
            None => Ok(None),
        }
    }

    async fn batch_items(&self, id: BatchId, from: u32, limit: u32) -> Result<Vec<BatchItem>, StoreError> {
        let rows = sqlx::query(&format!("{ITEMS} WHERE b.id = ?1 AND i.idx >= ?2 ORDER BY i.idx LIMIT ?3"))
            .bind(id.to_string())
            .bind(i64::from(from))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(item_from_row).collect()
    }
}

/// Applies queued writes in batches, one transaction (and one sync) per batch.
async fn write_loop(mut conn: SqliteConnection, mut rx: mpsc::UnboundedReceiver<WriteOp>, synchronous: Synchronous) {
    let mut batch = Vec::with_capacity(64);
    let mut syncing = true;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut results: Vec<Answer> = Vec::with_capacity(batch.len());
        // Only run creations and the events that end runs must be on disk when they return. A
        // batch of other events commits without its own sync: WAL frames survive a process
        // crash in the OS cache, and the next synced commit or checkpoint carries them to disk.
        // So streamed deltas never put a sync in front of the next submission.
        let must_sync = synchronous == Synchronous::Full
            && batch
                .iter()
                .any(|op| matches!(op, WriteOp::Create(..) | WriteOp::Batch(..) | WriteOp::Events(_, true, _)));
        if must_sync != syncing {
            let pragma = if must_sync { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
            if sqlx::query(pragma).execute(&mut conn).await.is_ok() {
                syncing = must_sync;
            }
        }
        let committed = write_batch(&mut conn, &batch, &mut results).await;
        let shared_error = committed.err().map(Arc::new);
        if let Some(error) = &shared_error {
            // Every waiter gets the error; the hub retries its events, a submission answers 503.
            tracing::warn!(error = %error, ops = batch.len(), "store write failed; nothing of this batch is stored");
        }
        let mut results = results.into_iter();
        for op in batch.drain(..) {
            match op {
                WriteOp::Create(_, reply) => {
                    let result = match (&shared_error, results.next()) {
                        (Some(error), _) => Err(StoreError::Write(Arc::clone(error))),
                        (None, Some(Answer::Created(created))) => Ok(created),
                        (None, _) => Err(StoreError::Malformed("a run creation went unanswered".into())),
                    };
                    let _ = reply.send(result);
                }
                WriteOp::Batch(_, reply) => {
                    let result = match (&shared_error, results.next()) {
                        (Some(error), _) => Err(StoreError::Write(Arc::clone(error))),
                        (None, Some(Answer::Rows(rows))) => Ok(rows),
                        (None, _) => Err(StoreError::Malformed("a batch write went unanswered".into())),
                    };
                    let _ = reply.send(result);
                }
                WriteOp::Events(_, _, reply) => {
                    let _ = reply.send(shared_error.as_ref().map_or(Ok(()), |e| Err(StoreError::Write(Arc::clone(e)))));
                }
            }
        }
    }
}

/// Writes one batch in one transaction, or nothing of it.
///
/// The transaction is driven with plain `BEGIN`/`COMMIT`/`ROLLBACK` rather than sqlx's
/// `Transaction`: when a disk fills, SQLite may roll a transaction back by itself, and sqlx's
/// own bookkeeping of transaction depth then drifts, so its next `begin` opens a savepoint
/// inside a transaction that is never committed; every later batch would look committed and
/// be lost on close. An explicit `ROLLBACK` after any failure (its own error ignored when
/// SQLite already rolled back) always leaves the connection outside any transaction.
async fn write_batch(
    conn: &mut SqliteConnection,
    batch: &[WriteOp],
    created: &mut Vec<Answer>,
) -> Result<(), sqlx::Error> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let written = write_ops(conn, batch, created).await;
    let committed = match written {
        Ok(()) => sqlx::query("COMMIT").execute(&mut *conn).await.map(drop),
        Err(error) => Err(error),
    };
    if committed.is_err() {
        created.clear();
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    committed
}

/// What a write that answers gave, in the order of the writes.
enum Answer {
    Created(Created),
    Rows(u64),
}

async fn write_ops(
    conn: &mut SqliteConnection,
    batch: &[WriteOp],
    answers: &mut Vec<Answer>,
) -> Result<(), sqlx::Error> {
    let mut last_seq: HashMap<RunId, u64> = HashMap::new();
    for op in batch {
        match op {
            WriteOp::Create(run, _) => answers.push(Answer::Created(insert_run(conn, run).await?)),
            WriteOp::Batch(write, _) => answers.push(Answer::Rows(write_batch_change(conn, write).await?)),
            WriteOp::Events(events, _, _) => {
                for event in events {
                    insert_event(conn, event).await?;
                    let seq = last_seq.entry(event.event.run_id).or_default();
                    *seq = (*seq).max(event.event.seq);
                }
            }
        }
    }
    for (run_id, seq) in last_seq {
        sqlx::query("UPDATE runs SET last_seq = MAX(last_seq, ?1) WHERE id = ?2")
            .bind(seq as i64)
            .bind(run_id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A change to the batch tables, made by the writer like every other write.
enum BatchWrite {
    Create(Box<NewBatch>),
    Start { batch: BatchId, index: u32, run: RunId },
    Cancel(BatchId),
    RetryFailed(BatchId),
    Requeue { item: BatchItemRef, run: RunId },
}

async fn write_batch_change(conn: &mut SqliteConnection, write: &BatchWrite) -> Result<u64, sqlx::Error> {
    match write {
        BatchWrite::Create(batch) => {
            let summary = &batch.summary;
            let seq: i64 = sqlx::query_scalar(concat!(
                "INSERT INTO batches (id, created_at, model_id, system, max_tokens, temperature, total)",
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq"
            ))
            .bind(summary.id.to_string())
            .bind(timestamp(summary.created_at))
            .bind(&summary.model_id)
            .bind(summary.system.as_deref())
            .bind(i64::from(summary.max_tokens))
            .bind(summary.temperature.map(f64::from))
            .bind(batch.items.len() as i64)
            .fetch_one(&mut *conn)
            .await?;
            for (index, (prompt, variables)) in batch.items.iter().enumerate() {
                let variables = variables.as_ref().and_then(|v| serde_json::to_string(v).ok());
                sqlx::query("INSERT INTO batch_items (batch_seq, idx, prompt, variables) VALUES (?1, ?2, ?3, ?4)")
                    .bind(seq)
                    .bind(index as i64)
                    .bind(prompt)
                    .bind(variables)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(batch.items.len() as u64)
        }
        BatchWrite::Start { batch, index, run } => {
            let started = sqlx::query(concat!(
                "UPDATE batch_items SET state = 'Started', run_id = ?1",
                " WHERE batch_seq = (SELECT seq FROM batches WHERE id = ?2) AND idx = ?3 AND state = 'Queued'"
            ))
            .bind(run.to_string())
            .bind(batch.to_string())
            .bind(i64::from(*index))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if started == 0 {
                // Cancelled while its run was being made: still linked, so the run is found.
                sqlx::query(concat!(
                    "UPDATE batch_items SET run_id = ?1",
                    " WHERE batch_seq = (SELECT seq FROM batches WHERE id = ?2) AND idx = ?3 AND run_id IS NULL"
                ))
                .bind(run.to_string())
                .bind(batch.to_string())
                .bind(i64::from(*index))
                .execute(&mut *conn)
                .await?;
            }
            Ok(started)
        }
        BatchWrite::Cancel(batch) => {
            sqlx::query("UPDATE batches SET cancelled = 1 WHERE id = ?1")
                .bind(batch.to_string())
                .execute(&mut *conn)
                .await?;
            Ok(sqlx::query(concat!(
                "UPDATE batch_items SET state = 'Cancelled'",
                " WHERE batch_seq = (SELECT seq FROM batches WHERE id = ?1) AND state = 'Queued'"
            ))
            .bind(batch.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected())
        }
        BatchWrite::Requeue { item, run } => Ok(sqlx::query(concat!(
            "UPDATE batch_items SET state = 'Queued', run_id = NULL, round = round + 1",
            " WHERE batch_seq = (SELECT seq FROM batches WHERE id = ?1 AND cancelled = 0)",
            "   AND idx = ?2 AND run_id = ?3 AND state = 'Started'"
        ))
        .bind(item.batch.to_string())
        .bind(i64::from(item.index))
        .bind(run.to_string())
        .execute(&mut *conn)
        .await?
        .rows_affected()),
        BatchWrite::RetryFailed(batch) => {
            let requeued = sqlx::query(concat!(
                "UPDATE batch_items SET state = 'Queued', run_id = NULL, round = round + 1",
                " WHERE batch_seq = (SELECT seq FROM batches WHERE id = ?1) AND state = 'Started'",
                "   AND run_id IN (SELECT id FROM runs WHERE state IN ('Failed', 'Crashed'))"
            ))
            .bind(batch.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if requeued > 0 {
                sqlx::query("UPDATE batches SET cancelled = 0 WHERE id = ?1")
                    .bind(batch.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(requeued)
        }
    }
}

async fn insert_run(conn: &mut SqliteConnection, run: &NewRun) -> Result<Created, sqlx::Error> {
    let id = run.created.event.run_id.to_string();
    let (replay_of, batch_id) = match &run.created.event.kind {
        EventKind::RunCreated { replay_of, batch_id, .. } => {
            (replay_of.map(|of| of.to_string()), batch_id.map(|batch| batch.to_string()))
        }
        _ => (None, None),
    };
    let inserted = sqlx::query(concat!(
        "INSERT INTO runs (id, state, created_at, model_id, prompt_preview, journal_offset, journal_len,",
        " journal_crc32, last_seq, idempotency_key, replay_of, batch_id)",
        " VALUES (?1, 'Pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        " ON CONFLICT (idempotency_key) DO NOTHING"
    ))
    .bind(&id)
    .bind(timestamp(run.created.event.ts))
    .bind(&run.model_id)
    .bind(&run.prompt_preview)
    .bind(run.journal.offset as i64)
    .bind(run.journal.len as i64)
    .bind(i64::from(run.journal.crc32))
    .bind(run.created.event.seq as i64)
    .bind(run.idempotency_key.as_deref())
    .bind(replay_of)
    .bind(batch_id)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        let existing: String = sqlx::query_scalar("SELECT id FROM runs WHERE idempotency_key = ?1")
            .bind(run.idempotency_key.as_deref())
            .fetch_one(&mut *conn)
            .await?;
        return match existing.parse() {
            Ok(id) => Ok(Created::Existing(id)),
            Err(_) => Err(sqlx::Error::Decode(format!("stored run id `{existing}` is not a UUID").into())),
        };
    }
    insert_event(conn, &run.created).await?;
    if let EventKind::RunCreated { prompt, .. } = &run.created.event.kind {
        sqlx::query("INSERT INTO run_search (rowid, prompt, response) SELECT seq, ?2, '' FROM runs WHERE id = ?1")
            .bind(run.created.event.run_id.to_string())
            .bind(prompt)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Created::New)
}

/// Makes the run's response searchable: the text its last attempt's deltas spell, all stored
/// by the time its result is.
const SEARCH_RESPONSE: &str = concat!(
    "UPDATE run_search SET response = COALESCE((SELECT group_concat(t, '') FROM (",
    " SELECT json_extract(d.body, '$.text') AS t FROM events d",
    " WHERE d.run_id = ?1 AND d.kind = 'delta' AND json_extract(d.body, '$.attempt') = (",
    "  SELECT MAX(json_extract(m.body, '$.attempt')) FROM events m WHERE m.run_id = ?1 AND m.kind = 'delta')",
    " ORDER BY d.seq)), '')",
    " WHERE rowid = (SELECT seq FROM runs WHERE id = ?1)"
);

async fn insert_event(conn: &mut SqliteConnection, stamped: &Stamped) -> Result<(), sqlx::Error> {
    let event = stamped.event.as_ref();
    let id = event.run_id.to_string();
    let kind = event_kind_name(&event.kind);
    sqlx::query("INSERT OR IGNORE INTO events (run_id, seq, kind, body) VALUES (?1, ?2, ?3, ?4)")
        .bind(&id)
        .bind(event.seq as i64)
        .bind(kind)
        .bind(stamped.json.as_str())
        .execute(&mut *conn)
        .await?;
    match &event.kind {
        EventKind::RunState { state, error } => {
            // The state guard makes a terminal state final in the store too.
            sqlx::query(concat!(
                "UPDATE runs SET state = ?1,",
                " started_at = CASE WHEN ?1 = 'Running' THEN COALESCE(started_at, ?2) ELSE started_at END,",
                " finished_at = CASE WHEN ?3 THEN ?2 ELSE finished_at END,",
                " error = COALESCE(?4, error)",
                " WHERE id = ?5 AND state IN ('Pending', 'Running')"
            ))
            .bind(state.as_str())
            .bind(timestamp(event.ts))
            .bind(state.is_terminal())
            .bind(error.as_deref())
            .bind(&id)
            .execute(&mut *conn)
            .await?;
            // A run that ended without a result (failed, cancelled, crashed) keeps what it
            // streamed: searchable too.
            if state.is_terminal() && *state != RunState::Completed {
                sqlx::query(SEARCH_RESPONSE).bind(&id).execute(&mut *conn).await?;
            }
        }
        EventKind::TaskState { task, attempt, .. } if *attempt > 1 => {
            let column = attempts_column(*task);
            sqlx::query(&format!("UPDATE runs SET {column} = MAX({column}, ?1) WHERE id = ?2"))
                .bind(i64::from(*attempt))
                .bind(&id)
                .execute(&mut *conn)
                .await?;
        }
        EventKind::ModelResult { usage, .. } => {
            if let Some(usage) = usage {
                sqlx::query("UPDATE runs SET input_tokens = ?1, output_tokens = ?2 WHERE id = ?3")
                    .bind(i64::from(usage.input_tokens))
                    .bind(i64::from(usage.output_tokens))
                    .bind(&id)
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query(SEARCH_RESPONSE).bind(&id).execute(&mut *conn).await?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_store_on_the_same_data_directory_is_refused_and_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("store-lock-{}", uuid::Uuid::now_v7()));
        let _first = SqliteStore::open(&dir, Synchronous::Normal).await.expect("first store");

        let error = SqliteStore::open(&dir, Synchronous::Normal).await.expect_err("the directory is in use");

        let text = crate::causes::chain(&error);
        assert!(matches!(error, StoreError::Locked(_)), "{text}");
        assert!(text.contains(&format!("(pid {})", std::process::id())), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
