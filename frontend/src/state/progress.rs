//! A run's tasks in one line ("load_prompt_file ✓ · call_bedrock attempt 2 running"), for the
//! strip that opens onto the full timeline, and its attempts and retry waits as bars on one
//! time axis.
//!
//! Bar positions are integers in tenths of a percent: printing floats would pull float
//! formatting code into the Wasm for a handful of style attributes.

use common::{AttemptView, TaskState, TaskView};

use crate::format;

/// The tasks in one line, joined by " · ".
pub fn strip(tasks: &[TaskView], now_ms: f64) -> String {
    let phrases: Vec<String> = tasks.iter().map(|task| phrase(task, now_ms)).collect();
    phrases.join(" · ")
}

fn phrase(task: &TaskView, now_ms: f64) -> String {
    let name = task.name.as_str();
    let last = task.attempts.last();
    // A first attempt goes without saying; from the second on, the number is the news.
    let attempt = last.filter(|a| a.number > 1).map(|a| format!(" attempt {}", a.number)).unwrap_or_default();
    match task.state {
        TaskState::Pending => format!("{name} waiting"),
        TaskState::Running => format!("{name}{attempt} running"),
        TaskState::AwaitingRetry => {
            let when = last.and_then(|a| a.retry_at).map_or("retrying soon".into(), |at| format::countdown(at, now_ms));
            format!("{name}{attempt} failed, {when}")
        }
        TaskState::Completed => format!("{name}{attempt} ✓"),
        TaskState::Failed => format!("{name}{attempt} failed"),
        TaskState::Cancelled => format!("{name} cancelled"),
    }
}

/// One bar of the attempt chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Where it starts on the axis, in tenths of a percent.
    pub start: u32,
    /// In tenths of a percent; never less than [`MIN_WIDTH`], so a 1 ms attempt stays visible.
    pub width: u32,
    /// The attempt's wire state, or `None` for a wait before a retry.
    pub state: Option<TaskState>,
    /// What a screen reader (and a hover) says about it.
    pub label: String,
}

/// The narrowest bar, in tenths of a percent.
pub const MIN_WIDTH: u32 = 6;

/// Every task's bars on one axis and the time the axis spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub rows: Vec<(&'static str, Vec<Bar>)>,
    pub span_ms: u64,
}

/// A span of time in milliseconds since the epoch, and what it was.
struct Span {
    from: i64,
    to: i64,
    state: Option<TaskState>,
    label: String,
}

/// The chart for `tasks` at `now_ms`; `None` before any attempt started.
///
/// A running attempt ends at `now`; a wait ends when the next attempt started, or, while
/// the task still waits, at the planned `retry_at`. A wait left behind by a cancelled run is
/// not drawn, as it never ran its course.
pub fn chart(tasks: &[TaskView], now_ms: f64) -> Option<Chart> {
    let now = now_ms as i64;
    let spans: Vec<(&'static str, Vec<Span>)> =
        tasks.iter().map(|task| (task.name.as_str(), spans(task, now))).collect();
    let all = spans.iter().flat_map(|(_, spans)| spans);
    let origin = all.clone().map(|s| s.from).min()?;
    let end = all.map(|s| s.to).max().unwrap_or(origin);
    let span = (end - origin).max(1);
    let permille = |ms: i64| ((ms - origin).clamp(0, span) * 1_000 / span) as u32;
    let rows = spans
        .into_iter()
        .map(|(name, spans)| {
            let bars = spans
                .into_iter()
                .map(|s| {
                    let start = permille(s.from).min(1_000 - MIN_WIDTH);
                    let width = (permille(s.to) - permille(s.from)).max(MIN_WIDTH);
                    Bar { start, width, state: s.state, label: s.label }
                })
                .collect();
            (name, bars)
        })
        .collect();
    Some(Chart { rows, span_ms: span as u64 })
}

fn spans(task: &TaskView, now: i64) -> Vec<Span> {
    let name = task.name.as_str();
    let mut out = Vec::new();
    for (i, attempt) in task.attempts.iter().enumerate() {
        let from = attempt.started_at.timestamp_millis();
        let to = attempt.finished_at.map_or(now, |at| at.timestamp_millis()).max(from);
        let next = task.attempts.get(i + 1);
        let state = shown_state(attempt, next);
        let took = format::duration_ms((to - from) as u64);
        let what = format!("{name} attempt {}: {}, {took}", attempt.number, state_words(state));
        out.push(Span { from, to, state: Some(state), label: what });
        let wait_end = match next {
            Some(next) => Some(next.started_at.timestamp_millis()),
            None if task.state == TaskState::AwaitingRetry => attempt.retry_at.map(|at| at.timestamp_millis()),
            None => None,
        };
        if let Some(wait_end) = wait_end.filter(|&end| end > to) {
            let wait = format::duration_ms((wait_end - to) as u64);
            let label = format!("{name} wait of {wait} before attempt {}", attempt.number + 1);
            out.push(Span { from: to, to: wait_end, state: None, label });
        }
    }
    out
}

/// An attempt that was retried keeps the wire state `AwaitingRetry`; once the next attempt has
/// started it reads as what it was, a failure (as the timeline's rows say too).
fn shown_state(attempt: &AttemptView, next: Option<&AttemptView>) -> TaskState {
    if attempt.state == TaskState::AwaitingRetry && next.is_some() { TaskState::Failed } else { attempt.state }
}

fn state_words(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending => "pending",
        TaskState::Running => "running",
        TaskState::AwaitingRetry => "failed, retry planned",
        TaskState::Completed => "completed",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "cancelled",
    }
}

