//! The flow engine: runs `load_prompt_file` then `call_bedrock` for each run, with retries.
//!
//! A run is a Tokio task ([`Runner::start`]) inside a `run` tracing span; each attempt runs in
//! a `task` span, so every log line is routed to the run's event stream with its task and
//! attempt (see [`crate::telemetry`]). Every state change is an event published through the
//! [`Hub`]; the states themselves, and their fold, live in `common`. A run's terminal state is
//! published exactly once, by the code path that ends [`Runner::execute`], and the hub refuses
//! anything after it.

mod policy;
mod tasks;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::{AttemptOutcome, BatchId, EventKind, RunId, RunState, TaskName, TaskState};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use crate::bedrock::ModelClient;
use crate::causes::chain;
use crate::events::Hub;
use crate::journal::{Journal, RecordRef};
use crate::metrics::Metrics;

pub use policy::RetryPolicy;

/// Why runs (and their attempts) cut short by a shutdown ended.
const INTERRUPTED: &str = "interrupted: the server shut down before the run finished";

/// Retry policies of the two tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSettings {
    /// Policy of `load_prompt_file`.
    pub load: RetryPolicy,
    /// Policy of `call_bedrock`.
    pub bedrock: RetryPolicy,
    /// Most Bedrock calls in progress at once, across all runs; further calls wait their turn.
    pub max_concurrent_calls: usize,
}

impl FlowSettings {
    /// The policy of one task.
    pub fn policy(&self, task: TaskName) -> &RetryPolicy {
        match task {
            TaskName::LoadPromptFile => &self.load,
            TaskName::CallBedrock => &self.bedrock,
        }
    }

    /// Attempts a task may make; the same for both tasks, since `--retries` sets both.
    pub fn max_attempts(&self) -> u32 {
        self.load.max_attempts().max(self.bedrock.max_attempts())
    }
}

/// What a run needs to execute; the prompt itself comes back from the journal.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub id: RunId,
    /// Where `load_prompt_file` finds the prompt.
    pub journal: RecordRef,
    pub model_id: String,
    pub system: Option<String>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    /// The batch the run is an item of: its `call_bedrock` retries wait for the [`RetryPacer`].
    pub batch_id: Option<BatchId>,
}

/// Holds a batch run's `call_bedrock` retries until its model's quota has room. The batch
/// scheduler learns the quota; without this, a run throttled as the quota filled would spend
/// its retries within a minute that has no room left, and fail.
#[async_trait::async_trait]
pub trait RetryPacer: Send + Sync {
    async fn ready(&self, model_id: &str);
}

/// Where a run starts executing: from the beginning, or, for a run taken over from a replica
/// that died, at the attempt that comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeAt {
    Start,
    /// At attempt `attempt` of `task`, every task before it completed; not before `not_before`
    /// (the retry time the previous owner had set).
    Attempt {
        task: TaskName,
        attempt: u32,
        not_before: Option<chrono::DateTime<Utc>>,
    },
}

/// A failed attempt, as a task reports it.
#[derive(Debug, Clone)]
pub struct AttemptFailure {
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// A short kind for metrics (`throttled`, `io`, ...).
    pub kind: &'static str,
    /// HTTP details, for `call_bedrock`.
    pub outcome: AttemptOutcome,
}

/// How a task ended without a result.
enum TaskEnd {
    Failed(String),
    /// Stopped by a user's cancel.
    Cancelled,
    /// Stopped by the server shutting down.
    Interrupted,
}

/// What [`Runner::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run was in flight and is being cancelled.
    Cancelling,
    /// The run is not in flight here.
    NotRunning,
}

