//! The fold of a run's events into its [`RunDetail`]: one meaning for every event, on both sides.

use chrono::{DateTime, Utc};

use crate::event::AttemptOutcome;
use crate::{
    AttemptView, Event, EventKind, RunDetail, RunState, RunSummary, TaskName, TaskState, TaskView, prompt_preview,
};

impl RunDetail {
    /// Starts a run's picture from its `run_created` event; `None` for any other event.
    pub fn from_created(event: &Event) -> Option<RunDetail> {
        let EventKind::RunCreated {
            prompt,
            model_id,
            system,
            max_tokens,
            temperature,
            max_attempts,
            replay_of,
            batch_id,
        } = &event.kind
        else {
            return None;
        };
        Some(RunDetail {
            id: event.run_id,
            state: RunState::Pending,
            created_at: event.ts,
            started_at: None,
            finished_at: None,
            prompt: prompt.clone(),
            model_id: model_id.clone(),
            system: system.clone(),
            max_tokens: *max_tokens,
            temperature: *temperature,
            response: None,
            error: None,
            usage: None,
            stop_reason: None,
            latency_ms: None,
            last_seq: event.seq,
            tasks: TaskName::ALL
                .into_iter()
                .map(|name| TaskView {
                    name,
                    state: TaskState::Pending,
                    max_attempts: *max_attempts,
                    attempts: Vec::new(),
                    not_run: None,
                })
                .collect(),
            replay_of: *replay_of,
            replays: Vec::new(),
            batch_id: *batch_id,
            cost_usd: None,
        })
    }

    /// Folds a run's events, oldest first; `None` if they do not start with `run_created`.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<RunDetail> {
        let mut events = events.into_iter();
        let mut detail = RunDetail::from_created(events.next()?)?;
        for event in events {
            detail.apply(event);
        }
        Some(detail)
    }

    /// Applies the run's next event. Events already applied (by `seq`) or of another run are
    /// ignored, so a replay that overlaps live delivery is harmless; terminal states never change.
    pub fn apply(&mut self, event: &Event) {
        if event.run_id != self.id || event.seq <= self.last_seq {
            return;
        }
        self.last_seq = event.seq;
        match &event.kind {
            EventKind::RunCreated { .. } | EventKind::Log { .. } => {}
            EventKind::RunState { state, error } => {
                let times = RunTimes {
                    state: &mut self.state,
                    started_at: &mut self.started_at,
                    finished_at: &mut self.finished_at,
                    error: &mut self.error,
                };
                times.advance(*state, error, event.ts);
            }
            EventKind::TaskState { task, attempt, state, outcome } => {
                if let Some(view) = self.tasks.iter_mut().find(|t| t.name == *task) {
                    let restarted = view.apply(*attempt, *state, outcome, event.ts);
                    if restarted && *task == TaskName::CallBedrock {
                        self.response = None;
                        self.usage = None;
                        self.stop_reason = None;
                    }
                }
            }
            EventKind::Delta { attempt, text } => {
                if self.current_attempt(TaskName::CallBedrock) == Some(*attempt) {
                    self.response.get_or_insert_with(String::new).push_str(text);
                }
            }
            EventKind::ModelResult { usage, stop_reason, latency_ms } => {
                self.usage = *usage;
                self.stop_reason.clone_from(stop_reason);
                self.latency_ms = *latency_ms;
            }
        }
    }

    /// The number of the task's latest attempt.
    pub fn current_attempt(&self, task: TaskName) -> Option<u32> {
        self.tasks.iter().find(|t| t.name == task)?.attempts.last().map(|a| a.number)
    }

    /// The run as a history entry.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id,
            state: self.state,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            model_id: self.model_id.clone(),
            prompt_preview: prompt_preview(&self.prompt),
            usage: self.usage,
            error: self.error.clone(),
            retries: self.retries(),
            batch_id: self.batch_id,
            cost_usd: self.cost_usd,
            snippet: None,
        }
    }

    /// Attempts after the first, over both tasks.
    pub fn retries(&self) -> u32 {
        self.tasks.iter().map(|task| task.attempts.last().map_or(0, |a| a.number.saturating_sub(1))).sum()
    }
}

