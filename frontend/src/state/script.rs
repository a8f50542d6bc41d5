//! Test support: a run's events written as a script, folded the way the page folds them.

use chrono::{DateTime, Utc};
use common::{AttemptOutcome, Event, EventKind, RunDetail, RunId, RunState, StopReason, TaskName, TaskState};
use uuid::Uuid;

use super::outputs::AttemptOutputs;

/// A run's events so far; each event is one second after the previous one.
pub struct Script {
    pub events: Vec<Event>,
}

impl Script {
    /// A run that was created (max tokens 12) and started, with its prompt read.
    pub fn started() -> Script {
        let mut script = Script { events: Vec::new() };
        script.push(EventKind::RunCreated {
            prompt: "p".into(),
            model_id: "m".into(),
            system: None,
            max_tokens: 12,
            temperature: None,
            max_attempts: 3,
            replay_of: None,
            batch_id: None,
        });
        script.run(RunState::Running);
        script.task(TaskName::LoadPromptFile, 1, TaskState::Running, AttemptOutcome::default());
        script.task(TaskName::LoadPromptFile, 1, TaskState::Completed, AttemptOutcome::default());
        script
    }

    /// Server time of the `n`th event (1-based).
    pub fn at(n: u64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(i64::try_from(n).unwrap_or(0) * 1_000).unwrap_or_default()
    }

    pub fn push(&mut self, kind: EventKind) -> &mut Self {
        let seq = self.events.len() as u64 + 1;
        self.events.push(Event { run_id: RunId(Uuid::nil()), seq, ts: Script::at(seq), kind });
        self
    }

    pub fn run(&mut self, state: RunState) -> &mut Self {
        let error = state.is_terminal().then(|| format!("run {state}"));
        self.push(EventKind::RunState { state, error })
    }

    pub fn task(&mut self, task: TaskName, attempt: u32, state: TaskState, outcome: AttemptOutcome) -> &mut Self {
        self.push(EventKind::TaskState { task, attempt, state, outcome })
    }

    /// A `call_bedrock` attempt starts.
    pub fn call(&mut self, attempt: u32) -> &mut Self {
        self.task(TaskName::CallBedrock, attempt, TaskState::Running, AttemptOutcome::default())
    }

    /// A `call_bedrock` attempt ends in `state` with `error` (and an HTTP status, if any).
    pub fn ended(&mut self, attempt: u32, state: TaskState, error: &str, http_status: Option<u16>) -> &mut Self {
        let outcome = AttemptOutcome {
            error: Some(error.into()),
            retryable: Some(state == TaskState::AwaitingRetry),
            http_status,
            ..AttemptOutcome::default()
        };
        self.task(TaskName::CallBedrock, attempt, state, outcome)
    }

    pub fn delta(&mut self, attempt: u32, text: &str) -> &mut Self {
        self.push(EventKind::Delta { attempt, text: text.into() })
    }

    /// A successful attempt: model result, task and run completed.
    pub fn completed(&mut self, attempt: u32, stop_reason: StopReason) -> &mut Self {
        self.push(EventKind::ModelResult { usage: None, stop_reason: Some(stop_reason), latency_ms: Some(5) });
        self.task(TaskName::CallBedrock, attempt, TaskState::Completed, AttemptOutcome::default());
        self.run(RunState::Completed)
    }

    pub fn detail(&self) -> RunDetail {
        RunDetail::fold(&self.events).unwrap_or_else(|| panic!("a script starts with run_created"))
    }

    pub fn outputs(&self) -> AttemptOutputs {
        let mut outputs = AttemptOutputs::default();
        for event in &self.events {
            outputs.apply(event);
        }
        outputs
    }
}
