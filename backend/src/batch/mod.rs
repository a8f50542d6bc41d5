//! Batches: a list of prompts (or a template and its rows) run with one set of settings, each
//! item an ordinary run started by the [`Scheduler`] at the pace the model's quota allows.
//!
//! - [`plan`]: the request checked and expanded into items before anything is stored.
//! - [`file`]: the items of an uploaded file (text, JSON Lines, CSV), each with its line.
//! - [`limiter`]: per model, how many calls may be in flight ([`limiter::Adaptive`]).
//! - [`scheduler`]: starts queued items as runs and learns the limits from their events.
//! - [`export`]: a batch's results as JSON Lines or CSV.

pub mod export;
pub mod file;
pub mod limiter;
pub mod plan;
pub mod scheduler;

use std::sync::Arc;

use common::{BatchId, BatchItem, BatchSummary, ModelPace, SubmitBatch};
use uuid::Uuid;

use crate::runs::Runs;
use crate::store::{NewBatch, Store, StoreError};
use crate::submission::Policy;
pub use plan::{BatchLimits, ItemNames, PlanError};
pub use scheduler::Scheduler;

/// Why a batch request failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    File(#[from] file::FileError),
    #[error("the batch store failed")]
    Store(#[from] StoreError),
}

/// The batch use cases the HTTP layer and the CLI call.
pub struct Batches {
    store: Arc<dyn Store>,
    runs: Arc<Runs>,
    scheduler: Arc<Scheduler>,
    limits: BatchLimits,
}

impl Batches {
    pub fn new(store: Arc<dyn Store>, runs: Arc<Runs>, scheduler: Arc<Scheduler>, limits: BatchLimits) -> Batches {
        Batches { store, runs, scheduler, limits }
    }

    /// Checks, stores and queues a batch; its items start as the scheduler finds room.
    pub async fn submit(
        &self,
        request: SubmitBatch,
        policy: &Policy,
        names: ItemNames<'_>,
    ) -> Result<BatchSummary, BatchError> {
        let planned = plan::plan(request, policy, self.limits, names)?;
        let total = planned.items.len() as u64;
        let mut summary = BatchSummary {
            id: BatchId(Uuid::now_v7()),
            created_at: chrono::Utc::now(),
            model_id: planned.model_id,
            system: planned.system,
            max_tokens: planned.max_tokens,
            temperature: planned.temperature,
            total,
            counts: common::BatchCounts::default(),
            cancelled: false,
        };
        summary.counts.queued = total;
        self.store.create_batch(NewBatch { summary: summary.clone(), items: planned.items }).await?;
        self.scheduler.wake();
        Ok(summary)
    }

    /// Like [`Batches::submit`], for the items of an uploaded file; `settings` holds the run
    /// settings and the template, if any. Refusals name the file's line.
    pub async fn submit_file(
        &self,
        format: file::Format,
        bytes: &[u8],
        settings: SubmitBatch,
        policy: &Policy,
    ) -> Result<BatchSummary, BatchError> {
        let read = file::read(format, bytes, settings.template.is_some())?;
        let request = match read.items {
            file::Items::Prompts(prompts) => SubmitBatch { prompts: Some(prompts), ..settings },
            file::Items::Rows(rows) => SubmitBatch { rows: Some(rows), ..settings },
        };
        self.submit(request, policy, ItemNames::Lines(&read.lines)).await
    }

    pub async fn list(&self, limit: u32) -> Result<Vec<BatchSummary>, StoreError> {
        self.store.list_batches(limit).await
    }

    pub async fn get(&self, id: BatchId) -> Result<Option<BatchSummary>, StoreError> {
        self.store.batch(id).await
    }

    pub async fn items(&self, id: BatchId, from: u32, limit: u32) -> Result<Vec<BatchItem>, StoreError> {
        self.store.batch_items(id, from, limit).await
    }

    /// What the scheduler has done since the server started.
    pub fn activity(&self) -> scheduler::Activity {
        self.scheduler.activity()
    }

    /// How the batch's model is paced now.
    pub fn pace(&self, model_id: &str) -> ModelPace {
        self.scheduler.pace(model_id)
    }

    /// Cancels the batch: queued items never start, items in flight are cancelled like any
    /// run. `None` if there is no such batch.
    pub async fn cancel(&self, id: BatchId) -> Result<Option<BatchSummary>, StoreError> {
        if self.store.cancel_batch(id).await?.is_none() {
            return Ok(None);
        }
        let mut from = 0;
        loop {
            let items = self.store.batch_items(id, from, 1_000).await?;
            let Some(last) = items.last() else { break };
            from = last.index + 1;
            for item in items.iter().filter(|item| !item.state.is_final()) {
                if let Some(run) = item.run_id {
                    self.runs.cancel(run).await?;
                }
            }
        }
        self.store.batch(id).await
    }

    /// Queues the items whose run failed or crashed again, each for a new run (its old run stays
    /// in the history). `None` if there is no such batch, else the batch and how many items
    /// were queued.
    pub async fn retry_failed(&self, id: BatchId) -> Result<Option<(BatchSummary, u64)>, StoreError> {
        let Some(requeued) = self.store.retry_failed_items(id).await? else {
            return Ok(None);
        };
        self.scheduler.wake();
        Ok(self.store.batch(id).await?.map(|batch| (batch, requeued)))
    }

    /// The batch's items with their runs, for an export.
    pub async fn results(&self, id: BatchId, from: u32, limit: u32) -> Result<Vec<export::Row>, StoreError> {
        let items = self.store.batch_items(id, from, limit).await?;
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            let run = match item.run_id {
                Some(run) => self.runs.detail(run).await?,
                None => None,
            };
            rows.push(export::Row { item, run });
        }
        Ok(rows)
    }
}
