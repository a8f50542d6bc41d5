//! What a replica does with a run it took over from one that died: a pure decision from the
//! run's stored events, then the events and the restart it implies.

use common::{AttemptOutcome, EventKind, RunDetail, RunState, TaskName, TaskState};

use crate::config::OwnerLoss;
use crate::flow::ResumeAt;
use crate::store::crash_events;

/// The events that close what the dead owner left open, and what follows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub events: Vec<EventKind>,
    /// Where the run continues on this replica; `None` when `events` end it.
    pub resume: Option<ResumeAt>,
}

/// Decides how a run taken over continues. `reason` says why its owner stopped ("replica X
/// stopped while this run was in flight"), for the attempt it interrupted.
pub fn plan(detail: &RunDetail, on_loss: OwnerLoss, reason: &str) -> Plan {
    if on_loss == OwnerLoss::Crash {
        return Plan { events: crash_events(detail, &format!("crashed: {reason}")), resume: None };
    }
    if detail.state == RunState::Pending {
        return Plan { events: Vec::new(), resume: Some(ResumeAt::Start) };
    }
    for task in &detail.tasks {
        if task.state == TaskState::Completed {
            continue;
        }
        let Some(last) = task.attempts.last() else {
            return Plan { events: Vec::new(), resume: Some(at(task.name, 1, None)) };
        };
        return match last.state {
            TaskState::AwaitingRetry => {
                Plan { events: Vec::new(), resume: Some(at(task.name, last.number + 1, last.retry_at)) }
            }
            TaskState::Running if last.number < task.max_attempts => {
                let outcome = AttemptOutcome {
                    error: Some(reason.to_owned()),
                    retryable: Some(true),
                    retry_delay_ms: Some(0),
                    ..AttemptOutcome::default()
                };
                let interrupted = EventKind::TaskState {
                    task: task.name,
                    attempt: last.number,
                    state: TaskState::AwaitingRetry,
                    outcome,
                };
                Plan { events: vec![interrupted], resume: Some(at(task.name, last.number + 1, None)) }
            }
            TaskState::Running => Plan { events: out_of_attempts(task.name, last.number, reason), resume: None },
            // A finished attempt on a task still open is not a state the runner leaves; end
            // the run rather than guess.
            _ => Plan { events: crash_events(detail, &format!("crashed: {reason}")), resume: None },
        };
    }
    // Every task completed: the owner died just before saying so.
    Plan { events: vec![EventKind::RunState { state: RunState::Completed, error: None }], resume: None }
}

fn at(task: TaskName, attempt: u32, not_before: Option<chrono::DateTime<chrono::Utc>>) -> ResumeAt {
    ResumeAt::Attempt { task, attempt, not_before }
}

/// The interrupted attempt was the task's last: the task fails, so does the run.
fn out_of_attempts(task: TaskName, attempt: u32, reason: &str) -> Vec<EventKind> {
    let outcome = AttemptOutcome { error: Some(reason.to_owned()), retryable: Some(true), ..AttemptOutcome::default() };
    let mut events = vec![EventKind::TaskState { task, attempt, state: TaskState::Failed, outcome }];
    if task == TaskName::LoadPromptFile {
        let why = format!("not run: {} failed", TaskName::LoadPromptFile);
        let outcome = AttemptOutcome { error: Some(why), ..AttemptOutcome::default() };
        events.push(EventKind::TaskState {
            task: TaskName::CallBedrock,
            attempt: 0,
            state: TaskState::Failed,
            outcome,
        });
    }
    let error = format!("{task} failed after {attempt} attempt(s): {reason}");
    events.push(EventKind::RunState { state: RunState::Failed, error: Some(error) });
    events
}

#[cfg(test)]
mod tests {
    use common::{Event, RunId};

    use super::*;

    const REASON: &str = "replica r1 stopped while this run was in flight";

    /// A run's detail after `kinds` (its `run_created` allows 3 attempts per task).
    fn detail(kinds: Vec<EventKind>) -> RunDetail {
        let id = RunId(uuid::Uuid::from_u128(7));
        let created = EventKind::RunCreated {
            prompt: "p".into(),
            model_id: "m".into(),
            system: None,
            max_tokens: 10,
            temperature: None,
            max_attempts: 3,
            replay_of: None,
            batch_id: None,
        };
        let events: Vec<Event> = std::iter::once(created)
            .chain(kinds)
            .zip(1..)
            .map(|(kind, seq)| Event { run_id: id, seq, ts: chrono::Utc::now(), kind })
            .collect();
        RunDetail::fold(&events).expect("a run")
    }

