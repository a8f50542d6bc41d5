//! Crash recovery: what a new process does with the runs a previous one left in flight.

use std::sync::Arc;

use common::{AttemptOutcome, Event, EventKind, RunDetail, RunState, TaskState};

use super::{Store, StoreError};
use crate::wire::stamp;

/// Why recovered runs ended, as their users read it.
const REASON: &str = "crashed: the server stopped while this run was in flight";
const NOT_RUN: &str = "not run: the server stopped before this task started";

/// The events that end an interrupted run as `Crashed` with `reason`: each open task fails
/// (not retryable), then the run ends, so nothing stays "running" for ever.
pub fn crash_events(detail: &RunDetail, reason: &str) -> Vec<EventKind> {
    let mut events = Vec::new();
    for task in detail.tasks.iter().filter(|t| !t.state.is_terminal()) {
        // A task that never started ends as attempt 0, which only says why.
        let (attempt, error) = match task.attempts.last() {
            Some(last) => (last.number, reason.to_owned()),
            None => (0, NOT_RUN.to_owned()),
        };
        let outcome = AttemptOutcome { error: Some(error), retryable: Some(false), ..AttemptOutcome::default() };
        events.push(EventKind::TaskState { task: task.name, attempt, state: TaskState::Failed, outcome });
    }
    events.push(EventKind::RunState { state: RunState::Crashed, error: Some(reason.into()) });
    events
}

/// Marks runs a previous process left `Pending` or `Running` as `Crashed`, ending their open
/// task attempts. Returns how many it ended.
pub async fn recover_interrupted(store: &dyn Store) -> Result<usize, StoreError> {
    let interrupted = store.interrupted_runs().await?;
    if interrupted.is_empty() {
        return Ok(0);
    }
    for run in &interrupted {
        let Some(detail) = RunDetail::fold(&run.events) else { continue };
        let events: Vec<_> = crash_events(&detail, REASON)
            .into_iter()
            .zip(detail.last_seq + 1..)
            .map(|(kind, seq)| stamp(Arc::new(Event { run_id: run.id, seq, ts: chrono::Utc::now(), kind })))
            .collect();
        store.append_events(&events, true).await?;
    }
    tracing::warn!(runs = interrupted.len(), "marked runs interrupted by the previous process as Crashed");
    Ok(interrupted.len())
}
