//! The PostgreSQL store, shared by several replicas of the server.
//!
//! Beside what every store does, it is the cluster's coordination engine:
//!
//! - **Leases.** Each replica has a row in `replicas` whose `lease_until` (by the database's
//!   clock) its heartbeat extends, only while it is still valid ([`PgStore::renew`]).
//! - **Ownership and fencing.** A run belongs to one replica (`runs.owner`) under an `epoch`
//!   that every takeover bumps. An event write counts only for the current owner, at its epoch,
//!   with a valid lease, checked in the same statement that advances `last_seq`; the events of
//!   any other run in the batch are refused ([`Stored::fenced`]) and never stored, so a frozen
//!   or partitioned replica cannot merge late writes into a run another one now executes.
//! - **Takeover.** [`PgStore::claim_orphans`] takes runs whose owner's lease expired with
//!   `FOR UPDATE SKIP LOCKED`, so replicas rescuing at once never claim the same run.
//! - **Fan-out.** Each committed batch sends one small `NOTIFY` naming the runs and their last
//!   `seq`, never the events themselves: the tables are the truth, the notification a hint
//!   (see [`crate::cluster`] for the tailer that reads them).
//!
//! Migrations are embedded and run at connect; sqlx takes an advisory lock around them, so
//! replicas starting together migrate once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use common::{BatchId, BatchItem, BatchSummary, Event, EventKind, LogEntry, RunId, RunState, RunSummary};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::codec::{
    self, BATCH_COLUMNS, Dialect, ITEM_COUNTS, ITEMS, QUEUED_ITEMS, SUMMARY_COLUMNS, attempts_column, batch_from_row,
    event_kind_name, history_page, item_from_row, parse_event, parse_id, queued_item_from_row, summary_from_row,
    timestamp,
};
use super::{
    BatchItemRef, Created, InterruptedRun, ModelUsage, NewBatch, NewRun, QueuedItem, QuotaUse, RunQuery, Store,
    StoreError, Stored,
};
use crate::journal::RecordRef;
use crate::wire::Published;

/// The channel of event notifications: `run_id:last_seq` pairs separated by spaces.
pub const EVENTS_CHANNEL: &str = "pipeline_events";
/// The channel of control messages: `cancel:<run_id>`.
pub const CONTROL_CHANNEL: &str = "pipeline_control";
/// A notification payload that names no run: every tailer reads everything recent.
pub const EVERYTHING: &str = "*";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;
/// Connections per replica: the persister, readers, the heartbeat and the rescuer.
const POOL_SIZE: u32 = 8;
/// How long a connection may sit inside a transaction without a statement: a frozen replica
/// must not hold a run's row lock (and so block its takeover) for ever.
const IDLE_IN_TRANSACTION: &str = "5s";

/// A replica's lease as the database sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaLease {
    /// Milliseconds until it expires, by the database's clock.
    pub remaining_ms: i64,
}

/// Another replica (or this one) as listed in the database.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub id: String,
    pub address: String,
    /// Milliseconds until its lease expires; negative once expired.
    pub lease_remaining_ms: i64,
}

/// A run this replica took over from a replica whose lease expired.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: RunId,
    /// The previous owner.
    pub from: String,
    /// Where its prompt is, for `load_prompt_file`.
    pub journal: RecordRef,
    /// Its events so far, read after the claim committed: nothing more can be added by the
    /// previous owner.
    pub events: Vec<Event>,
}

/// A run's prompt as the journal table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRow {
    pub run_id: RunId,
    pub prompt: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// Runs and events in PostgreSQL, for one replica of a cluster.
