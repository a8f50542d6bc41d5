//! Words for answers that are not whole: an attempt cut off and replaced by a retry, text left
//! by a cancel or a crash, and what became of each attempt's output.

use common::{RunDetail, RunState, TaskName, TaskState, TaskView};

use super::outputs::AttemptOutputs;

fn bedrock(run: &RunDetail) -> Option<&TaskView> {
    run.tasks.iter().find(|task| task.name == TaskName::CallBedrock)
}

/// Whether the current attempt is producing text right now (the streaming cursor shows only
/// then: never through a retry countdown, nor after the run ended).
pub fn is_streaming(run: &RunDetail) -> bool {
    !run.state.is_terminal()
        && bedrock(run).and_then(|task| task.attempts.last()).is_some_and(|a| a.state == TaskState::Running)
}

/// A note for the response on screen when it is not the whole answer, or when an earlier
/// attempt's text was replaced by a retry.
pub fn response_note(run: &RunDetail, outputs: &AttemptOutputs) -> Option<String> {
    let current = bedrock(run)?.attempts.last()?;
    let has_text = run.response.as_deref().is_some_and(|text| !text.is_empty());
    let replaced = || {
        let cut = (1..current.number).rev().find(|&n| outputs.text(n).is_some_and(|t| !t.is_empty()))?;
        Some(format!("Attempt {cut} cut off; replaced by attempt {}.", current.number))
    };
    match (run.state, current.state) {
        (RunState::Cancelled, _) if has_text => Some("Partial: the run was cancelled.".into()),
        (RunState::Crashed, _) if has_text => Some("Partial: the server stopped while this run was in flight.".into()),
        (_, TaskState::Running | TaskState::Completed) => replaced(),
        _ if !has_text => None,
        (state, TaskState::AwaitingRetry) if !state.is_terminal() => Some(format!(
            "Partial: attempt {} was cut off; attempt {} will replace it.",
            current.number,
            current.number + 1
        )),
        _ => Some(format!("Partial: attempt {} failed before the answer was complete.", current.number)),
    }
}

/// What became of attempt `number`'s output, for the per-attempt list.
pub fn attempt_fate(run: &RunDetail, number: u32) -> String {
    let Some(task) = bedrock(run) else { return String::new() };
    let Some(attempt) = task.attempts.iter().find(|a| a.number == number) else { return String::new() };
    let replaced_by = task.attempts.iter().map(|a| a.number).find(|&n| n > number);
    match (attempt.state, replaced_by) {
        (TaskState::Completed, _) => "complete".into(),
        (_, Some(next)) => format!("cut off; replaced by attempt {next}"),
        (TaskState::Running | TaskState::Pending, None) if !run.state.is_terminal() => "streaming".into(),
        (TaskState::AwaitingRetry, None) if !run.state.is_terminal() => "cut off; a retry will replace it".into(),
        _ if run.state == RunState::Cancelled => "partial: the run was cancelled".into(),
        _ if run.state == RunState::Crashed => "partial: the server stopped".into(),
        _ => "cut off: the attempt failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use common::{StopReason, TaskState};

    use super::super::script::Script;
    use super::*;

    #[test]
    fn a_cut_attempt_is_marked_while_it_waits_and_named_once_replaced() {
        let mut script = Script::started();
        script.call(1).delta(1, "Half an");
        assert!(is_streaming(&script.detail()));
        assert_eq!(response_note(&script.detail(), &script.outputs()), None);

        script.ended(1, TaskState::AwaitingRetry, "the stream broke", Some(200));
        let waiting = script.detail();
        assert!(!is_streaming(&waiting), "no cursor through the countdown");
        assert_eq!(
            response_note(&waiting, &script.outputs()).as_deref(),
            Some("Partial: attempt 1 was cut off; attempt 2 will replace it.")
        );
        assert_eq!(attempt_fate(&waiting, 1), "cut off; a retry will replace it");

        script.call(2);
        let replaced = Some("Attempt 1 cut off; replaced by attempt 2.");
        assert_eq!(response_note(&script.detail(), &script.outputs()).as_deref(), replaced);
        script.delta(2, "Whole").completed(2, StopReason::EndTurn);
        let done = script.detail();
        assert_eq!(response_note(&done, &script.outputs()).as_deref(), replaced);
        assert_eq!(attempt_fate(&done, 1), "cut off; replaced by attempt 2");
        assert_eq!(attempt_fate(&done, 2), "complete");
        assert!(!is_streaming(&done));
    }

    #[test]
    fn a_retry_after_an_attempt_without_text_needs_no_note() {
        let mut script = Script::started();
        script.call(1).ended(1, TaskState::AwaitingRetry, "HTTP 429: throttled", Some(429)).call(2).delta(2, "Hi");
        assert_eq!(response_note(&script.detail(), &script.outputs()), None);
    }

    #[test]
    fn text_left_by_a_cancel_a_crash_or_a_last_failure_says_so() {
        let mut cancelled = Script::started();
        cancelled.call(1).delta(1, "Some").ended(1, TaskState::Cancelled, "cancelled", None).run(RunState::Cancelled);
        let detail = cancelled.detail();
        let note = response_note(&detail, &cancelled.outputs());
        assert_eq!(note.as_deref(), Some("Partial: the run was cancelled."));
        assert_eq!(attempt_fate(&detail, 1), "partial: the run was cancelled");

        let mut crashed = Script::started();
        crashed.call(1).delta(1, "Some").run(RunState::Crashed);
        let note = response_note(&crashed.detail(), &crashed.outputs());
        assert_eq!(note.as_deref(), Some("Partial: the server stopped while this run was in flight."));

        let mut failed = Script::started();
        failed.call(3).delta(3, "Some").ended(3, TaskState::Failed, "broke", None).run(RunState::Failed);
        let note = response_note(&failed.detail(), &failed.outputs());
        assert_eq!(note.as_deref(), Some("Partial: attempt 3 failed before the answer was complete."));

        let mut empty = Script::started();
        empty.call(1).ended(1, TaskState::Cancelled, "cancelled", None).run(RunState::Cancelled);
        assert_eq!(response_note(&empty.detail(), &empty.outputs()), None, "no text, nothing partial");
    }
}