impl RunSummary {
    /// Applies a `run_state` event to a history entry, by the same rule as [`RunDetail::apply`];
    /// returns whether it changed anything (a terminal state never changes).
    pub fn apply_run_state(&mut self, state: RunState, error: &Option<String>, ts: DateTime<Utc>) -> bool {
        let times = RunTimes {
            state: &mut self.state,
            started_at: &mut self.started_at,
            finished_at: &mut self.finished_at,
            error: &mut self.error,
        };
        times.advance(state, error, ts)
    }
}

/// The fields a run's state change touches, in a detail or a summary.
struct RunTimes<'a> {
    state: &'a mut RunState,
    started_at: &'a mut Option<DateTime<Utc>>,
    finished_at: &'a mut Option<DateTime<Utc>>,
    error: &'a mut Option<String>,
}

impl RunTimes<'_> {
    /// The one rule for a run's state change: a terminal state never changes; `Running` stamps
    /// the start, a terminal state the end and its reason. Returns whether it applied.
    fn advance(self, next: RunState, reason: &Option<String>, ts: DateTime<Utc>) -> bool {
        if self.state.is_terminal() {
            return false;
        }
        *self.state = next;
        if next == RunState::Running {
            self.started_at.get_or_insert(ts);
        }
        if next.is_terminal() {
            *self.finished_at = Some(ts);
            self.error.clone_from(reason);
        }
        true
    }
}