pub struct PgStore {
    pool: PgPool,
    replica: String,
    /// The runs this replica owns, with the epoch of its ownership.
    owned: Mutex<HashMap<RunId, i64>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("replica", &self.replica).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` as replica `replica` and migrates the schema.
    pub async fn connect(url: &str, replica: String) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let options = options
            .application_name(&format!("prompt-pipeline {replica}"))
            .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION)]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations_pg").run(&pool).await?;
        Ok(PgStore { pool, replica, owned: Mutex::new(HashMap::new()) })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn owned(&self) -> MutexGuard<'_, HashMap<RunId, i64>> {
        self.owned.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this replica executes the run.
    pub fn owns(&self, id: RunId) -> bool {
        self.owned().contains_key(&id)
    }

    /// Forgets every run this replica owned (its lease is lost); returns them.
    pub fn disown_all(&self) -> Vec<RunId> {
        self.owned().drain().map(|(id, _)| id).collect()
    }

    /// Registers this replica with a fresh lease.
    pub async fn join(&self, address: &str, lease: Duration) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO replicas (id, address, lease_until)",
            " VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))",
            " ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, lease_until = EXCLUDED.lease_until"
        ))
        .bind(&self.replica)
        .bind(address)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Extends this replica's lease by `lease` from now, only if it has not expired: a lease
    /// once lost stays lost (its runs may be someone else's already). `None` when it is lost.
    pub async fn renew(&self, lease: Duration) -> Result<Option<ReplicaLease>, StoreError> {
        let remaining: Option<f64> = sqlx::query_scalar(concat!(
            "UPDATE replicas SET lease_until = clock_timestamp() + make_interval(secs => $2),",
            " heartbeat_at = clock_timestamp()",
            " WHERE id = $1 AND lease_until > clock_timestamp()",
            " RETURNING (extract(epoch FROM lease_until - clock_timestamp()) * 1000)::float8"
        ))
        .bind(&self.replica)
        .bind(lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(remaining.map(|ms| ReplicaLease { remaining_ms: ms as i64 }))
    }

    /// Ends this replica's lease now, so its peers need not wait for it to expire.
    pub async fn leave(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE replicas SET lease_until = clock_timestamp() WHERE id = $1")
            .bind(&self.replica)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every replica with a lease that is valid or expired within the last minute.
    pub async fn peers(&self) -> Result<Vec<Peer>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT id, address, (extract(epoch FROM lease_until - clock_timestamp()) * 1000)::float8 AS remaining",
            " FROM replicas WHERE lease_until > clock_timestamp() - interval '1 minute' ORDER BY started_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Peer {
                    id: row.try_get("id")?,
                    address: row.try_get("address")?,
                    lease_remaining_ms: row.try_get::<f64, _>("remaining")? as i64,
                })
            })
            .collect()
    }

    /// Runs owned by this replica that someone asked to cancel: the backstop for a lost
    /// control notification.
    pub async fn cancel_requests(&self) -> Result<Vec<RunId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE owner = $1 AND cancel_requested AND state IN ('Pending', 'Running')",
        )
        .bind(&self.replica)
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    /// Takes over up to `limit` runs in flight whose owner's lease has expired, bumping their
    /// epoch, while this replica's own lease is valid.
    pub async fn claim_orphans(&self, limit: i64) -> Result<Vec<Claimed>, StoreError> {
        let rows = sqlx::query(concat!(
            "WITH orphans AS (",
            "  SELECT r.id, r.owner FROM runs r",
            "  WHERE r.state IN ('Pending', 'Running')",
            "    AND NOT EXISTS (SELECT 1 FROM replicas p WHERE p.id = r.owner AND p.lease_until > clock_timestamp())",
            "    AND EXISTS (SELECT 1 FROM replicas me WHERE me.id = $1 AND me.lease_until > clock_timestamp())",
            "  ORDER BY r.seq LIMIT $2 FOR UPDATE OF r SKIP LOCKED)",
            " UPDATE runs SET owner = $1, epoch = runs.epoch + 1, updated_at = clock_timestamp()",
            " FROM orphans WHERE runs.id = orphans.id",
            " RETURNING runs.id, runs.epoch, orphans.owner AS previous"
        ))
        .bind(&self.replica)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        self.claimed(&rows).await
    }

    /// Takes back the runs a previous process with this replica's id left in flight (a restart
    /// with a fixed `--replica-id`): its lease is this one now, so no other replica would.
    pub async fn reclaim_own(&self) -> Result<Vec<Claimed>, StoreError> {
        let rows = sqlx::query(concat!(
            "UPDATE runs SET epoch = epoch + 1, updated_at = clock_timestamp()",
            " WHERE owner = $1 AND state IN ('Pending', 'Running')",
            " RETURNING id, epoch, owner AS previous"
        ))
        .bind(&self.replica)
        .fetch_all(&self.pool)
        .await?;
        self.claimed(&rows).await
    }

    /// Records claimed runs as owned at their new epoch and reads what they hold.
    async fn claimed(&self, rows: &[PgRow]) -> Result<Vec<Claimed>, StoreError> {
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let id = parse_id(row.try_get("id")?)?;
            self.owned().insert(id, row.try_get("epoch")?);
            let prompt = self.prompt(id).await?;
            let journal = prompt.map_or(RecordRef { offset: 0, len: 0, crc32: 0 }, |p| RecordRef {
                offset: 0,
                len: p.bytes,
                crc32: p.crc32,
            });
            claimed.push(Claimed {
                id,
                from: row.try_get("previous")?,
                journal,
                events: self.run_events(id, 0).await?,
            });
        }
        Ok(claimed)
    }

    /// Runs in flight or changed in the last `window`, with their last stored `seq`: what a
    /// tailer compares with what it holds when a notification may have been missed.
    pub async fn recent_runs(&self, window: Duration) -> Result<Vec<(RunId, u64)>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT id, last_seq FROM runs WHERE state IN ('Pending', 'Running')",
            " UNION SELECT id, last_seq FROM runs WHERE updated_at > clock_timestamp() - make_interval(secs => $1)"
        ))
        .bind(window.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((parse_id(row.try_get("id")?)?, u64::try_from(row.try_get::<i64, _>("last_seq")?).unwrap_or(0)))
            })
            .collect()
    }

    /// The events of several runs, each after its own `seq`, in `seq` order per run.
    pub async fn events_after(&self, runs: &[(RunId, u64)]) -> Result<Vec<Event>, StoreError> {
        let ids: Vec<String> = runs.iter().map(|(id, _)| id.to_string()).collect();
        let after: Vec<i64> = runs.iter().map(|(_, seq)| i64::try_from(*seq).unwrap_or(i64::MAX)).collect();
        let bodies: Vec<String> = sqlx::query_scalar(concat!(
            "SELECT e.body FROM UNNEST($1::text[], $2::int8[]) AS c(id, after)",
            " JOIN events e ON e.run_id = c.id AND e.seq > c.after ORDER BY e.run_id, e.seq"
        ))
        .bind(&ids)
        .bind(&after)
        .fetch_all(&self.pool)
        .await?;
        bodies.iter().map(|body| parse_event(body)).collect()
    }

    /// The run's prompt from the journal table.
    pub async fn prompt(&self, id: RunId) -> Result<Option<PromptRow>, StoreError> {
        let row = sqlx::query("SELECT run_id, prompt, bytes, crc32 FROM prompts WHERE run_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(prompt_from_row).transpose()
    }

    /// Every prompt, in the order the runs were accepted, `after` a run's place (a page cursor).
    pub async fn prompts_page(&self, after: i64, limit: i64) -> Result<Vec<(i64, PromptRow)>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT r.seq, p.run_id, p.prompt, p.bytes, p.crc32 FROM prompts p JOIN runs r ON r.id = p.run_id",
            " WHERE r.seq > $1 ORDER BY r.seq LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("seq")?, prompt_from_row(row)?))).collect()
    }

    /// Publishes this replica's use of each model's quota and reads the other live replicas'
    /// (the calls they got in, summed; the lowest budget any of them learnt), in one transaction.
    pub async fn exchange_quota_use(&self, mine: &[QuotaUse]) -> Result<Vec<QuotaUse>, StoreError> {
        let models: Vec<&str> = mine.iter().map(|m| m.model_id.as_str()).collect();
        let admitted: Vec<i64> = mine.iter().map(|m| i64::try_from(m.admitted).unwrap_or(i64::MAX)).collect();
        // No budget travels as 0, which a budget never is (it is at least one call a minute).
        let budgets: Vec<f64> = mine.iter().map(|m| m.per_minute.unwrap_or(0.0)).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO quota_use (replica, model_id, admitted, per_minute, updated_at)",
            " SELECT $1, m, a, NULLIF(p, 0), now() FROM unnest($2::text[], $3::int8[], $4::float8[]) AS t(m, a, p)",
            " ON CONFLICT (replica, model_id) DO UPDATE SET admitted = excluded.admitted,",
            "  per_minute = excluded.per_minute, updated_at = excluded.updated_at"
        ))
        .bind(&self.replica)
        .bind(&models)
        .bind(&admitted)
        .bind(&budgets)
        .execute(&mut *tx)
        .await?;
        // A replica that stopped telling (or lost its lease) no longer uses the quota.
        let rows = sqlx::query(concat!(
            "SELECT q.model_id, SUM(q.admitted)::int8 AS admitted, MIN(q.per_minute) AS per_minute",
            " FROM quota_use q JOIN replicas r ON r.id = q.replica",
            " WHERE q.replica <> $1 AND q.updated_at > now() - interval '5 seconds' AND r.lease_until > now()",
            " GROUP BY q.model_id"
        ))
        .bind(&self.replica)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(QuotaUse {
                    model_id: row.try_get("model_id")?,
                    admitted: u64::try_from(row.try_get::<i64, _>("admitted")?).unwrap_or(0),
                    per_minute: row.try_get("per_minute")?,
                })
            })
            .collect()
    }

    /// Takes one submission from the cluster's allowance: a token bucket of `per_minute`
    /// tokens refilled evenly over a minute, as a single server keeps in memory. `Some(wait)`
    /// when it is empty, with the time until the next token.
    pub async fn take_submission(&self, per_minute: u32) -> Result<Option<Duration>, StoreError> {
        let capacity = f64::from(per_minute.max(1));
        let mut tx = self.pool.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO submission_bucket (id, tokens, counted_at) VALUES (1, $1, clock_timestamp())",
            " ON CONFLICT (id) DO NOTHING"
        ))
        .bind(capacity)
        .execute(&mut *tx)
        .await?;
        // The row lock serialises replicas; the refill is computed by the database's clock.
        let tokens: f64 = sqlx::query_scalar(concat!(
            "UPDATE submission_bucket SET",
            " tokens = LEAST($1, tokens + extract(epoch FROM clock_timestamp() - counted_at)::float8 * $1 / 60.0),",
            " counted_at = clock_timestamp()",
            " WHERE id = 1 RETURNING tokens"
        ))
        .bind(capacity)
        .fetch_one(&mut *tx)
        .await?;
        let wait = if tokens >= 1.0 {
            sqlx::query("UPDATE submission_bucket SET tokens = tokens - 1 WHERE id = 1").execute(&mut *tx).await?;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - tokens) * 60.0 / capacity))
        };
        tx.commit().await?;
        Ok(wait)
    }
}

fn prompt_from_row(row: &PgRow) -> Result<PromptRow, StoreError> {
    Ok(PromptRow {
        run_id: parse_id(row.try_get("run_id")?)?,
        prompt: row.try_get("prompt")?,
        bytes: u64::try_from(row.try_get::<i64, _>("bytes")?).unwrap_or(0),
        crc32: u32::try_from(row.try_get::<i64, _>("crc32")?).unwrap_or(0),
    })
}

#[async_trait]
impl Store for PgStore {
    async fn create_run(&self, run: NewRun) -> Result<Created, StoreError> {
        let event = run.created.event.as_ref();
        let EventKind::RunCreated { prompt, replay_of, batch_id, .. } = &event.kind else {
            return Err(StoreError::Malformed(format!("run {}: its first event is not `run_created`", event.run_id)));
        };
        let id = event.run_id.to_string();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO runs (id, state, created_at, model_id, prompt_preview, last_seq, idempotency_key,",
            " replay_of, owner, batch_id) VALUES ($1, 'Pending', $2, $3, $4, $5, $6, $7, $8, $9)",
            " ON CONFLICT (idempotency_key) DO NOTHING"
        ))
        .bind(&id)
        .bind(timestamp(event.ts))
        .bind(&run.model_id)
        .bind(&run.prompt_preview)
        .bind(event.seq as i64)
        .bind(run.idempotency_key.as_deref())
        .bind(replay_of.map(|of| of.to_string()))
        .bind(&self.replica)
        .bind(batch_id.map(|batch| batch.to_string()))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let existing: String = sqlx::query_scalar("SELECT id FROM runs WHERE idempotency_key = $1")
                .bind(run.idempotency_key.as_deref())
                .fetch_one(&mut *tx)
                .await?;
            return Ok(Created::Existing(parse_id(&existing)?));
        }
        sqlx::query("INSERT INTO prompts (run_id, prompt, bytes, crc32) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(prompt)
            .bind(run.journal.len as i64)
            .bind(i64::from(run.journal.crc32))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO run_search (run_id, prompt) VALUES ($1, $2)")
            .bind(&id)
            .bind(prompt)
            .execute(&mut *tx)
            .await?;
        insert_events(&mut tx, std::slice::from_ref(&run.created), &HashMap::from([(event.run_id, 1)])).await?;
        notify(&mut tx, &[(event.run_id, event.seq)]).await?;
        tx.commit().await?;
        self.owned().insert(event.run_id, 1);
        Ok(Created::New)
    }

    async fn append_events(&self, events: &[Published], _sync: bool) -> Result<Stored, StoreError> {
        // Every commit is durable in PostgreSQL (`synchronous_commit` is the server's to set).
        let mut last: HashMap<RunId, u64> = HashMap::new();
        for event in events {
            let seq = last.entry(event.event.run_id).or_default();
            *seq = (*seq).max(event.event.seq);
        }
        let epochs: HashMap<RunId, i64> = {
            let owned = self.owned();
            last.keys().filter_map(|id| owned.get(id).map(|epoch| (*id, *epoch))).collect()
        };
        let mut fenced: Vec<RunId> = last.keys().filter(|id| !epochs.contains_key(id)).copied().collect();
        if epochs.is_empty() {
            return Ok(Stored { fenced });
        }
        let (ids, seqs, run_epochs): (Vec<String>, Vec<i64>, Vec<i64>) = epochs
            .iter()
            .map(|(id, epoch)| (id.to_string(), last.get(id).copied().unwrap_or(0) as i64, *epoch))
            .fold((Vec::new(), Vec::new(), Vec::new()), |(mut a, mut b, mut c), (x, y, z)| {
                a.push(x);
                b.push(y);
                c.push(z);
                (a, b, c)
            });
        let mut tx = self.pool.begin().await?;
        // The fence: one statement advances `last_seq` of exactly the runs this replica still
        // owns at the epoch it knows, while its lease is valid.
        let accepted: Vec<String> = sqlx::query_scalar(concat!(
            "UPDATE runs SET last_seq = GREATEST(runs.last_seq, u.seq), updated_at = clock_timestamp()",
            " FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS u(id, seq, epoch)",
            " WHERE runs.id = u.id AND runs.owner = $4 AND runs.epoch = u.epoch",
            "   AND EXISTS (SELECT 1 FROM replicas WHERE id = $4 AND lease_until > clock_timestamp())",
            " RETURNING runs.id"
        ))
        .bind(&ids)
        .bind(&seqs)
        .bind(&run_epochs)
        .bind(&self.replica)
        .fetch_all(&mut *tx)
        .await?;
        let accepted: HashMap<RunId, i64> = accepted
            .iter()
            .filter_map(|id| id.parse().ok())
            .filter_map(|id: RunId| epochs.get(&id).map(|epoch| (id, *epoch)))
            .collect();
        fenced.extend(epochs.keys().filter(|id| !accepted.contains_key(id)));
        let kept: Vec<Published> =
            events.iter().filter(|e| accepted.contains_key(&e.event.run_id)).map(std::sync::Arc::clone).collect();
        insert_events(&mut tx, &kept, &accepted).await?;
        let notified: Vec<(RunId, u64)> = accepted.keys().map(|id| (*id, last.get(id).copied().unwrap_or(0))).collect();
        notify(&mut tx, &notified).await?;
        tx.commit().await?;
        let mut owned = self.owned();
        for id in &fenced {
            owned.remove(id);
        }
        for event in kept.iter().filter(|e| e.event.kind.ends_run()) {
            owned.remove(&event.event.run_id);
        }
        if !fenced.is_empty() {
            tracing::warn!(runs = fenced.len(), "event writes refused: this replica no longer owns these runs");
        }
        Ok(Stored { fenced })
    }

    async fn request_cancel(&self, id: RunId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let marked =
            sqlx::query("UPDATE runs SET cancel_requested = true WHERE id = $1 AND state IN ('Pending', 'Running')")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        if marked.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CONTROL_CHANNEL)
            .bind(format!("cancel:{id}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release(&self) {
        self.pool.close().await;
    }

    async fn run_for_idempotency_key(&self, key: &str) -> Result<Option<RunId>, StoreError> {
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM runs WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        id.as_deref().map(parse_id).transpose()
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunSummary>, StoreError> {
        let page = history_page(query, Dialect::Postgres);
        let mut statement = sqlx::query(&page.sql);
        for value in &page.binds {
            statement = statement.bind(value);
        }
        let rows = statement.fetch_all(&self.pool).await?;
        let mut runs = rows.iter().map(summary_from_row).collect::<Result<Vec<_>, _>>()?;
        if page.ascending {
            runs.reverse();
        }
        Ok(runs)
    }

    async fn search_snippets(&self, words: &[String], runs: &[RunId]) -> Result<Vec<(RunId, String)>, StoreError> {
        if runs.is_empty() || words.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = runs.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(concat!(
            "SELECT run_id, ts_headline('simple', prompt || ' ' || response, plainto_tsquery('simple', $1),",
            " 'StartSel=' || chr(2) || ', StopSel=' || chr(3) || ', MaxWords=18, MinWords=8') AS passage",
            " FROM run_search WHERE run_id = ANY($2) AND doc @@ plainto_tsquery('simple', $1)"
        ))
        .bind(words.join(" "))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((parse_id(row.try_get("run_id")?)?, row.try_get("passage")?))).collect()
    }

    async fn usage_by_model(&self, query: &RunQuery) -> Result<Vec<ModelUsage>, StoreError> {
        let (sql, binds) = codec::usage_by_model(query, Dialect::Postgres);
        let mut statement = sqlx::query(&sql);
        for value in &binds {
            statement = statement.bind(value);
        }
        let rows = statement.fetch_all(&self.pool).await?;
        rows.iter().map(codec::model_usage_from_row).collect()
    }

    async fn run_summary(&self, id: RunId) -> Result<Option<RunSummary>, StoreError> {
        let sql = format!("SELECT {} FROM runs WHERE id = $1", SUMMARY_COLUMNS);
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(summary_from_row).transpose()
    }

    async fn replays(&self, id: RunId) -> Result<Vec<RunId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM runs WHERE replay_of = $1 ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    async fn run_events(&self, id: RunId, after_seq: u64) -> Result<Vec<Event>, StoreError> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq")
                .bind(id.to_string())
                .bind(after)
                .fetch_all(&self.pool)
                .await?;
        bodies.iter().map(|body| parse_event(body)).collect()
    }

    async fn run_logs(&self, id: RunId) -> Result<Vec<LogEntry>, StoreError> {
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM events WHERE run_id = $1 AND kind = 'log' ORDER BY seq")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        let mut logs = Vec::with_capacity(bodies.len());
        for body in &bodies {
            if let Ok(entry) = LogEntry::try_from(&parse_event(body)?) {
                logs.push(entry);
            }
        }
        Ok(logs)
    }

    /// None: in a cluster, runs left in flight belong to their owner until its lease expires,
    /// and are then taken over ([`PgStore::claim_orphans`]), not marked crashed at start.
    async fn interrupted_runs(&self) -> Result<Vec<InterruptedRun>, StoreError> {
        Ok(Vec::new())
    }

    async fn create_batch(&self, batch: NewBatch) -> Result<(), StoreError> {
        let summary = &batch.summary;
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query_scalar(concat!(
            "INSERT INTO batches (id, created_at, model_id, system, max_tokens, temperature, total)",
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq"
        ))
        .bind(summary.id.to_string())
        .bind(timestamp(summary.created_at))
        .bind(&summary.model_id)
        .bind(summary.system.as_deref())
        .bind(i64::from(summary.max_tokens))
        .bind(summary.temperature.map(f64::from))
        .bind(batch.items.len() as i64)
        .fetch_one(&mut *tx)
        .await?;
        // One statement per chunk of items: a 20,000-item batch is a few round trips.
        for (chunk, items) in batch.items.chunks(5_000).enumerate() {
            let first = (chunk * 5_000) as i64;
            let indexes: Vec<i64> = (first..first + items.len() as i64).collect();
            let prompts: Vec<&str> = items.iter().map(|(prompt, _)| prompt.as_str()).collect();
            let variables: Vec<Option<String>> =
                items.iter().map(|(_, values)| values.as_ref().and_then(|v| serde_json::to_string(v).ok())).collect();
            sqlx::query(concat!(
                "INSERT INTO batch_items (batch_seq, idx, prompt, variables)",
                " SELECT $1, * FROM UNNEST($2::int8[], $3::text[], $4::text[])"
            ))
            .bind(seq)
            .bind(&indexes)
            .bind(&prompts)
            .bind(&variables)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn queued_items(&self, limit: u32) -> Result<Vec<QueuedItem>, StoreError> {
        let rows =
            sqlx::query(&format!("{QUEUED_ITEMS} LIMIT $1")).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(queued_item_from_row).collect()
    }

    async fn start_item(&self, batch: BatchId, index: u32, run: RunId) -> Result<bool, StoreError> {
        // Another replica may have started the item with the same run (the idempotency key
        // gave both that run): started either way. Not started only if cancelled meanwhile;
        // the run is linked anyway, so the caller's cancel finds it.
        let started: Option<bool> = sqlx::query_scalar(concat!(
            "UPDATE batch_items SET state = CASE WHEN state = 'Queued' THEN 'Started' ELSE state END,",
            " run_id = COALESCE(run_id, $1)",
            " WHERE batch_seq = (SELECT seq FROM batches WHERE id = $2) AND idx = $3",
            "   AND (run_id IS NULL OR run_id = $1)",
            " RETURNING state = 'Started'"
        ))
        .bind(run.to_string())
        .bind(batch.to_string())
        .bind(i64::from(index))
        .fetch_optional(&self.pool)
        .await?;
        Ok(started.unwrap_or(false))
    }

    async fn cancel_batch(&self, batch: BatchId) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq: Option<i64> = sqlx::query_scalar("UPDATE batches SET cancelled = 1 WHERE id = $1 RETURNING seq")
            .bind(batch.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(seq) = seq else { return Ok(None) };
        let cancelled =
            sqlx::query("UPDATE batch_items SET state = 'Cancelled' WHERE batch_seq = $1 AND state = 'Queued'")
                .bind(seq)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(Some(cancelled))
    }

    async fn requeue_item(&self, item: BatchItemRef, run: RunId) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "UPDATE batch_items SET state = 'Queued', run_id = NULL, round = round + 1",
            " WHERE batch_seq = (SELECT seq FROM batches WHERE id = $1 AND cancelled = 0)",
            "   AND idx = $2 AND run_id = $3 AND state = 'Started'"
        ))
        .bind(item.batch.to_string())
        .bind(i64::from(item.index))
        .bind(run.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn retry_failed_items(&self, batch: BatchId) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM batches WHERE id = $1 FOR UPDATE")
            .bind(batch.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(seq) = seq else { return Ok(None) };
        let requeued = sqlx::query(concat!(
            "UPDATE batch_items SET state = 'Queued', run_id = NULL, round = round + 1",
            " WHERE batch_seq = $1 AND state = 'Started'",
            "   AND run_id IN (SELECT id FROM runs WHERE state IN ('Failed', 'Crashed'))"
        ))
        .bind(seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if requeued > 0 {
            sqlx::query("UPDATE batches SET cancelled = 0 WHERE seq = $1").bind(seq).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(requeued))
    }

    async fn list_batches(&self, limit: u32) -> Result<Vec<BatchSummary>, StoreError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches ORDER BY seq DESC LIMIT $1");
        let rows = sqlx::query(&sql).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        let mut batches = Vec::with_capacity(rows.len());
        for row in &rows {
            batches.push(self.batch_summary(row).await?);
        }
        Ok(batches)
    }

    async fn batch(&self, id: BatchId) -> Result<Option<BatchSummary>, StoreError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1");
        match sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await? {
            Some(row) => Ok(Some(self.batch_summary(&row).await?)),
            None => Ok(None),
        }
    }

    async fn batch_items(&self, id: BatchId, from: u32, limit: u32) -> Result<Vec<BatchItem>, StoreError> {
        let rows = sqlx::query(&format!("{ITEMS} WHERE b.id = $1 AND i.idx >= $2 ORDER BY i.idx LIMIT $3"))
            .bind(id.to_string())
            .bind(i64::from(from))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(item_from_row).collect()
    }
}

impl PgStore {
    /// A batch's summary from its row ([`BATCH_COLUMNS`]), with its items counted by state.
    async fn batch_summary(&self, row: &PgRow) -> Result<BatchSummary, StoreError> {
        let counted = sqlx::query(&format!("{ITEM_COUNTS} WHERE i.batch_seq = $1 GROUP BY s"))
            .bind(row.try_get::<i64, _>("seq")?)
            .fetch_all(&self.pool)
            .await?;
        batch_from_row(row, &counted)
    }
}

/// Inserts events at their run's epoch and keeps the history row current.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[Published],
    epochs: &HashMap<RunId, i64>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut seqs = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    let mut event_epochs = Vec::with_capacity(events.len());
    for stamped in events {
        let event = stamped.event.as_ref();
        ids.push(event.run_id.to_string());
        seqs.push(event.seq as i64);
        kinds.push(event_kind_name(&event.kind));
        bodies.push(stamped.json.as_str());
        event_epochs.push(epochs.get(&event.run_id).copied().unwrap_or(0));
    }
    sqlx::query(concat!(
        "INSERT INTO events (run_id, seq, kind, body, epoch)",
        " SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[])",
        " ON CONFLICT (run_id, seq) DO NOTHING"
    ))
    .bind(&ids)
    .bind(&seqs)
    .bind(&kinds)
    .bind(&bodies)
    .bind(&event_epochs)
    .execute(&mut **tx)
    .await?;
    for stamped in events {
        let event = stamped.event.as_ref();
        match &event.kind {
            EventKind::RunState { state, error } => {
                // The state guard makes a terminal state final in the store too.
                sqlx::query(concat!(
                    "UPDATE runs SET state = $1,",
                    " started_at = CASE WHEN $1 = 'Running' THEN COALESCE(started_at, $2) ELSE started_at END,",
                    " finished_at = CASE WHEN $3 THEN $2 ELSE finished_at END,",
                    " error = COALESCE($4, error)",
                    " WHERE id = $5 AND state IN ('Pending', 'Running')"
                ))
                .bind(state.as_str())
                .bind(timestamp(event.ts))
                .bind(state.is_terminal())
                .bind(error.as_deref())
                .bind(event.run_id.to_string())
                .execute(&mut **tx)
                .await?;
                // A run that ended without a result (failed, cancelled, crashed) keeps what it
                // streamed: searchable too.
                if state.is_terminal() && *state != RunState::Completed {
                    sqlx::query(SEARCH_RESPONSE).bind(event.run_id.to_string()).execute(&mut **tx).await?;
                }
            }
            EventKind::TaskState { task, attempt, .. } if *attempt > 1 => {
                let column = attempts_column(*task);
                sqlx::query(&format!("UPDATE runs SET {column} = GREATEST({column}, $1) WHERE id = $2"))
                    .bind(i64::from(*attempt))
                    .bind(event.run_id.to_string())
                    .execute(&mut **tx)
                    .await?;
            }
            EventKind::ModelResult { usage, .. } => {
                if let Some(usage) = usage {
                    sqlx::query("UPDATE runs SET input_tokens = $1, output_tokens = $2 WHERE id = $3")
                        .bind(i64::from(usage.input_tokens))
                        .bind(i64::from(usage.output_tokens))
                        .bind(event.run_id.to_string())
                        .execute(&mut **tx)
                        .await?;
                }
                sqlx::query(SEARCH_RESPONSE).bind(event.run_id.to_string()).execute(&mut **tx).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Makes the run's response searchable: the text its last attempt's deltas spell, all stored
/// by the time its result is.
const SEARCH_RESPONSE: &str = concat!(
    "UPDATE run_search SET response = COALESCE((SELECT string_agg(d.body::json ->> 'text', '' ORDER BY d.seq)",
    " FROM events d WHERE d.run_id = $1 AND d.kind = 'delta' AND (d.body::json ->> 'attempt')::int = (",
    "  SELECT MAX((m.body::json ->> 'attempt')::int) FROM events m WHERE m.run_id = $1 AND m.kind = 'delta')), '')",
    " WHERE run_id = $1"
);

/// One notification for a committed batch: the runs and their last `seq`, or [`EVERYTHING`]
/// when that would not fit in a payload. Sent inside the transaction, so it is delivered only
/// if the batch commits, and after it.
async fn notify(tx: &mut Transaction<'_, Postgres>, runs: &[(RunId, u64)]) -> Result<(), sqlx::Error> {
    if runs.is_empty() {
        return Ok(());
    }
    let mut payload = String::with_capacity(runs.len() * 48);
    for (id, seq) in runs {
        if !payload.is_empty() {
            payload.push(' ');
        }
        payload.push_str(&format!("{id}:{seq}"));
    }
    if payload.len() > MAX_PAYLOAD {
        payload = EVERYTHING.to_owned();
    }
    sqlx::query("SELECT pg_notify($1, $2)").bind(EVENTS_CHANNEL).bind(payload).execute(&mut **tx).await?;
    Ok(())
}

/// Parses an events notification into `(run, last seq)` pairs; `None` for [`EVERYTHING`] or a
/// payload this version cannot read (both mean: look at every recent run).
pub fn parse_notification(payload: &str) -> Option<Vec<(RunId, u64)>> {
    if payload == EVERYTHING {
        return None;
    }
    payload
        .split(' ')
        .map(|pair| {
            let (id, seq) = pair.split_once(':')?;
            Some((id.parse().ok()?, seq.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_notification_names_each_run_and_its_last_seq() {
        let (a, b) = (RunId(Uuid::from_u128(1)), RunId(Uuid::from_u128(2)));
        let payload = format!("{a}:3 {b}:17");
        assert_eq!(parse_notification(&payload), Some(vec![(a, 3), (b, 17)]));
    }

    #[test]
    fn a_catch_all_or_unreadable_notification_means_look_at_everything() {
        assert_eq!(parse_notification(EVERYTHING), None);
        assert_eq!(parse_notification("not-a-run:3"), None);
        assert_eq!(parse_notification("0193:x"), None);
    }
}
