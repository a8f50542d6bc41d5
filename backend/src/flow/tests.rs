//! The runner's retry, cancel, shutdown and timeout paths, under Tokio's paused clock against a
//! scripted model: each test takes milliseconds however long the waits it checks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Event, EventKind, RunDetail, RunId, RunState, StopReason, TaskName, TaskState, Usage};
use tokio::time::Instant;
use uuid::Uuid;

use super::{FlowSettings, RetryPolicy, RunSpec, Runner};
use crate::bedrock::{CallError, CallTrace, ErrorKind, ModelClient, ModelReply, ModelRequest, TextSink};
use crate::events::Hub;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::store::memory::MemoryStore;
use crate::wire::stamp;

const LOAD_DELAY: Duration = Duration::from_secs(5);
const BEDROCK_DELAY: Duration = Duration::from_secs(10);

/// What the scripted model does on each call, in order; calls past the script hang.
#[derive(Debug, Clone, Copy)]
enum Step {
    Answer(&'static str),
    Fail(ErrorKind),
    /// Never answers: only a cancel or shutdown ends the call.
    Hang,
}

struct ScriptedModel {
    script: Mutex<VecDeque<Step>>,
    /// When each call started, in virtual time.
    calls: Mutex<Vec<Instant>>,
}

impl ScriptedModel {
    fn new(steps: impl IntoIterator<Item = Step>) -> Arc<ScriptedModel> {
        Arc::new(ScriptedModel { script: Mutex::new(steps.into_iter().collect()), calls: Mutex::new(Vec::new()) })
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().expect("calls lock").clone()
    }
}

#[async_trait]
impl ModelClient for ScriptedModel {
    async fn call(&self, _request: &ModelRequest, sink: &mut dyn TextSink) -> Result<ModelReply, CallError> {
        self.calls.lock().expect("calls lock").push(Instant::now());
        let step = self.script.lock().expect("script lock").pop_front().unwrap_or(Step::Hang);
        match step {
            Step::Answer(text) => {
                sink.text(text);
                Ok(ModelReply {
                    text: text.to_owned(),
                    usage: Some(Usage { input_tokens: 3, output_tokens: 2 }),
                    stop_reason: Some(StopReason::EndTurn),
                    latency_ms: Some(1),
                    trace: CallTrace::default(),
                })
            }
            Step::Fail(kind) => {
                Err(CallError { kind, message: format!("scripted {kind}"), trace: CallTrace::default() })
            }
            Step::Hang => std::future::pending().await,
        }
    }
}

struct Harness {
    hub: Arc<Hub>,
    runner: Arc<Runner>,
    journal: Journal,
    _dir: TempDir,
}

/// A directory removed when the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn harness(model: Arc<ScriptedModel>) -> Harness {
    let dir = TempDir(std::env::temp_dir().join(format!("flow-test-{}", Uuid::now_v7())));
    let journal = Journal::open(&dir.0.join("prompts.txt")).expect("journal");
    let hub = Hub::new(Arc::new(MemoryStore::default()));
    let settings = FlowSettings {
        load: RetryPolicy { retries: 2, delay: LOAD_DELAY, jitter: Duration::ZERO },
        bedrock: RetryPolicy { retries: 2, delay: BEDROCK_DELAY, jitter: Duration::ZERO },
        max_concurrent_calls: 4,
    };
    let runner = Runner::new(Arc::clone(&hub), journal.clone(), model, settings, Arc::new(Metrics::default()));
    Harness { hub, runner, journal, _dir: dir }
}

impl Harness {
    /// Accepts a run the way a submission does (journal, then `run_created`) and starts it.
    async fn start(&self) -> RunId {
        let id = RunId(Uuid::now_v7());
        let journal = self.journal.append(id, "hello").await.expect("journal append");
        let created = EventKind::RunCreated {
            prompt: "hello".into(),
            model_id: "scripted".into(),
            system: None,
            max_tokens: 16,
            temperature: None,
            max_attempts: 3,
        };
        self.hub.register(stamp(Arc::new(Event { run_id: id, seq: 1, ts: chrono::Utc::now(), kind: created })));
        let spec =
            RunSpec { id, journal, model_id: "scripted".into(), system: None, max_tokens: 16, temperature: None };
        self.runner.start(spec);
        id
    }

    /// Waits until the run's attempt at `task` reaches `state`.
    async fn until(&self, id: RunId, task: TaskName, state: TaskState) {
        let mut live = self.hub.subscribe(None).live;
        loop {
            let reached = self.detail(id).tasks.iter().any(|t| t.name == task && t.state == state);
            if reached {
                return;
            }
            let _ = live.recv().await;
        }
    }

    /// Waits for the run's end and returns its final picture.
    async fn finished(&self, id: RunId) -> RunDetail {
        let mut live = self.hub.subscribe(None).live;
        while !self.detail(id).state.is_terminal() {
            let _ = live.recv().await;
        }
        self.detail(id)
    }

    fn detail(&self, id: RunId) -> RunDetail {
        self.hub.detail(id).expect("the run is in memory")
    }
}

fn attempts_of(detail: &RunDetail, task: TaskName) -> Vec<TaskState> {
    let task = detail.tasks.iter().find(|t| t.name == task).expect("task");
    task.attempts.iter().map(|a| a.state).collect()
}