impl TaskView {
    /// Records an attempt's state change; returns whether it started a new attempt.
    fn apply(&mut self, number: u32, state: TaskState, outcome: &AttemptOutcome, ts: DateTime<Utc>) -> bool {
        if self.state.is_terminal() {
            return false;
        }
        self.state = state;
        if number == 0 {
            // The task ended without ever starting: attempt 0 carries only why.
            self.not_run.clone_from(&outcome.error);
            return false;
        }
        let started = state == TaskState::Running && self.attempts.last().is_none_or(|a| a.number < number);
        if started {
            self.attempts.push(AttemptView::started(number, state, ts));
            return true;
        }
        // An attempt waiting to be retried has ended; a cancel or shutdown during the wait only
        // settles its state, keeping the failure that made it wait.
        if let Some(attempt) =
            self.attempts.iter_mut().find(|a| a.number == number && a.state == TaskState::AwaitingRetry)
            && state.is_terminal()
        {
            attempt.state = state;
            if attempt.error.is_none() {
                attempt.error.clone_from(&outcome.error);
            }
            return false;
        }
        if let Some(attempt) = self.attempts.iter_mut().find(|a| a.number == number && a.finished_at.is_none()) {
            attempt.state = state;
            attempt.finished_at = Some(ts);
            attempt.error.clone_from(&outcome.error);
            attempt.retryable = outcome.retryable;
            attempt.http_status = outcome.http_status;
            attempt.request_id.clone_from(&outcome.request_id);
            attempt.first_byte_ms = outcome.first_byte_ms;
            attempt.total_ms = outcome.total_ms;
            attempt.retry_delay_ms = outcome.retry_delay_ms;
            attempt.retry_at = outcome.retry_at;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::{RunId, Usage};

    struct Script {
        id: RunId,
        seq: u64,
        events: Vec<Event>,
    }

    impl Script {
        fn new() -> Self {
            let mut script = Script { id: RunId(Uuid::nil()), seq: 0, events: Vec::new() };
            script.push(EventKind::RunCreated {
                prompt: "Explain  retries".into(),
                model_id: "m".into(),
                system: None,
                max_tokens: 100,
                temperature: None,
                max_attempts: 3,
                replay_of: None,
                batch_id: None,
            });
            script
        }

        fn push(&mut self, kind: EventKind) -> &mut Self {
            self.seq += 1;
            self.events.push(Event { run_id: self.id, seq: self.seq, ts: DateTime::<Utc>::UNIX_EPOCH, kind });
            self
        }

        fn run(&mut self, state: RunState) -> &mut Self {
            self.push(EventKind::RunState { state, error: None })
        }

        fn task(&mut self, task: TaskName, attempt: u32, state: TaskState) -> &mut Self {
            let outcome = AttemptOutcome {
                error: (state == TaskState::AwaitingRetry).then(|| "throttled".into()),
                retryable: (state == TaskState::AwaitingRetry).then_some(true),
                ..Default::default()
            };
            self.push(EventKind::TaskState { task, attempt, state, outcome })
        }

        fn delta(&mut self, attempt: u32, text: &str) -> &mut Self {
            self.push(EventKind::Delta { attempt, text: text.into() })
        }

        fn detail(&self) -> RunDetail {
            RunDetail::fold(&self.events).expect("script starts with run_created")
        }
    }

    #[test]
    fn a_retried_bedrock_call_keeps_only_the_last_attempts_response() {
        let mut script = Script::new();
        script
            .run(RunState::Running)
            .task(TaskName::LoadPromptFile, 1, TaskState::Running)
            .task(TaskName::LoadPromptFile, 1, TaskState::Completed)
            .task(TaskName::CallBedrock, 1, TaskState::Running)
            .delta(1, "half an ans")
            .task(TaskName::CallBedrock, 1, TaskState::AwaitingRetry)
            .task(TaskName::CallBedrock, 2, TaskState::Running)
            .delta(2, "Hello, ")
            .delta(2, "world")
            .push(EventKind::ModelResult {
                usage: Some(Usage { input_tokens: 2, output_tokens: 2 }),
                stop_reason: None,
                latency_ms: Some(7),
            })
            .task(TaskName::CallBedrock, 2, TaskState::Completed)
            .run(RunState::Completed);
        let detail = script.detail();
        assert_eq!(detail.state, RunState::Completed);
        assert_eq!(detail.response.as_deref(), Some("Hello, world"));
        assert_eq!(detail.last_seq, 13);
        let bedrock = &detail.tasks[1];
        assert_eq!(bedrock.state, TaskState::Completed);
        assert_eq!(bedrock.attempts.len(), 2);
        assert_eq!(bedrock.attempts[0].state, TaskState::AwaitingRetry);
        assert_eq!(bedrock.attempts[0].error.as_deref(), Some("throttled"));
        assert_eq!(bedrock.attempts[1].state, TaskState::Completed);
        assert_eq!(detail.summary().prompt_preview, "Explain retries");
    }

    #[test]
    fn terminal_states_never_change() {
        let mut script = Script::new();
        script.run(RunState::Cancelled).run(RunState::Running).run(RunState::Completed);
        let detail = script.detail();
        assert_eq!(detail.state, RunState::Cancelled);
        assert!(detail.started_at.is_none());
    }

    #[test]
    fn a_history_entry_follows_the_same_state_rule_as_the_detail() {
        let mut summary = Script::new().detail().summary();
        let ts = DateTime::<Utc>::UNIX_EPOCH;
        assert!(summary.apply_run_state(RunState::Running, &None, ts));
        assert_eq!(summary.started_at, Some(ts));
        assert!(summary.apply_run_state(RunState::Failed, &Some("boom".into()), ts));
        assert_eq!((summary.state, summary.error.as_deref()), (RunState::Failed, Some("boom")));
        assert!(!summary.apply_run_state(RunState::Completed, &None, ts));
        assert_eq!(summary.state, RunState::Failed);
    }

    #[test]
    fn replayed_events_are_applied_once() {
        let mut script = Script::new();
        script.run(RunState::Running).task(TaskName::CallBedrock, 1, TaskState::Running).delta(1, "ab");
        let mut detail = script.detail();
        for event in &script.events {
            detail.apply(event);
        }
        assert_eq!(detail.response.as_deref(), Some("ab"));
        assert_eq!(detail.tasks[1].attempts.len(), 1);
    }
}
