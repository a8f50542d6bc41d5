//! The run store: runs, their events (state changes, attempts, log lines, deltas) and history.
//!
//! The rest of the backend sees only the [`Store`] trait: [`SqliteStore`] for one machine,
//! [`PgStore`] for several replicas sharing one PostgreSQL (which also fences the writes of a
//! replica that lost a run, see [`Stored::fenced`]).

mod codec;
#[cfg(test)]
pub(crate) mod memory;
mod postgres;
mod recovery;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::{BatchId, BatchItem, BatchSummary, Event, LogEntry, RunId, RunState, RunSummary};

use crate::journal::RecordRef;
use crate::wire::Published;

pub use postgres::{
    CONTROL_CHANNEL, Claimed, EVENTS_CHANNEL, Peer, PgStore, PromptRow, ReplicaLease, parse_notification,
};
pub use recovery::{crash_events, recover_interrupted};
pub use sqlite::{SqliteStore, Synchronous};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed the operation (disk full, read-only, corrupt...).
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The schema could not be migrated.
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be prepared.
    #[error("data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Another process uses this data directory.
    #[error(transparent)]
    Locked(#[from] crate::lockfile::LockError),
    /// A stored row could not be decoded.
    #[error("stored data is malformed: {0}")]
    Malformed(String),
    /// A batched write failed; every caller waiting on that batch gets the same error.
    #[error("database write failed")]
    Write(#[source] Arc<sqlx::Error>),
    /// The store's writer has stopped (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    /// This kind of store cannot do that yet.
    #[error("{0} are not available with this store")]
    Unsupported(&'static str),
}

/// What [`Store::append_events`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Runs whose events were refused because this server no longer owns them (its lease
    /// expired, or another replica took them over): none of their events in the call is stored,
    /// and none may be handed to a client. Always empty for a single-node store.
    pub fenced: Vec<RunId>,
}

/// A run about to be accepted.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Its `run_created` event (seq 1) with its wire form, which carries the prompt and settings.
    pub created: Published,
    /// The model id, for history.
    pub model_id: String,
    /// The prompt preview, for history.
    pub prompt_preview: String,
    /// Where its prompt sits in the journal.
    pub journal: RecordRef,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

/// What [`Store::create_run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// A run with the same idempotency key exists already; nothing was stored.
    Existing(RunId),
}

/// The runs of one model a filter selects, with their reported token usage summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUsage {
    pub model_id: String,
    pub runs: u64,
    /// Runs whose usage is known (Bedrock answered).
    pub with_usage: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A filter for run history, and the page of it wanted: the newest `limit` runs, or those next
/// to a cursor run.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub limit: u32,
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// Only runs of this model id, exactly.
    pub model: Option<String>,
    /// Only runs created at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only runs created before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only the runs of this batch's items.
    pub batch: Option<BatchId>,
    /// Only runs created before this one: the next page, going back in time.
    pub before: Option<RunId>,
    /// Only runs created after this one, the `limit` closest to it: the previous page. Still
    /// answered newest first.
    pub after: Option<RunId>,
    /// Only runs whose prompt or response holds every one of these words (lower-case letters
    /// and digits, as [`common::search_words`] makes them).
    pub search: Option<Vec<String>>,
}

impl RunQuery {
    /// Whether a run passes the filter (not the page cursors).
    pub fn matches(&self, run: &RunSummary) -> bool {
        self.state.is_none_or(|state| run.state == state)
            && self.model.as_ref().is_none_or(|model| &run.model_id == model)
            && self.since.is_none_or(|since| run.created_at >= since)
            && self.until.is_none_or(|until| run.created_at < until)
            && self.batch.is_none_or(|batch| run.batch_id == Some(batch))
    }
}

/// What is needed to resume a run interrupted by a crash.
#[derive(Debug, Clone)]
pub struct InterruptedRun {
    pub id: RunId,
    pub events: Vec<Event>,
}