/// Tenths of a percent as a CSS percentage: `125` is `12.5%`.
pub fn percent(permille: u32) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use common::TaskName;

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    fn attempt(number: u32, state: TaskState, from: i64, to: Option<i64>) -> AttemptView {
        AttemptView { finished_at: to.map(at), ..AttemptView::started(number, state, at(from)) }
    }

    fn task(name: TaskName, state: TaskState, attempts: Vec<AttemptView>) -> TaskView {
        TaskView { name, state, max_attempts: 3, attempts, not_run: None }
    }

    fn loaded() -> TaskView {
        task(TaskName::LoadPromptFile, TaskState::Completed, vec![attempt(1, TaskState::Completed, 0, Some(10))])
    }

    #[test]
    fn the_strip_names_each_task_and_the_attempt_once_it_is_a_retry() {
        let first = task(TaskName::CallBedrock, TaskState::Running, vec![attempt(1, TaskState::Running, 10, None)]);
        assert_eq!(strip(&[loaded(), first], 0.0), "load_prompt_file ✓ · call_bedrock running");

        let second = task(
            TaskName::CallBedrock,
            TaskState::Running,
            vec![attempt(1, TaskState::AwaitingRetry, 10, Some(20)), attempt(2, TaskState::Running, 2_020, None)],
        );
        assert_eq!(strip(&[loaded(), second], 0.0), "load_prompt_file ✓ · call_bedrock attempt 2 running");

        let pending = task(TaskName::CallBedrock, TaskState::Pending, vec![]);
        assert_eq!(strip(&[loaded(), pending], 0.0), "load_prompt_file ✓ · call_bedrock waiting");
    }

    #[test]
    fn the_strip_counts_down_a_retry() {
        let mut failed = attempt(1, TaskState::AwaitingRetry, 10, Some(20));
        failed.retry_at = Some(at(2_020));
        let waiting = task(TaskName::CallBedrock, TaskState::AwaitingRetry, vec![failed]);
        assert_eq!(strip(&[waiting], 100.0), "call_bedrock failed, retrying in 2 s");
    }

    #[test]
    fn the_chart_puts_attempts_and_the_wait_between_them_on_one_axis() {
        let mut first = attempt(1, TaskState::AwaitingRetry, 0, Some(1_000));
        first.retry_delay_ms = Some(2_000);
        let tasks = [task(
            TaskName::CallBedrock,
            TaskState::Completed,
            vec![first, attempt(2, TaskState::Completed, 3_000, Some(4_000))],
        )];
        let drawn = chart(&tasks, 99_999.0).unwrap_or_else(|| panic!("attempts were made"));
        assert_eq!(drawn.span_ms, 4_000);
        let bars = &drawn.rows[0].1;
        let geometry: Vec<(u32, u32, Option<TaskState>)> = bars.iter().map(|b| (b.start, b.width, b.state)).collect();
        assert_eq!(
            geometry,
            [(0, 250, Some(TaskState::Failed)), (250, 500, None), (750, 250, Some(TaskState::Completed))]
        );
        assert_eq!(bars[0].label, "call_bedrock attempt 1: failed, 1.0 s");
        assert_eq!(bars[1].label, "call_bedrock wait of 2.0 s before attempt 2");
    }

    #[test]
    fn a_running_attempt_reaches_now_and_a_planned_wait_reaches_its_retry_time() {
        let running = [task(TaskName::CallBedrock, TaskState::Running, vec![attempt(1, TaskState::Running, 0, None)])];
        let drawn = chart(&running, 500.0).unwrap_or_else(|| panic!("an attempt is running"));
        assert_eq!((drawn.span_ms, drawn.rows[0].1[0].width), (500, 1_000));

        let mut failed = attempt(1, TaskState::AwaitingRetry, 0, Some(1_000));
        failed.retry_at = Some(at(4_000));
        let waiting = [task(TaskName::CallBedrock, TaskState::AwaitingRetry, vec![failed.clone()])];
        let drawn = chart(&waiting, 2_000.0).unwrap_or_else(|| panic!("an attempt failed"));
        assert_eq!(drawn.span_ms, 4_000, "the planned wait is drawn to its end");

        let cancelled = [task(TaskName::CallBedrock, TaskState::Cancelled, vec![failed])];
        let drawn = chart(&cancelled, 2_000.0).unwrap_or_else(|| panic!("an attempt failed"));
        assert_eq!(drawn.rows[0].1.len(), 1, "a wait cut short by a cancel is not drawn");
    }

    #[test]
    fn a_tiny_attempt_keeps_a_visible_width_and_no_attempt_means_no_chart() {
        let tasks = [
            loaded(),
            task(TaskName::CallBedrock, TaskState::Completed, vec![attempt(1, TaskState::Completed, 10, Some(10_000))]),
        ];
        let drawn = chart(&tasks, 0.0).unwrap_or_else(|| panic!("attempts were made"));
        assert_eq!(drawn.rows[0].1[0].width, MIN_WIDTH);
        assert_eq!(chart(&[task(TaskName::CallBedrock, TaskState::Pending, vec![])], 0.0), None);
        assert_eq!(percent(125), "12.5%");
        assert_eq!(percent(1_000), "100.0%");
    }
}