    fn running() -> EventKind {
        EventKind::RunState { state: RunState::Running, error: None }
    }

    fn task(task: TaskName, attempt: u32, state: TaskState) -> EventKind {
        EventKind::TaskState { task, attempt, state, outcome: AttemptOutcome::default() }
    }

    #[test]
    fn a_run_its_owner_never_started_starts_from_the_beginning() {
        assert_eq!(
            plan(&detail(vec![]), OwnerLoss::Resume, REASON),
            Plan { events: vec![], resume: Some(ResumeAt::Start) }
        );
    }

    #[test]
    fn an_attempt_cut_by_the_owners_death_ends_retryable_and_the_next_attempt_follows() {
        let run = detail(vec![
            running(),
            task(TaskName::LoadPromptFile, 1, TaskState::Running),
            task(TaskName::LoadPromptFile, 1, TaskState::Completed),
            task(TaskName::CallBedrock, 1, TaskState::Running),
        ]);

        let plan = plan(&run, OwnerLoss::Resume, REASON);

        let EventKind::TaskState { task, attempt: 1, state: TaskState::AwaitingRetry, outcome } = &plan.events[0]
        else {
            panic!("attempt 1 ends awaiting a retry: {:?}", plan.events);
        };
        assert_eq!(
            (*task, outcome.retryable, outcome.error.as_deref()),
            (TaskName::CallBedrock, Some(true), Some(REASON))
        );
        assert_eq!(plan.resume, Some(ResumeAt::Attempt { task: TaskName::CallBedrock, attempt: 2, not_before: None }));
    }

    #[test]
    fn a_last_attempt_cut_by_the_owners_death_fails_the_run_within_its_retry_budget() {
        let run = detail(vec![
            running(),
            task(TaskName::LoadPromptFile, 1, TaskState::Running),
            task(TaskName::LoadPromptFile, 1, TaskState::Completed),
            task(TaskName::CallBedrock, 1, TaskState::Running),
            task(TaskName::CallBedrock, 1, TaskState::AwaitingRetry),
            task(TaskName::CallBedrock, 2, TaskState::Running),
            task(TaskName::CallBedrock, 2, TaskState::AwaitingRetry),
            task(TaskName::CallBedrock, 3, TaskState::Running),
        ]);

        let plan = plan(&run, OwnerLoss::Resume, REASON);

        assert_eq!(plan.resume, None, "no fourth attempt");
        assert!(
            matches!(plan.events.last(), Some(EventKind::RunState { state: RunState::Failed, error: Some(e) }) if e.contains("3 attempt(s)")),
            "{:?}",
            plan.events
        );
    }

    #[test]
    fn a_run_waiting_to_retry_continues_with_the_next_attempt_at_the_time_it_was_given() {
        let retry_at = chrono::Utc::now() + chrono::Duration::seconds(4);
        let waiting = EventKind::TaskState {
            task: TaskName::LoadPromptFile,
            attempt: 1,
            state: TaskState::AwaitingRetry,
            outcome: AttemptOutcome { retry_at: Some(retry_at), retryable: Some(true), ..AttemptOutcome::default() },
        };
        let run = detail(vec![running(), task(TaskName::LoadPromptFile, 1, TaskState::Running), waiting]);

        let plan = plan(&run, OwnerLoss::Resume, REASON);

        assert!(plan.events.is_empty());
        assert_eq!(
            plan.resume,
            Some(ResumeAt::Attempt { task: TaskName::LoadPromptFile, attempt: 2, not_before: Some(retry_at) })
        );
    }

    #[test]
    fn in_crash_mode_the_run_ends_crashed_with_its_open_attempt_failed() {
        let run = detail(vec![running(), task(TaskName::LoadPromptFile, 1, TaskState::Running)]);

        let plan = plan(&run, OwnerLoss::Crash, REASON);

        assert_eq!(plan.resume, None);
        assert!(matches!(
            plan.events.last(),
            Some(EventKind::RunState { state: RunState::Crashed, error: Some(e) }) if e.contains(REASON)
        ));
        assert!(plan.events.iter().any(|e| matches!(
            e,
            EventKind::TaskState { task: TaskName::LoadPromptFile, attempt: 1, state: TaskState::Failed, .. }
        )));
    }
}
