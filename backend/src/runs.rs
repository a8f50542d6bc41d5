//! Runs already accepted: reading them (history, one run, its logs, its events after a seq)
//! and cancelling them.
//!
//! The one rule every read follows lives in [`Runs::held`]: while a run is held in memory by
//! the hub, memory wins, because the store is written in the background and may not have the
//! latest events yet; otherwise the store has everything. The REST handlers and the WebSocket
//! feed read through here, never through the hub or the store directly.

use std::sync::Arc;

use common::{Catalog, LogEntry, RunDetail, RunId, RunState, RunSummary, RunTotals};

use crate::events::Hub;
use crate::flow::{CancelOutcome, Runner};
use crate::store::{RunQuery, Store, StoreError};
use crate::wire::{Published, stamp};

/// How long a cancel of a run that is no longer running waits for its end to be stored.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// What [`Runs::cancel`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// The run was in flight and is being cancelled; its state as of the request.
    Cancelling(RunSummary),
    /// The run had already ended in this state; nothing changed.
    AlreadyEnded(RunState),
    /// The run's end is decided but not stored yet (storage is slow or failing); nothing changed.
    Finishing,
    NotFound,
}

/// Reads and cancels runs.
pub struct Runs {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    runner: Arc<Runner>,
    /// Prices the runs read: a cost is worked out when read, from the catalog in force, so
    /// replacing the catalog file reprices the history.
    catalog: Arc<Catalog>,
}

impl Runs {
    pub fn new(store: Arc<dyn Store>, hub: Arc<Hub>, runner: Arc<Runner>, catalog: Arc<Catalog>) -> Runs {
        Runs { store, hub, runner, catalog }
    }

    /// The model catalog runs are priced with (and `/api/models` serves).
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub(crate) fn runner(&self) -> &Arc<Runner> {
        &self.runner
    }

    /// The run's events held in memory, when the hub still holds the run. `None` means the
    /// store is the source of truth for it (or it does not exist).
    fn held(&self, id: RunId) -> Option<Vec<Published>> {
        self.hub.events(id)
    }

    /// The run's events with `seq > after_seq`, oldest first; `None` if there is no such run.
    pub async fn events_after(&self, id: RunId, after_seq: u64) -> Result<Option<Vec<Published>>, StoreError> {
        if let Some(events) = self.held(id) {
            let skip = usize::try_from(after_seq).unwrap_or(usize::MAX);
            return Ok(Some(events.into_iter().skip(skip).collect()));
        }
        let events = self.store.run_events(id, after_seq).await?;
        if events.is_empty() && self.store.run_summary(id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(events.into_iter().map(|e| stamp(Arc::new(e))).collect()))
    }

    /// The run's current picture, with the runs made from it.
    pub async fn detail(&self, id: RunId) -> Result<Option<RunDetail>, StoreError> {
        let Some(events) = self.events_after(id, 0).await? else { return Ok(None) };
        let Some(mut detail) = RunDetail::fold(events.iter().map(|p| p.event.as_ref())) else { return Ok(None) };
        detail.replays = self.store.replays(id).await?;
        detail.cost_usd = detail.usage.and_then(|usage| self.catalog.cost(&detail.model_id, usage));
        Ok(Some(detail))
    }

    /// The run's log lines, oldest first; `None` if there is no such run.
    pub async fn logs(&self, id: RunId) -> Result<Option<Vec<LogEntry>>, StoreError> {
        if let Some(events) = self.held(id) {
            return Ok(Some(events.iter().filter_map(|p| LogEntry::try_from(p.event.as_ref()).ok()).collect()));
        }
        if self.store.run_summary(id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.store.run_logs(id).await?))
    }

    /// Runs matching the query, newest first. The store alone answers: memory holds only
    /// events already stored (the hub releases an event once it is committed), and a run's row
    /// moves with its events in the same transaction, so memory knows nothing the store does
    /// not, and a state filter and the rows it returns always agree.
    pub async fn list(&self, query: &RunQuery) -> Result<Vec<RunSummary>, StoreError> {
        let mut runs = self.store.list_runs(query).await?;
        for run in &mut runs {
            run.cost_usd = run.usage.and_then(|usage| self.catalog.cost(&run.model_id, usage));
        }
        if let Some(words) = &query.search {
            // A store may find the passages with the runs (SQLite does); the others are looked up.
            let ids: Vec<RunId> = runs.iter().filter(|run| run.snippet.is_none()).map(|run| run.id).collect();
            let mut snippets: std::collections::HashMap<RunId, String> =
                self.store.search_snippets(words, &ids).await?.into_iter().collect();
            for run in runs.iter_mut().filter(|run| run.snippet.is_none()) {
                run.snippet = snippets.remove(&run.id);
            }
        }
        Ok(runs)
    }

    /// A page of the runs the query selects, in full (newest first), and the cursor of the page
    /// after it (`None` at the end): an export reads the history this way, a page at a time.
    pub async fn details_page(&self, query: &RunQuery) -> Result<(Vec<RunDetail>, Option<RunId>), StoreError> {
        let page = self.list(query).await?;
        let next = (page.len() == query.limit as usize).then(|| page.last().map(|run| run.id)).flatten();
        let mut details = Vec::with_capacity(page.len());
        for run in page {
            // A run listed a moment ago is still there: nothing deletes runs.
            if let Some(detail) = self.detail(run.id).await? {
                details.push(detail);
            }
        }
        Ok((details, next))
    }

    /// What the runs the query's filters select used and cost, over all of them (its limit
    /// and cursors are ignored).
    pub async fn totals(&self, query: &RunQuery) -> Result<RunTotals, StoreError> {
        let mut totals = RunTotals::default();
        for model in self.store.usage_by_model(query).await? {
            totals.runs += model.runs;
            totals.input_tokens += model.input_tokens;
            totals.output_tokens += model.output_tokens;
            let price = self.catalog.find(&model.model_id).and_then(|m| m.price);
            match price {
                // Summed per model, then priced: the same as pricing each run, as cost is linear.
                Some(price) => totals.cost_usd += price.cost_of(model.input_tokens, model.output_tokens),
                None => totals.unpriced_runs += model.with_usage,
            }
        }
        Ok(totals)
    }

    /// Asks an in-flight run to stop, wherever it executes; it ends `Cancelled` as soon as its
    /// current step notices.
    pub async fn cancel(&self, id: RunId) -> Result<Cancel, StoreError> {
        let mut outcome = self.runner.cancel(id);
        // Another replica may execute it: the store relays the request to its owner.
        if outcome == CancelOutcome::NotRunning && !self.hub.owns(id) && self.store.request_cancel(id).await? {
            outcome = CancelOutcome::Cancelling;
        }
        if outcome == CancelOutcome::NotRunning {
            // Its end may be decided but not stored yet: give the store a moment, so the answer
            // names the stored outcome; never one a crash could still take back.
            let _ = tokio::time::timeout(SETTLE, self.hub.flush()).await;
        }
        let Some(detail) = self.detail(id).await? else { return Ok(Cancel::NotFound) };
        Ok(match outcome {
            CancelOutcome::Cancelling => Cancel::Cancelling(detail.summary()),
            CancelOutcome::NotRunning if detail.state.is_terminal() => Cancel::AlreadyEnded(detail.state),
            CancelOutcome::NotRunning => Cancel::Finishing,
        })
    }
}