/// Starts, tracks and cancels flow runs.
pub struct Runner {
    hub: Arc<Hub>,
    journal: Journal,
    model: Arc<dyn ModelClient>,
    settings: FlowSettings,
    metrics: Arc<Metrics>,
    /// Cancellation handles of runs in flight. A std mutex: held for a map operation only.
    active: Mutex<HashMap<RunId, CancellationToken>>,
    tracker: TaskTracker,
    /// Bounds concurrent Bedrock calls: each costs money, an open connection and tens of KB
    /// of SDK state, and Bedrock throttles far below thousands of concurrent calls anyway.
    call_slots: Arc<tokio::sync::Semaphore>,
    /// Set at shutdown, so runs cut short end `Crashed` ("interrupted") rather than `Cancelled`.
    shutting_down: AtomicBool,
    /// Set once the batch scheduler exists, which is built after the runner it submits to.
    /// Weak: the scheduler holds the runner, through the runs it submits.
    pacer: std::sync::OnceLock<std::sync::Weak<dyn RetryPacer>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Runner {
    /// Creates a runner that executes runs against `model`.
    pub fn new(
        hub: Arc<Hub>,
        journal: Journal,
        model: Arc<dyn ModelClient>,
        settings: FlowSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Runner> {
        Arc::new(Runner {
            hub,
            journal,
            model,
            settings,
            metrics,
            active: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            call_slots: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_calls.max(1))),
            shutting_down: AtomicBool::new(false),
            pacer: std::sync::OnceLock::new(),
        })
    }

    /// Paces the `call_bedrock` retries of batch runs with `pacer` from now on.
    pub fn pace_batch_retries(&self, pacer: std::sync::Weak<dyn RetryPacer>) {
        let _ = self.pacer.set(pacer);
    }

    pub fn settings(&self) -> &FlowSettings {
        &self.settings
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, CancellationToken>> {
        self.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many runs are in flight.
    pub fn in_flight(&self) -> usize {
        self.active().len()
    }

    /// The runs in flight here.
    pub fn running(&self) -> Vec<RunId> {
        self.active().keys().copied().collect()
    }

    /// Waits up to `grace` for every run in flight to end, accepting no new ones; whether all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await.is_ok()
    }

    /// Starts executing an accepted run in the background. `held` (an admission permit) is
    /// kept until the run ends, so whoever admitted the run counts it as in flight till then.
    pub fn start<H: Send + 'static>(self: &Arc<Self>, spec: RunSpec, held: H) {
        self.start_at(spec, ResumeAt::Start, held);
    }

