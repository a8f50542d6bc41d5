//! Starts queued batch items as runs, per model no more at once than its [`Adaptive`] limit,
//! and learns each limit from the runs' own events: a `call_bedrock` attempt throttled (429)
//! cuts it, one that completed grows it.
//!
//! An item becomes a run through the ordinary submission path with the idempotency key
//! `batch:{batch}:{index}`, and only then is it marked started. A crash between the two leaves
//! the item queued; starting it again after the restart finds the run the key already made, so
//! no item ever runs twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{EventKind, ModelPace, RunId, SubmitRun, TaskName, TaskState};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::limiter::Adaptive;
use crate::events::Hub;
use crate::runs::Runs;
use crate::store::{QueuedItem, Store};
use crate::submission::{Submissions, SubmitError};

/// How often the queue is looked at when nothing else wakes the scheduler (a batch stored by
/// another process, a failed attempt to start an item).
const IDLE_POLL: Duration = Duration::from_secs(1);

pub struct Scheduler {
    store: Arc<dyn Store>,
    submissions: Arc<Submissions>,
    runs: Arc<Runs>,
    /// Most batch runs in flight over all models, so single runs always find room.
    max_total: usize,
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    models: HashMap<String, Adaptive>,
    /// Batch runs started by this process and not ended yet, with their model.
    in_flight: HashMap<RunId, String>,
    /// Items started by this process, and those of them that ended, by run state.
    started: u64,
    ended: BTreeMap<&'static str, u64>,
}

/// What the scheduler has done since the server started, for the metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// Each model that has had batch calls, with its pace.
    pub models: Vec<(String, ModelPace)>,
    pub started: u64,
    pub ended: BTreeMap<&'static str, u64>,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn Store>,
        submissions: Arc<Submissions>,
        runs: Arc<Runs>,
        max_total: usize,
    ) -> Arc<Scheduler> {
        let max_total = max_total.max(1);
        Arc::new(Scheduler { store, submissions, runs, max_total, state: Mutex::default(), wake: Notify::new() })
    }

    /// Looks at the queue now (a batch was just stored).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The pace of each model that has had batch calls.
    pub fn pace(&self, model_id: &str) -> ModelPace {
        let state = self.state();
        let in_flight = state.in_flight.values().filter(|model| *model == model_id).count();
        state.models.get(model_id).map_or(ModelPace { in_flight, ..ModelPace::default() }, |limit| ModelPace {
            limit: limit.limit(),
            in_flight,
            throttles: limit.throttles(),
        })
    }

    pub fn activity(&self) -> Activity {
        let state = self.state();
        let mut models: Vec<(String, ModelPace)> = state
            .models
            .iter()
            .map(|(model, limit)| {
                let in_flight = state.in_flight.values().filter(|m| *m == model).count();
                (model.clone(), ModelPace { limit: limit.limit(), in_flight, throttles: limit.throttles() })
            })
            .collect();
        models.sort_by(|a, b| a.0.cmp(&b.0));
        Activity { models, started: state.started, ended: state.ended.clone() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs until `closing`: starts items while there is room, and learns from every event.
    pub async fn run(self: Arc<Self>, hub: Arc<Hub>, closing: CancellationToken) {
        let mut live = hub.subscribe(None).live;
        loop {
            // Nothing new starts once shutdown begins: it would only be interrupted.
            if closing.is_cancelled() {
                return;
            }
            self.fill(&closing).await;
            tokio::select! {
                () = closing.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                received = live.recv() => match received {
                    Ok(published) => self.learn(&published.event.kind, published.event.run_id),
                    // Missed events may have ended runs: forget those whose end was missed
                    // once the hub no longer holds them.
                    Err(RecvError::Lagged(_)) => self.state().in_flight.retain(|id, _| hub.holds(*id)),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    fn learn(&self, kind: &EventKind, run: RunId) {
        let mut state = self.state();
        let Some(model) = state.in_flight.get(&run).cloned() else { return };
        match kind {
            EventKind::TaskState { task: TaskName::CallBedrock, state: attempt, outcome, .. } => {
                let limit = state.models.entry(model).or_insert_with(|| Adaptive::new(self.max_total));
                match attempt {
                    TaskState::Completed => limit.succeeded(),
                    TaskState::AwaitingRetry | TaskState::Failed if outcome.http_status == Some(429) => {
                        limit.throttled(Instant::now());
                    }
                    _ => {}
                }
            }
            EventKind::RunState { state: run_state, .. } if run_state.is_terminal() => {
                state.in_flight.remove(&run);
                *state.ended.entry(run_state.as_str()).or_default() += 1;
                drop(state);
                self.wake.notify_one();
            }
            _ => {}
        }
    }

    /// Starts queued items while their models and the total have room.
    async fn fill(&self, closing: &CancellationToken) {
        let room = self.max_total.saturating_sub(self.state().in_flight.len());
        if room == 0 {
            return;
        }
        // Twice the room: items of a model at its limit are passed over for other models'.
        let queued = match self.store.queued_items(u32::try_from(room * 2).unwrap_or(u32::MAX)).await {
            Ok(queued) => queued,
            Err(error) => {
                tracing::warn!(error = %crate::causes::chain(&error), "cannot read the batch queue");
                return;
            }
        };
        for item in queued {
            if closing.is_cancelled() {
                return;
            }
            if !self.has_room(&item.model_id) {
                continue;
            }
            match self.start(&item).await {
                // An item started before a crash may have finished meanwhile: nothing to follow.
                Ok((run, ended)) => {
                    let mut state = self.state();
                    state.started += 1;
                    if !ended {
                        state.in_flight.insert(run, item.model_id.clone());
                    }
                }
                Err(error) => {
                    // The server is full or its storage is down: the item stays queued.
                    tracing::warn!(batch = %item.item.batch, item = item.item.index, error = %crate::causes::chain(&error),
                        "a batch item could not start; it stays queued");
                    return;
                }
            }
        }
    }

    fn has_room(&self, model_id: &str) -> bool {
        let mut state = self.state();
        if state.in_flight.len() >= self.max_total {
            return false;
        }
        let in_flight = state.in_flight.values().filter(|model| *model == model_id).count();
        let max_total = self.max_total;
        in_flight < state.models.entry(model_id.to_owned()).or_insert_with(|| Adaptive::new(max_total)).limit()
    }

    /// Starts the item's run (or finds the one a crash left unrecorded); with whether it ended.
    async fn start(&self, item: &QueuedItem) -> Result<(RunId, bool), StartError> {
        let request = SubmitRun {
            prompt: item.prompt.clone(),
            model_id: Some(item.model_id.clone()),
            system: item.system.clone(),
            max_tokens: Some(item.max_tokens),
            temperature: item.temperature,
            replay_of: None,
        };
        let run = self.submissions.submit_batch_item(request, item.item).await?;
        if !self.store.start_item(item.item.batch, item.item.index, run.id).await? {
            // The batch was cancelled while the run was being made.
            self.runs.cancel(run.id).await?;
        }
        Ok((run.id, run.state.is_terminal()))
    }
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("the run could not be submitted")]
    Submit(#[from] SubmitError),
    #[error("the item could not be marked started")]
    Store(#[from] crate::store::StoreError),
}
