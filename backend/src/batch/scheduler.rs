//! Starts queued batch items as runs, per model no more at once than its [`Adaptive`] limit,
//! and learns each limit from the runs' own events: a `call_bedrock` attempt throttled (429)
//! cuts it, one that completed grows it.
//!
//! An item becomes a run through the ordinary submission path with the idempotency key
//! `batch:{batch}:{index}`, and only then is it marked started. A crash between the two leaves
//! the item queued; starting it again after the restart finds the run the key already made, so
//! no item ever runs twice.
//!
//! A run that failed because its last attempt was throttled did not fail for anything in its
//! item: the scheduler queues the item again for a new run (up to [`MAX_ROUNDS`] times), so a
//! batch that meets its quota ends with its items answered, not failed for lack of retries.
//!
//! With several replicas the quota is shared: about once a second each scheduler tells the
//! others, through [`QuotaPeers`], how many of its calls got in within the minute and the
//! budget it learnt, and hears theirs ([`Adaptive::heard_from_peers`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{EventKind, ModelPace, RunId, RunState, SubmitRun, TaskName, TaskState};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::limiter::Adaptive;
use crate::events::Hub;
use crate::flow::RetryPacer;
use crate::runs::Runs;
use crate::store::{BatchItemRef, QueuedItem, QuotaUse, Store};
use crate::submission::{Submissions, SubmitError};

/// How often the queue is looked at when nothing else wakes the scheduler (a batch stored by
/// another process, a failed attempt to start an item).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Runs an item may have in all before a throttled failure stays a failure: a quota that lets
/// nothing in must not make the scheduler start runs forever.
pub const MAX_ROUNDS: u32 = 4;
/// How often a retry held for its model's quota looks again, on average.
const RETRY_POLL: Duration = Duration::from_millis(250);
/// How often the replicas tell each other how they use each model's quota.
const PEER_EVERY: Duration = Duration::from_secs(1);

/// The other replicas sharing the account's quotas (PostgreSQL mode).
#[async_trait::async_trait]
pub trait QuotaPeers: Send + Sync {
    /// Publishes this replica's use of each model's quota; returns, per model, the calls the
    /// other live replicas got in within their last minute (summed) and the lowest budget they
    /// learnt.
    async fn exchange(&self, mine: &[QuotaUse]) -> Result<Vec<QuotaUse>, crate::store::StoreError>;
}

/// A batch run this process started and follows.
struct InFlight {
    model: String,
    item: BatchItemRef,
    /// Whether its latest `call_bedrock` attempt was throttled.
    throttled: bool,
}

pub struct Scheduler {
    store: Arc<dyn Store>,
    submissions: Arc<Submissions>,
    runs: Arc<Runs>,
    /// Most batch runs in flight over all models, so single runs always find room.
    max_total: usize,
    peers: Option<Arc<dyn QuotaPeers>>,
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    models: HashMap<String, Adaptive>,
    /// Batch runs started by this process and not ended yet, with their model.
    in_flight: HashMap<RunId, InFlight>,
    /// Items whose run failed on a throttle, to queue again.
    requeue: Vec<(BatchItemRef, RunId)>,
    /// Items started by this process, and those of them that ended, by run state.
    started: u64,
    ended: BTreeMap<&'static str, u64>,
    /// When the peers were last told and heard.
    exchanged: Option<Instant>,
}