/// Durable storage of runs and their events.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new run and its `run_created` event; returns once both are durable.
    async fn create_run(&self, run: NewRun) -> Result<Created, StoreError>;

    /// Stores events, in order, and returns once they are committed: visible to every reader
    /// and safe from a process crash; with `sync`, also from a power loss. Each comes with the
    /// JSON the hub already made for the WebSocket, which is what is stored. Storing an event
    /// twice is harmless (the second is ignored), so a failed call can simply be repeated.
    async fn append_events(&self, events: &[Published], sync: bool) -> Result<Stored, StoreError>;

    /// Asks the server that executes the run, if it is another one, to cancel it. `false` when
    /// there is no such server: a single-node store has only this process, which the caller
    /// asked already.
    async fn request_cancel(&self, _id: RunId) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Lets another process open this store's files; called at shutdown, once nothing writes.
    async fn release(&self);

    /// The run created with this idempotency key, if any.
    async fn run_for_idempotency_key(&self, key: &str) -> Result<Option<RunId>, StoreError>;

    /// Runs matching the query, newest first; for a search, a store may fill each run's
    /// `snippet` as it finds it (SQLite does), or leave it to [`Store::search_snippets`].
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunSummary>, StoreError>;

    /// For each of `runs` whose text holds the words, a passage around them with each found word
    /// between the snippet marks ([`common::SNIPPET_MARK_START`], [`common::SNIPPET_MARK_END`]).
    /// A store without full-text search has none; one whose list fills them is never asked.
    async fn search_snippets(&self, words: &[String], runs: &[RunId]) -> Result<Vec<(RunId, String)>, StoreError> {
        let _ = (words, runs);
        Ok(Vec::new())
    }

    /// The token usage of the runs the query's filters select, by model (its limit and
    /// cursors are ignored).
    async fn usage_by_model(&self, query: &RunQuery) -> Result<Vec<ModelUsage>, StoreError>;

    /// The run's summary, if it exists.
    async fn run_summary(&self, id: RunId) -> Result<Option<RunSummary>, StoreError>;

    /// The runs made from this one (`replay_of`), oldest first.
    async fn replays(&self, id: RunId) -> Result<Vec<RunId>, StoreError>;

    /// The run's events with `seq > after_seq`, oldest first.
    async fn run_events(&self, id: RunId, after_seq: u64) -> Result<Vec<Event>, StoreError>;

    /// The run's log lines, oldest first.
    async fn run_logs(&self, id: RunId) -> Result<Vec<LogEntry>, StoreError>;

    /// The runs left `Pending` or `Running` by a previous process, with their events.
    async fn interrupted_runs(&self) -> Result<Vec<InterruptedRun>, StoreError>;

    /// Stores a batch and all its items, `Queued`; returns once durable.
    async fn create_batch(&self, _batch: NewBatch) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("batches"))
    }

    /// Up to `limit` queued items of batches not cancelled: oldest batch, first item first.
    async fn queued_items(&self, _limit: u32) -> Result<Vec<QueuedItem>, StoreError> {
        Ok(Vec::new())
    }

    /// Records that a queued item's run started; `false` if the item was not queued any more
    /// (its batch was cancelled meanwhile): the run is still linked to it, for the caller to cancel.
    async fn start_item(&self, _batch: BatchId, _index: u32, _run: RunId) -> Result<bool, StoreError> {
        Err(StoreError::Unsupported("batches"))
    }

    /// Cancels a batch: its queued items never start. `None` if there is no such batch, else
    /// how many queued items it had.
    async fn cancel_batch(&self, _batch: BatchId) -> Result<Option<u64>, StoreError> {
        Err(StoreError::Unsupported("batches"))
    }

    /// Queues again the items whose run failed or crashed, each for a new run, and lifts the
    /// batch's cancellation so they start. `None` if there is no such batch, else how many
    /// items were queued.
    async fn retry_failed_items(&self, _batch: BatchId) -> Result<Option<u64>, StoreError> {
        Err(StoreError::Unsupported("batches"))
    }

    /// Queues an item again for a new run after `run`, its run, failed on a throttle; does
    /// nothing if the item has moved on to another run (or was cancelled).
    async fn requeue_item(&self, _item: BatchItemRef, _run: RunId) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("batches"))
    }

    /// Batches, newest first.
    async fn list_batches(&self, _limit: u32) -> Result<Vec<BatchSummary>, StoreError> {
        Err(StoreError::Unsupported("batches"))
    }

    /// One batch with its counts by state.
    async fn batch(&self, _id: BatchId) -> Result<Option<BatchSummary>, StoreError> {
        Err(StoreError::Unsupported("batches"))
    }

    /// A batch's items from index `from`, at most `limit`, in order.
    async fn batch_items(&self, _id: BatchId, _from: u32, _limit: u32) -> Result<Vec<BatchItem>, StoreError> {
        Err(StoreError::Unsupported("batches"))
    }
}

