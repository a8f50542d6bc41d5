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
    store: Arc<MemoryStore>,
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
    let store = Arc::new(MemoryStore::default());
    let hub = Hub::new(Arc::clone(&store) as Arc<dyn crate::store::Store>);
    let settings = FlowSettings {
        load: RetryPolicy { retries: 2, delay: LOAD_DELAY, jitter: Duration::ZERO },
        bedrock: RetryPolicy { retries: 2, delay: BEDROCK_DELAY, jitter: Duration::ZERO },
        max_concurrent_calls: 4,
    };
    let runner = Runner::new(Arc::clone(&hub), journal.clone(), model, settings, Arc::new(Metrics::default()));
    Harness { store, hub, runner, journal, _dir: dir }
}

impl Harness {
    /// Accepts a run the way a submission does (journal, then `run_created`) and starts it.
    async fn start(&self) -> RunId {
        self.start_spec(|_| {}).await
    }

    async fn start_spec(&self, alter: impl FnOnce(&mut RunSpec)) -> RunId {
        let id = RunId(Uuid::now_v7());
        let journal = self.journal.append(id, "hello").await.expect("journal append");
        let created = EventKind::RunCreated {
            prompt: "hello".into(),
            model_id: "scripted".into(),
            system: None,
            max_tokens: 16,
            temperature: None,
            max_attempts: 3,
            replay_of: None,
            batch_id: None,
        };
        let created = stamp(Arc::new(Event { run_id: id, seq: 1, ts: chrono::Utc::now(), kind: created }));
        // As a submission does: the run is stored before the hub announces it.
        crate::store::Store::append_events(self.store.as_ref(), std::slice::from_ref(&created), true)
            .await
            .expect("memory store");
        self.hub.register(created);
        let mut spec = RunSpec {
            id,
            journal,
            model_id: "scripted".into(),
            system: None,
            max_tokens: 16,
            temperature: None,
            batch_id: None,
        };
        alter(&mut spec);
        self.runner.start(spec, ());
        id
    }

    /// Like [`Harness::start`], but the run's journal record does not match what was written,
    /// so `load_prompt_file` fails for good.
    async fn start_with_a_damaged_record(&self) -> RunId {
        self.start_spec(|spec| spec.journal.crc32 ^= 1).await
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

    /// The run as the store has it: what survives the process.
    async fn stored(&self, id: RunId) -> RunDetail {
        use crate::store::Store as _;
        let events = self.store.run_events(id, 0).await.expect("memory store");
        RunDetail::fold(&events).expect("the run is stored")
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
    h.hub.flush().await;
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
    h.hub.flush().await;

    assert_eq!(h.detail(id).state, RunState::Completed);
    assert!(started.elapsed() < Duration::from_secs(60), "returned after {:?}", started.elapsed());
    assert!(started.elapsed() >= BEDROCK_DELAY, "the retry wait was honoured");
}

/// What a finished run must look like, whatever happened to it: every task and its last
/// attempt ended, and in a way that agrees with the run's own end.
fn agrees(detail: &RunDetail) -> Result<(), String> {
    if !detail.state.is_terminal() {
        return Err(format!("run still {}", detail.state));
    }
    for task in &detail.tasks {
        let name = task.name;
        if !task.state.is_terminal() {
            return Err(format!("{name} left {:?}", task.state));
        }
        match task.attempts.last() {
            None if task.not_run.is_none() => return Err(format!("{name} ended without attempts or a reason")),
            None => {}
            Some(last) if last.state != task.state => {
                return Err(format!("{name} is {:?} but its last attempt {:?}", task.state, last.state));
            }
            Some(_) => {}
        }
        if let Some(open) = task.attempts.iter().find(|a| a.finished_at.is_none()) {
            return Err(format!("{name} attempt {} never ended", open.number));
        }
    }
    let any = |state: TaskState| detail.tasks.iter().any(|t| t.state == state);
    let all = |state: TaskState| detail.tasks.iter().all(|t| t.state == state);
    let agrees = match detail.state {
        RunState::Completed => all(TaskState::Completed),
        RunState::Failed => any(TaskState::Failed) && !any(TaskState::Cancelled),
        RunState::Cancelled => any(TaskState::Cancelled) && !any(TaskState::Failed),
        RunState::Crashed => any(TaskState::Failed) && !any(TaskState::Cancelled),
        RunState::Pending | RunState::Running => false,
    };
    if agrees {
        Ok(())
    } else {
        Err(format!("run {} with tasks {:?}", detail.state, detail.tasks.iter().map(|t| t.state).collect::<Vec<_>>()))
    }
}

/// How the scenario below stops the run, if it has not ended by itself.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Cancel,
    Shutdown,
}

#[tokio::test(start_paused = true)]
async fn whatever_the_faults_cancels_and_shutdowns_a_finished_run_agrees_with_its_tasks_and_attempts() {
    for seed in 0..80 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let steps: Vec<Step> = (0..rng.usize(0..4))
            .map(|_| match rng.u8(0..5) {
                0 | 1 => Step::Fail(ErrorKind::Throttled),
                2 => Step::Fail(ErrorKind::Validation),
                3 => Step::Answer("fine"),
                _ => Step::Hang,
            })
            .collect();
        let model = ScriptedModel::new(steps.clone());
        let h = harness(Arc::clone(&model));
        let damaged_journal = rng.u8(0..6) == 0;
        let id = if damaged_journal { h.start_with_a_damaged_record().await } else { h.start().await };
        let stop = if rng.bool() { Stop::Cancel } else { Stop::Shutdown };
        let after = Duration::from_millis(rng.u64(0..30_000));

        tokio::time::sleep(after).await;
        match stop {
            Stop::Cancel => {
                h.runner.cancel(id);
                h.runner.shutdown(Duration::from_secs(3600)).await;
            }
            Stop::Shutdown => h.runner.shutdown(Duration::ZERO).await,
        }
        h.hub.flush().await;

        let detail = h.stored(id).await;
        if let Err(why) = agrees(&detail) {
            panic!("seed {seed} ({steps:?}, damaged journal {damaged_journal}, {stop:?} after {after:?}): {why}");
        }
    }
}