impl State {
    fn pace(&self, model_id: &str) -> ModelPace {
        let in_flight = self.in_flight.values().filter(|run| run.model == model_id).count();
        match self.models.get(model_id) {
            Some(limit) => {
                ModelPace { limit: limit.limit(), in_flight, throttles: limit.throttles(), per_minute: limit.budget() }
            }
            None => ModelPace { in_flight, ..ModelPace::default() },
        }
    }
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
        peers: Option<Arc<dyn QuotaPeers>>,
    ) -> Arc<Scheduler> {
        let max_total = max_total.max(1);
        Arc::new(Scheduler { store, submissions, runs, max_total, peers, state: Mutex::default(), wake: Notify::new() })
    }

    /// Looks at the queue now (a batch was just stored).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The pace of each model that has had batch calls.
    pub fn pace(&self, model_id: &str) -> ModelPace {
        self.state().pace(model_id)
    }

    pub fn activity(&self) -> Activity {
        let state = self.state();
        let mut models: Vec<(String, ModelPace)> =
            state.models.keys().map(|model| (model.clone(), state.pace(model))).collect();
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
            self.exchange_with_peers().await;
            self.fill(&closing).await;
            // Events only teach the limits: the queue is read again when woken (a batch stored,
            // a followed run ended) or idle, not once per event of every run.
            let idle = tokio::time::sleep(IDLE_POLL);
            tokio::pin!(idle);
            loop {
                tokio::select! {
                    () = closing.cancelled() => return,
                    () = self.wake.notified() => break,
                    () = &mut idle => break,
                    received = live.recv() => match received {
                        Ok(published) => self.learn(&published.event.kind, published.event.run_id),
                        // Missed events may have ended runs: forget those whose end was missed
                        // once the hub no longer holds them.
                        Err(RecvError::Lagged(_)) => {
                            self.state().in_flight.retain(|id, _| hub.holds(*id));
                            break;
                        }
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        }
    }

    fn learn(&self, kind: &EventKind, run: RunId) {
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(followed) = state.in_flight.get_mut(&run) else { return };
        match kind {
            EventKind::TaskState { task: TaskName::CallBedrock, state: attempt, outcome, .. } => {
                let limit = state.models.entry(followed.model.clone()).or_insert_with(|| self.new_limit());
                let now = Instant::now();
                followed.throttled = false;
                match attempt {
                    TaskState::Completed => limit.succeeded(),
                    TaskState::AwaitingRetry | TaskState::Failed if outcome.http_status == Some(429) => {
                        limit.throttled(now);
                        followed.throttled = true;
                    }
                    _ => {}
                }
            }
            EventKind::RunState { state: run_state, .. } if run_state.is_terminal() => {
                drop(guard);
                self.ended(run, *run_state);
            }
            _ => {}
        }
    }

    /// A followed run ended: its item is queued again if a throttle failed it.
    fn ended(&self, run: RunId, run_state: RunState) {
        let mut state = self.state();
        let Some(ended) = state.in_flight.remove(&run) else { return };
        if run_state == RunState::Failed && ended.throttled && ended.item.round + 1 < MAX_ROUNDS {
            state.requeue.push((ended.item, run));
        }
        *state.ended.entry(run_state.as_str()).or_default() += 1;
        drop(state);
        self.wake.notify_one();
    }

    /// A run can end before it is followed (its calls failing fast, retries a few milliseconds
    /// apart): its events went by while it was not in `in_flight`, so they are learnt now, in
    /// order, as if heard live. A run still going is heard live from here on; one whose end
    /// the live feed still holds is not learnt twice, as it is no longer followed by then.
    async fn follow_up(&self, run: RunId) {
        let events = match self.runs.events_after(run, 0).await {
            Ok(Some(events)) => events,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%run, error = %crate::causes::chain(&error), "cannot read a batch run just started");
                return;
            }
        };
        let terminal = |kind: &EventKind| matches!(kind, EventKind::RunState { state, .. } if state.is_terminal());
        if events.iter().any(|published| terminal(&published.event.kind)) {
            for published in &events {
                self.learn(&published.event.kind, run);
            }
        }
    }

    /// Tells the other replicas how this one uses each model's quota and hears theirs, at most
    /// once per [`PEER_EVERY`]. Unheard, a replica keeps what it last heard: its own throttles
    /// still hold it back.
    async fn exchange_with_peers(&self) {
        let Some(peers) = &self.peers else { return };
        let now = Instant::now();
        let mine: Vec<QuotaUse> = {
            let mut state = self.state();
            if state.exchanged.is_some_and(|at| now.duration_since(at) < PEER_EVERY) {
                return;
            }
            state.exchanged = Some(now);
            state
                .models
                .iter_mut()
                .map(|(model, limit)| {
                    let (admitted, per_minute) = limit.share(now);
                    QuotaUse { model_id: model.clone(), admitted, per_minute }
                })
                .collect()
        };
        let theirs = match peers.exchange(&mine).await {
            Ok(theirs) => theirs,
            Err(error) => {
                tracing::warn!(error = %crate::causes::chain(&error), "cannot exchange quota use with the other replicas");
                return;
            }
        };
        let mut state = self.state();
        let mut heard: HashMap<String, QuotaUse> =
            theirs.into_iter().map(|peer| (peer.model_id.clone(), peer)).collect();
        for (model, limit) in &mut state.models {
            let peer = heard.remove(model);
            limit.heard_from_peers(peer.as_ref().map_or(0, |p| p.admitted), peer.and_then(|p| p.per_minute), now);
        }
        for (model, peer) in heard {
            let mut limit = self.new_limit();
            limit.heard_from_peers(peer.admitted, peer.per_minute, now);
            state.models.insert(model, limit);
        }
    }

    /// Starts queued items while their models and the total have room.
    async fn fill(&self, closing: &CancellationToken) {
        let requeue = std::mem::take(&mut self.state().requeue);
        for (item, run) in requeue {
            if let Err(error) = self.store.requeue_item(item, run).await {
                tracing::warn!(batch = %item.batch, item = item.index, error = %crate::causes::chain(&error),
                    "a batch item whose run was throttled out could not be queued again; it stays failed");
            }
        }
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
            if !self.take_room(&item.model_id) {
                continue;
            }
            match self.start(&item).await {
                // An item started before a crash may have finished meanwhile: nothing to follow.
                Ok((run, ended)) => {
                    {
                        let mut state = self.state();
                        state.started += 1;
                        if ended {
                            continue;
                        }
                        state
                            .in_flight
                            .insert(run, InFlight { model: item.model_id.clone(), item: item.item, throttled: false });
                    }
                    self.follow_up(run).await;
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

    /// A model's limit, shared with the other replicas when there are any.
    fn new_limit(&self) -> Adaptive {
        let limit = Adaptive::new(self.max_total);
        if self.peers.is_some() { limit.shared() } else { limit }
    }

    fn take_room(&self, model_id: &str) -> bool {
        let mut state = self.state();
        if state.in_flight.len() >= self.max_total {
            return false;
        }
        let in_flight = state.in_flight.values().filter(|run| run.model == model_id).count();
        let limit = state.models.entry(model_id.to_owned()).or_insert_with(|| self.new_limit());
        let now = Instant::now();
        // The room is taken as it is found: the first attempt counts against the minute now,
        // not when its run reports it.
        let room = in_flight < limit.limit() && limit.within_budget(now);
        if room {
            limit.attempt_started(now);
        }
        room
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

#[async_trait::async_trait]
impl RetryPacer for Scheduler {
    async fn ready(&self, model_id: &str) {
        loop {
            {
                let mut state = self.state();
                let limit = state.models.entry(model_id.to_owned()).or_insert_with(|| self.new_limit());
                let now = Instant::now();
                if limit.within_budget(now) {
                    limit.attempt_started(now);
                    return;
                }
            }
            // Jittered, so retries waiting together do not all look at the same moment.
            tokio::time::sleep(RETRY_POLL.mul_f64(0.5 + fastrand::f64())).await;
        }
    }
}