#[tokio::test(start_paused = true)]
async fn a_throttled_call_is_retried_after_the_bedrock_delay_until_it_answers() {
    let model =
        ScriptedModel::new([Step::Fail(ErrorKind::Throttled), Step::Fail(ErrorKind::Throttled), Step::Answer("hi")]);
    let h = harness(Arc::clone(&model));
    let id = h.start().await;

    let detail = h.finished(id).await;

    assert_eq!(detail.state, RunState::Completed);
    assert_eq!(detail.response.as_deref(), Some("hi"));
    assert_eq!(
        attempts_of(&detail, TaskName::CallBedrock),
        [TaskState::AwaitingRetry, TaskState::AwaitingRetry, TaskState::Completed]
    );
    let calls = model.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1] - calls[0], BEDROCK_DELAY);
    assert_eq!(calls[2] - calls[1], BEDROCK_DELAY);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_counts_as_a_retryable_timeout() {
    let model = ScriptedModel::new([Step::Fail(ErrorKind::StreamIdle), Step::Answer("late")]);
    let h = harness(Arc::clone(&model));
    let id = h.start().await;

    let detail = h.finished(id).await;

    assert_eq!(detail.state, RunState::Completed);
    assert_eq!(attempts_of(&detail, TaskName::CallBedrock), [TaskState::AwaitingRetry, TaskState::Completed]);
}

#[tokio::test(start_paused = true)]
async fn a_validation_error_fails_the_run_at_once_without_waiting() {
    let model = ScriptedModel::new([Step::Fail(ErrorKind::Validation)]);
    let h = harness(Arc::clone(&model));
    let id = h.start().await;

    let detail = h.finished(id).await;

    assert_eq!(detail.state, RunState::Failed);
    assert_eq!(attempts_of(&detail, TaskName::CallBedrock), [TaskState::Failed]);
    let calls = model.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].elapsed() < BEDROCK_DELAY, "no retry wait: {:?}", calls[0].elapsed());
    let error = detail.error.expect("a failed run says why");
    assert!(error.contains("after 1 attempt(s)") && error.contains("scripted validation"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_the_policy_s_last_attempt() {
    let model = ScriptedModel::new([Step::Fail(ErrorKind::InternalServer); 3]);
    let h = harness(Arc::clone(&model));
    let id = h.start().await;

    let detail = h.finished(id).await;

    assert_eq!(detail.state, RunState::Failed);
    assert_eq!(model.calls().len(), 3, "2 retries after the first attempt");
    assert_eq!(
        attempts_of(&detail, TaskName::CallBedrock),
        [TaskState::AwaitingRetry, TaskState::AwaitingRetry, TaskState::Failed]
    );
    assert!(detail.error.as_deref().is_some_and(|e| e.contains("after 3 attempt(s)")));
}

#[tokio::test(start_paused = true)]
async fn cancelling_during_the_retry_countdown_ends_the_run_without_another_call() {
    let model = ScriptedModel::new([Step::Fail(ErrorKind::Throttled), Step::Answer("never sent")]);
    let h = harness(Arc::clone(&model));
    let id = h.start().await;
    h.until(id, TaskName::CallBedrock, TaskState::AwaitingRetry).await;

    assert_eq!(h.runner.cancel(id), super::CancelOutcome::Cancelling);
    let detail = h.finished(id).await;

    assert_eq!(detail.state, RunState::Cancelled);
    assert_eq!(model.calls().len(), 1, "the retry never started");
    let task = detail.tasks.iter().find(|t| t.name == TaskName::CallBedrock).expect("task");
    assert_eq!(task.state, TaskState::Cancelled);
    assert_eq!(h.runner.cancel(id), super::CancelOutcome::NotRunning, "a finished run cannot be cancelled");
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_call_in_progress_ends_the_run_cancelled() {
    let model = ScriptedModel::new([Step::Hang]);
    let h = harness(Arc::clone(&model));
    let id = h.start().await;
    h.until(id, TaskName::CallBedrock, TaskState::Running).await;

    h.runner.cancel(id);
    let detail = h.finished(id).await;

    assert_eq!(detail.state, RunState::Cancelled);
    assert_eq!(detail.error.as_deref(), Some("cancelled by a user"));
    assert_eq!(attempts_of(&detail, TaskName::CallBedrock), [TaskState::Cancelled]);
    assert_eq!(h.runner.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_out_its_grace_then_interrupts_runs_as_crashed() {
    let model = ScriptedModel::new([Step::Hang]);
    let h = harness(Arc::clone(&model));
    let id = h.start().await;
    h.until(id, TaskName::CallBedrock, TaskState::Running).await;
    let grace = Duration::from_secs(7);
    let started = Instant::now();

    h.runner.shutdown(grace).await;

    assert_eq!(started.elapsed(), grace, "the run got its whole grace period and no more");
    let detail = h.detail(id);
    assert_eq!(detail.state, RunState::Crashed);
    assert!(detail.error.as_deref().is_some_and(|e| e.starts_with("interrupted")), "{:?}", detail.error);
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_as_soon_as_runs_finish_within_the_grace() {
    let model = ScriptedModel::new([Step::Fail(ErrorKind::Throttled), Step::Answer("done")]);
    let h = harness(Arc::clone(&model));
    let id = h.start().await;
    let started = Instant::now();

    h.runner.shutdown(Duration::from_secs(60)).await;

    assert_eq!(h.detail(id).state, RunState::Completed);
    assert!(started.elapsed() < Duration::from_secs(60), "returned after {:?}", started.elapsed());
    assert!(started.elapsed() >= BEDROCK_DELAY, "the retry wait was honoured");
}
