//! The two-task timeline: state, "attempt N of M", each failed attempt's error, the retry
//! countdown and durations.

use common::{AttemptView, TaskName, TaskState, TaskView};
use yew::prelude::*;

use super::badge::state_badge;
use crate::format;

fn task_title(name: TaskName) -> &'static str {
    match name {
        TaskName::LoadPromptFile => "Load prompt file",
        TaskName::CallBedrock => "Call Bedrock",
    }
}

/// The run's tasks, in execution order, as a timeline; `now` (ms) for countdowns and running
/// durations.
pub fn task_timeline(tasks: &[TaskView], now: f64) -> Html {
    html! {
        <ol class="timeline" id="timeline" data-testid="timeline" aria-label="Tasks">
            { for tasks.iter().map(|task| task_row(task, now)) }
        </ol>
    }
}

fn task_row(task: &TaskView, now: f64) -> Html {
    let current = task.attempts.last();
    let attempt_text = match current {
        None => "not started".to_owned(),
        Some(attempt) => format!("attempt {} of {}", attempt.number, task.max_attempts),
    };
    let duration = task
        .attempts
        .first()
        .and_then(|first| {
            let end = if task.state.is_terminal() { current.and_then(|a| a.finished_at) } else { None };
            format::elapsed(first.started_at, end, now)
        })
        .filter(|_| task.state != TaskState::Pending);
    let countdown = current.filter(|_| task.state == TaskState::AwaitingRetry).map(|attempt| {
        let text = match attempt.retry_at {
            Some(at) => format::countdown(at, now),
            None => "retrying soon".to_owned(),
        };
        html! {
            <p class="countdown" data-testid="retry-countdown" role="timer">
                { text }
                { format!(" (attempt {} of {} next)", attempt.number + 1, task.max_attempts) }
            </p>
        }
    });
    let name = task.name.as_str();
    html! {
        <li class={ format!("task task-{}", task.state.as_str().to_ascii_lowercase()) }
            id={ format!("task-{name}") } data-testid={ format!("task-{name}") } data-state={ task.state.as_str() }>
            <div class="task-head">
                <span class="task-marker" aria-hidden="true"></span>
                <h3 class="task-name">{ task_title(task.name) }</h3>
                { state_badge(task.state.as_str(), None, Some("task-state")) }
                <span class="task-attempt" data-testid="task-attempt">{ attempt_text }</span>
                if let Some(duration) = duration {
                    <span class="task-duration" data-testid="task-duration">{ duration }</span>
                }
            </div>
            if let Some(countdown) = countdown { { countdown } }
            if !task.attempts.is_empty() {
                <ol class="attempts" data-testid="attempts">
                    { for task.attempts.iter().map(|attempt| attempt_row(attempt, current, now)) }
                </ol>
            }
        </li>
    }
}

fn attempt_row(attempt: &AttemptView, current: Option<&AttemptView>, now: f64) -> Html {
    // An earlier attempt that was retried keeps the wire state `AwaitingRetry`; once its retry
    // has started, what a reader wants to know is that it failed.
    let retried = attempt.state == TaskState::AwaitingRetry && current.is_some_and(|c| c.number > attempt.number);
    let badge = if retried { TaskState::Failed.as_str() } else { attempt.state.as_str() };
    let took = attempt
        .total_ms
        .map(format::duration_ms)
        .or_else(|| format::elapsed(attempt.started_at, attempt.finished_at, now));
    let mut facts = Vec::new();
    if let Some(status) = attempt.http_status {
        facts.push(format!("HTTP {status}"));
    }
    if let Some(ms) = attempt.first_byte_ms {
        facts.push(format!("first byte {}", format::duration_ms(ms)));
    }
    if let Some(ms) = attempt.retry_delay_ms {
        facts.push(format!("retry after {}", format::duration_ms(ms)));
    }
    html! {
        <li class="attempt" data-testid="attempt" data-attempt={ attempt.number.to_string() }
            data-state={ attempt.state.as_str() }>
            <span class="attempt-number">{ format!("#{}", attempt.number) }</span>
            { state_badge(badge, None, None) }
            if retried { <span class="attempt-fact">{ "retried" }</span> }
            if let Some(took) = took { <span class="attempt-duration">{ took }</span> }
            if !facts.is_empty() { <span class="attempt-fact">{ facts.join(" · ") }</span> }
            if let Some(id) = &attempt.request_id {
                <span class="attempt-fact request-id" title="AWS request id">{ "request " }<code>{ id.clone() }</code></span>
            }
            if let Some(error) = &attempt.error {
                <p class="attempt-error" data-testid="attempt-error">{ error.clone() }</p>
            }
        </li>
    }
}