    /// Starts executing a run at `at`: [`Runner::start`] for a run taken over mid-way.
    pub fn start_at<H: Send + 'static>(self: &Arc<Self>, spec: RunSpec, at: ResumeAt, held: H) {
        let token = CancellationToken::new();
        self.active().insert(spec.id, token.clone());
        let runner = Arc::clone(self);
        self.tracker.spawn(async move {
            runner.execute(spec, at, token).await;
            drop(held);
        });
    }

    /// Stops executing a run another replica now owns, without a word: the hub refuses every
    /// event this server would still publish for it.
    pub fn abandon(&self, id: RunId) {
        if let Some(token) = self.active().remove(&id) {
            token.cancel();
        }
    }

    /// Asks an in-flight run to stop; it ends `Cancelled` as soon as its current step notices.
    pub fn cancel(&self, id: RunId) -> CancelOutcome {
        match self.active().get(&id) {
            Some(token) => {
                token.cancel();
                CancelOutcome::Cancelling
            }
            None => CancelOutcome::NotRunning,
        }
    }

    /// Stops accepting work and waits up to `grace` for runs in flight; the rest are
    /// interrupted and end `Crashed` with the reason.
    pub async fn shutdown(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            self.shutting_down.store(true, Ordering::SeqCst);
            let tokens: Vec<_> = self.active().values().cloned().collect();
            warn!(
                runs = tokens.len(),
                grace_secs = grace.as_secs_f32(),
                "interrupting runs still in flight at shutdown"
            );
            for token in tokens {
                token.cancel();
            }
            self.tracker.wait().await;
        }
    }

    /// Executes one run to its terminal state.
    async fn execute(self: Arc<Self>, spec: RunSpec, at: ResumeAt, cancel: CancellationToken) {
        let id = spec.id;
        let span = info_span!("run", run_id = %id, hub = self.hub.id());
        async {
            self.metrics.run_started();
            if at == ResumeAt::Start {
                self.hub.publish(id, EventKind::RunState { state: RunState::Running, error: None });
                info!(model_id = %spec.model_id, "flow run started");
            } else {
                info!(model_id = %spec.model_id, "flow run resumed on this replica");
            }
            let (state, error) = match self.run_tasks(&spec, at, &cancel).await {
                Ok(()) => {
                    info!("flow run completed");
                    (RunState::Completed, None)
                }
                Err(TaskEnd::Failed(message)) => {
                    error!(error = %message, "flow run failed");
                    (RunState::Failed, Some(message))
                }
                Err(TaskEnd::Interrupted) => {
                    warn!("{INTERRUPTED}");
                    (RunState::Crashed, Some(INTERRUPTED.to_owned()))
                }
                Err(TaskEnd::Cancelled) => {
                    info!("flow run cancelled");
                    (RunState::Cancelled, Some("cancelled by a user".to_owned()))
                }
            };
            // No longer cancellable once its outcome is decided: a cancel from now on is told
            // the run already ended (409), never that it is being cancelled.
            self.active().remove(&id);
            self.hub.publish(id, EventKind::RunState { state, error });
            self.metrics.run_finished(state);
        }
        .instrument(span)
        .await;
    }

    async fn run_tasks(&self, spec: &RunSpec, at: ResumeAt, cancel: &CancellationToken) -> Result<(), TaskEnd> {
        let (call_from, not_before) = match at {
            ResumeAt::Attempt { task: TaskName::CallBedrock, attempt, not_before } => (attempt, not_before),
            ResumeAt::Start | ResumeAt::Attempt { task: TaskName::LoadPromptFile, .. } => (1, None),
        };
        let prompt = if let ResumeAt::Attempt { task: TaskName::CallBedrock, .. } = at {
            // `load_prompt_file` completed on the replica that started the run.
            self.journal.read(spec.id, spec.journal).await.map_err(|e| TaskEnd::Failed(chain(&e)))?
        } else {
            let (load_from, load_not_before) = match at {
                ResumeAt::Attempt { attempt, not_before, .. } => (attempt, not_before),
                ResumeAt::Start => (1, None),
            };
            let loaded = self
                .run_task(spec.id, TaskName::LoadPromptFile, (load_from, load_not_before), cancel, |_| {
                    self.load_prompt_file(spec)
                })
                .await;
            match loaded {
                Ok(prompt) => prompt,
                Err(end) => {
                    self.not_run(spec.id, TaskName::CallBedrock, &end);
                    return Err(end);
                }
            }
        };
        let request = tasks::model_request(spec, prompt);
        let request = &request;
        let pacer = self.pacer.get().filter(|_| spec.batch_id.is_some()).and_then(std::sync::Weak::upgrade);
        let pacer = pacer.as_deref();
        self.run_task(spec.id, TaskName::CallBedrock, (call_from, not_before), cancel, |attempt| async move {
            if let Some(pacer) = pacer.filter(|_| attempt > 1) {
                pacer.ready(&spec.model_id).await;
            }
            self.call_bedrock(spec.id, request, attempt).await
        })
        .await
    }

    /// How an attempt cut short by a stop ends, decided once so the attempt, its task and the
    /// run agree: `Cancelled` when a user cancelled the run; `Failed` ("interrupted") at
    /// shutdown, where the run ends `Crashed`.
    fn stopped(&self) -> (TaskState, AttemptOutcome, TaskEnd) {
        if self.shutting_down.load(Ordering::SeqCst) {
            let error = Some(INTERRUPTED.to_owned());
            let outcome = AttemptOutcome { error, retryable: Some(false), ..AttemptOutcome::default() };
            (TaskState::Failed, outcome, TaskEnd::Interrupted)
        } else {
            (TaskState::Cancelled, AttemptOutcome::default(), TaskEnd::Cancelled)
        }
    }

    /// Ends a task that will never start, saying why, so a finished run has no task left
    /// `Pending`: `Cancelled` on a cancelled run, `Failed` otherwise.
    fn not_run(&self, run_id: RunId, task: TaskName, end: &TaskEnd) {
        let (state, why) = match end {
            TaskEnd::Cancelled => (TaskState::Cancelled, "not run: the run was cancelled first".to_owned()),
            TaskEnd::Interrupted => (TaskState::Failed, "not run: the server shut down first".to_owned()),
            TaskEnd::Failed(_) => (TaskState::Failed, format!("not run: {} failed", TaskName::LoadPromptFile)),
        };
        let outcome = AttemptOutcome { error: Some(why), ..AttemptOutcome::default() };
        self.hub.publish(run_id, EventKind::TaskState { task, attempt: 0, state, outcome });
    }

    /// Runs a task's attempts under its retry policy, from attempt `first` (not before its
    /// time, if given), until one succeeds, the policy gives up, or the run is cancelled.
    async fn run_task<T, F, Fut>(
        &self,
        run_id: RunId,
        task: TaskName,
        (first, not_before): (u32, Option<chrono::DateTime<Utc>>),
        cancel: &CancellationToken,
        mut attempt_once: F,
    ) -> Result<T, TaskEnd>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<(T, AttemptOutcome), AttemptFailure>>,
    {
        let policy = *self.settings.policy(task);
        let max = policy.max_attempts();
        let mut attempt = first.max(1);
        if let Some(wait) = not_before.and_then(|at| (at - Utc::now()).to_std().ok()) {
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    let (state, outcome, end) = self.stopped();
                    self.hub.publish(run_id, EventKind::TaskState { task, attempt: attempt - 1, state, outcome });
                    return Err(end);
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
        loop {
            let span = info_span!("task", task = task.as_str(), attempt);
            let publish =
                |state, outcome| self.hub.publish(run_id, EventKind::TaskState { task, attempt, state, outcome });
            publish(TaskState::Running, AttemptOutcome::default());
            let result = async {
                info!("{task} attempt {attempt} of {max} started");
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => None,
                    result = attempt_once(attempt) => Some(result),
                }
            }
            .instrument(span.clone())
            .await;
            self.metrics.attempt_finished(task, result.as_ref().and_then(|r| r.as_ref().err()).map(|f| f.kind));
            let failure = match result {
                None => {
                    span.in_scope(|| info!("{task} cancelled"));
                    let (state, outcome, end) = self.stopped();
                    publish(state, outcome);
                    return Err(end);
                }
                Some(Ok((value, outcome))) => {
                    span.in_scope(|| info!("{task} completed"));
                    publish(TaskState::Completed, outcome);
                    return Ok(value);
                }
                Some(Err(failure)) => failure,
            };
            let mut outcome = failure.outcome;
            outcome.error = Some(failure.message.clone());
            outcome.retryable = Some(failure.retryable);
            let Some(delay) = policy.after_failure(attempt, failure.retryable, fastrand::f64()) else {
                let why = if failure.retryable { "no attempts left" } else { "not retryable" };
                span.in_scope(|| error!(error = %failure.message, "{task} attempt {attempt} of {max} failed ({why})"));
                publish(TaskState::Failed, outcome);
                return Err(TaskEnd::Failed(format!("{task} failed after {attempt} attempt(s): {}", failure.message)));
            };
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            outcome.retry_delay_ms = Some(delay_ms);
            outcome.retry_at = chrono::Duration::from_std(delay).ok().map(|d| Utc::now() + d);
            span.in_scope(|| {
                warn!(error = %failure.message, "{task} attempt {attempt} of {max} failed; retrying in {:.1} s", delay.as_secs_f64());
            });
            self.metrics.retry_scheduled(task);
            publish(TaskState::AwaitingRetry, outcome);
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    span.in_scope(|| info!("{task} cancelled while waiting to retry"));
                    let (state, outcome, end) = self.stopped();
                    publish(state, outcome);
                    return Err(end);
                }
                () = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests;