/// A batch about to be stored.
#[derive(Debug, Clone)]
pub struct NewBatch {
    /// Its id, time and settings; the counts are ignored (every item starts `Queued`).
    pub summary: BatchSummary,
    /// Each item's prompt and, from a template, its values.
    pub items: Vec<(String, Option<BTreeMap<String, String>>)>,
}

/// Which item of a batch, in which round, a run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchItemRef {
    pub batch: BatchId,
    pub index: u32,
    /// 0, or how many times the item was queued again after its run failed.
    pub round: u32,
}

/// One replica's (or several replicas') use of one model's quota.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaUse {
    pub model_id: String,
    /// Call attempts started within the last minute and not throttled.
    pub admitted: u64,
    /// The attempts a minute may start, once a throttle showed where the quota is.
    pub per_minute: Option<f64>,
}

/// An item the scheduler may start, with its batch's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedItem {
    pub item: BatchItemRef,
    pub prompt: String,
    pub model_id: String,
    pub system: Option<String>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
}

/// Words of the seeded prompts: run `n` is about `SEED_TOPICS[n % SEED_TOPICS.len()]`, so a
/// search for one finds a known share of the history.
pub const SEED_TOPICS: [&str; 20] = [
    "invoices",
    "contracts",
    "tickets",
    "reviews",
    "emails",
    "reports",
    "recipes",
    "poems",
    "lyrics",
    "essays",
    "resumes",
    "tweets",
    "memos",
    "minutes",
    "proposals",
    "manuals",
    "articles",
    "letters",
    "notes",
    "stories",
];

/// Stores `count` finished runs directly, without running them (one in a hundred `Failed`, the
/// rest `Completed` with a short response and its usage): a large history for the benchmark and
/// the load tests to query and search.
pub async fn seed_finished_runs(store: &dyn Store, count: usize, model_id: &str) -> Result<(), StoreError> {
    use common::EventKind;

    use crate::wire::stamp;

    let event = |run_id, seq, kind| stamp(Arc::new(Event { run_id, seq, ts: Utc::now(), kind }));
    for first in (0..count).step_by(1000) {
        // A thousand creations at a time share group commits without queueing the whole history.
        let creations = (first..count.min(first + 1000)).map(|n| {
            let id = RunId(uuid::Uuid::now_v7());
            let prompt = format!("seeded run {n} about {}", SEED_TOPICS[n % SEED_TOPICS.len()]);
            let created = EventKind::RunCreated {
                prompt: prompt.clone(),
                model_id: model_id.into(),
                system: None,
                max_tokens: 1024,
                temperature: None,
                max_attempts: 3,
                replay_of: None,
                batch_id: None,
            };
            let new_run = NewRun {
                created: event(id, 1, created),
                model_id: model_id.into(),
                prompt_preview: prompt,
                journal: RecordRef { offset: 0, len: 0, crc32: 0 },
                idempotency_key: None,
            };
            async move {
                store.create_run(new_run).await?;
                let running = event(id, 2, EventKind::RunState { state: RunState::Running, error: None });
                let events = if n % 100 == 0 {
                    vec![running, event(id, 3, EventKind::RunState { state: RunState::Failed, error: None })]
                } else {
                    let text = format!("Answer number {n}, in a few words.");
                    let usage = common::Usage { input_tokens: 6, output_tokens: 6 };
                    vec![
                        running,
                        event(id, 3, EventKind::Delta { attempt: 1, text }),
                        event(
                            id,
                            4,
                            EventKind::ModelResult { usage: Some(usage), stop_reason: None, latency_ms: None },
                        ),
                        event(id, 5, EventKind::RunState { state: RunState::Completed, error: None }),
                    ]
                };
                store.append_events(&events, false).await.map(drop)
            }
        });
        for created in futures_util::future::join_all(creations).await {
            created?;
        }
    }
    Ok(())
}
