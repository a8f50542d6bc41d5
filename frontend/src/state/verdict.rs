//! The verdict on a finished run: one line in plain words saying what happened and what to do
//! next, with the service's own message kept beneath it.
//!
//! The wire carries an attempt's error as text with its HTTP status and whether it was
//! retryable, not the server's error kind, so the cause is read from those: the status first
//! (as the server's retry policy does), then the error codes and phrases the server and Bedrock
//! write.

use common::{AttemptView, RunDetail, RunState, StopReason, TaskName, TaskState};

/// How a verdict is styled: a failure is red, a cancellation is no one's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Failure,
    /// Something to know about an answer that did arrive (cut at max tokens, filtered).
    Warning,
    /// The person stopped the run themselves.
    Neutral,
}

impl Tone {
    /// The tone's name, for classes and `data-tone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Failure => "failure",
            Tone::Warning => "warning",
            Tone::Neutral => "neutral",
        }
    }
}

/// The one-line verdict and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub tone: Tone,
    /// What happened and the next step, in plain words.
    pub summary: String,
    /// The service's (or server's) message, verbatim.
    pub message: Option<String>,
    /// Whether "run again with more tokens" is the next step.
    pub more_tokens: bool,
}

/// Why a Bedrock call failed, as far as its error text and status tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Validation,
    AccessDenied,
    UnknownModel,
    Quota,
    Throttled,
    Stalled,
    NoResponse,
    CallLimit,
    Unreachable,
    ServerError,
    StreamBroken,
    Unknown,
}

/// Classifies a failed attempt's error by its HTTP status and text.
pub fn cause(error: &str, http_status: Option<u16>) -> Cause {
    let text = error.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));
    match http_status {
        Some(429) => return Cause::Throttled,
        Some(500..=599) => return Cause::ServerError,
        Some(400) if !has(&["quota"]) => return Cause::Validation,
        Some(403) => return Cause::AccessDenied,
        Some(404) => return Cause::UnknownModel,
        _ => {}
    }
    if has(&["validationexception"]) {
        Cause::Validation
    } else if has(&["accessdenied"]) {
        Cause::AccessDenied
    } else if has(&["resourcenotfound"]) {
        Cause::UnknownModel
    } else if has(&["quotaexceeded", "quota exceeded"]) {
        Cause::Quota
    } else if has(&["throttl", "too many requests"]) {
        Cause::Throttled
    } else if has(&["idle for", "stalled"]) {
        Cause::Stalled
    } else if has(&["call-timeout-secs", "call time limit"]) {
        Cause::CallLimit
    } else if has(&["no response within", "timed out", "modeltimeout"]) {
        Cause::NoResponse
    } else if has(&["could not reach"]) {
        Cause::Unreachable
    } else if has(&["internalserver", "serviceunavailable", "unable to process", "unexpected error"]) {
        Cause::ServerError
    } else if has(&["stream", "cut or", "modelerror"]) {
        Cause::StreamBroken
    } else {
        Cause::Unknown
    }
}

/// " on every attempt (3)" when a failure repeated, nothing for a single attempt.
fn every(attempts: usize) -> String {
    if attempts > 1 { format!(" on every attempt ({attempts})") } else { String::new() }
}

/// The summary for a `call_bedrock` failure of `cause` after `attempts` attempts.
fn bedrock_summary(cause: Cause, attempts: usize, retryable: Option<bool>) -> String {
    let every = every(attempts);
    match cause {
        Cause::Validation => {
            "Bedrock rejected the request; retrying will not help. Check the model id and settings.".into()
        }
        Cause::AccessDenied => "Bedrock denied access to this model; retrying will not help. Enable the model for \
                                the account in the Bedrock console, or check the server's credentials."
            .into(),
        Cause::UnknownModel => "Bedrock does not know this model; retrying will not help. Check the model id \
                                (newer models need an inference profile id such as us.anthropic.…)."
            .into(),
        Cause::Quota => "The account's Bedrock quota is used up. Wait for it to reset, or ask AWS for more.".into(),
        Cause::Throttled if attempts > 1 => {
            "Bedrock throttled every attempt. Wait a minute or lower the request rate.".into()
        }
        Cause::Throttled => "Bedrock throttled the request. Wait a minute or lower the request rate.".into(),
        Cause::Stalled => format!(
            "The model stream went silent for longer than the stall timeout{every}. Run it again; if it keeps \
             happening, Bedrock or the network to it is overloaded."
        ),
        Cause::NoResponse => format!("Bedrock did not answer in time{every}. Run it again in a few minutes."),
        Cause::CallLimit => "The call ran past the server's time limit for a whole call and was stopped, not \
                             retried. Lower max tokens, or ask the operator to raise --call-timeout-secs."
            .into(),
        Cause::Unreachable => {
            format!("The server could not reach Bedrock{every}. Check its network and endpoint, then run it again.")
        }
        Cause::ServerError => format!("Bedrock failed with a server error{every}. Run it again in a few minutes."),
        Cause::StreamBroken => format!("The model's answer broke off{every}. Run it again."),
        Cause::Unknown if retryable == Some(false) => {
            "The call failed and retrying will not help; the message below says why.".into()
        }
        Cause::Unknown => format!("The call failed{every}. Run it again; the message below says what went wrong."),
    }
}

/// The verdict on a finished run; `None` while it runs and for a plain complete answer.
pub fn verdict(run: &RunDetail) -> Option<Verdict> {
    let failure = |summary: String, message: Option<String>| {
        Some(Verdict { tone: Tone::Failure, summary, message, more_tokens: false })
    };
    match run.state {
        RunState::Pending | RunState::Running => None,
        RunState::Completed => match run.stop_reason {
            Some(StopReason::MaxTokens) => Some(Verdict {
                tone: Tone::Warning,
                summary: format!("The answer hit the max tokens limit ({}).", run.max_tokens),
                message: None,
                more_tokens: true,
            }),
            Some(StopReason::ContentFiltered) => Some(Verdict {
                tone: Tone::Warning,
                summary: "A content filter stopped the answer. Rephrase the prompt and run it again.".into(),
                message: None,
                more_tokens: false,
            }),
            _ => None,
        },
        RunState::Cancelled => Some(Verdict {
            tone: Tone::Neutral,
            summary: "Cancelled. Edit it as a new run, or run it again.".into(),
            message: run.error.clone(),
            more_tokens: false,
        }),
        RunState::Crashed => {
            failure("The server stopped while this run was in flight. Run it again.".into(), run.error.clone())
        }
        RunState::Failed => {
            let failed = run.tasks.iter().find(|task| task.state == TaskState::Failed);
            let last: Option<&AttemptView> = failed.and_then(|task| task.attempts.last());
            let message = last.and_then(|a| a.error.clone()).or_else(|| run.error.clone());
            let summary = match (failed.map(|task| task.name), last) {
                (Some(TaskName::LoadPromptFile), _) => "The server could not read this run's prompt back from its \
                                                        journal. Check the server's disk and logs, then run it again."
                    .into(),
                (_, Some(attempt)) => bedrock_summary(
                    cause(attempt.error.as_deref().unwrap_or_default(), attempt.http_status),
                    failed.map_or(1, |task| task.attempts.len()),
                    attempt.retryable,
                ),
                (_, None) => bedrock_summary(cause(run.error.as_deref().unwrap_or_default(), None), 1, None),
            };
            failure(summary, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use common::{AttemptOutcome, TaskState};

    use super::super::script::Script;
    use super::*;

    fn failed_after(errors: &[(&str, Option<u16>)]) -> RunDetail {
        let mut script = Script::started();
        for (i, (error, status)) in errors.iter().enumerate() {
            let n = u32::try_from(i).unwrap_or(0) + 1;
            let state = if i + 1 == errors.len() { TaskState::Failed } else { TaskState::AwaitingRetry };
            script.call(n).ended(n, state, error, *status);
        }
        script.run(RunState::Failed);
        script.detail()
    }

    #[test]
    fn a_validation_error_says_retrying_will_not_help_and_keeps_the_service_message() {
        let message = "ValidationException: The provided model identifier is invalid.";
        let verdict = verdict(&failed_after(&[(message, Some(400))])).expect("a failed run has a verdict");
        assert_eq!(verdict.tone, Tone::Failure);
        assert_eq!(
            verdict.summary,
            "Bedrock rejected the request; retrying will not help. Check the model id and settings."
        );
        assert_eq!(verdict.message.as_deref(), Some(message));
    }

    #[test]
    fn exhausted_throttling_and_repeated_stalls_name_every_attempt() {
        let throttled = "HTTP 429: ThrottlingException: Too many requests";
        let verdict_of = |errors: &[(&str, Option<u16>)]| verdict(&failed_after(errors)).map(|v| v.summary);
        assert_eq!(
            verdict_of(&[(throttled, Some(429)); 3]).as_deref(),
            Some("Bedrock throttled every attempt. Wait a minute or lower the request rate.")
        );
        let stalled = verdict_of(&[("the response stream was idle for 30 s", Some(200)); 3]).unwrap_or_default();
        assert!(
            stalled.starts_with("The model stream went silent for longer than the stall timeout on every attempt (3).")
        );
        let once = verdict_of(&[("the response stream was idle for 30 s", None)]).unwrap_or_default();
        assert!(once.starts_with("The model stream went silent for longer than the stall timeout. Run it again"));
    }

    #[test]
    fn causes_come_from_the_status_first_then_the_words() {
        assert_eq!(cause("<html>Bad Gateway</html>", Some(502)), Cause::ServerError);
        assert_eq!(cause("Too many requests, please wait before trying again.", Some(200)), Cause::Throttled);
        assert_eq!(cause("AccessDeniedException: no access", Some(403)), Cause::AccessDenied);
        assert_eq!(cause("ResourceNotFoundException: model", None), Cause::UnknownModel);
        assert_eq!(cause("ServiceQuotaExceededException: over", Some(400)), Cause::Quota);
        assert_eq!(cause("Bedrock sent no response within 60 s of the request", None), Cause::NoResponse);
        assert_eq!(cause("the call exceeded --call-timeout-secs (30 s)", None), Cause::CallLimit);
        assert_eq!(cause("could not reach Bedrock: connection refused", None), Cause::Unreachable);
        assert_eq!(
            cause("The model encountered an error while streaming its response.", Some(200)),
            Cause::StreamBroken
        );
        assert_eq!(cause("something new", None), Cause::Unknown);
    }

    #[test]
    fn a_cancel_is_neutral_and_a_crash_is_a_failure() {
        let mut cancelled = Script::started();
        cancelled.call(1).ended(1, TaskState::Cancelled, "cancelled", None).run(RunState::Cancelled);
        let verdict_of_cancel = verdict(&cancelled.detail()).expect("a verdict");
        assert_eq!(verdict_of_cancel.tone, Tone::Neutral);
        assert!(verdict_of_cancel.summary.starts_with("Cancelled."));

        let mut crashed = Script::started();
        crashed.call(1).run(RunState::Crashed);
        let verdict_of_crash = verdict(&crashed.detail()).expect("a verdict");
        assert_eq!(verdict_of_crash.tone, Tone::Failure);
        assert!(verdict_of_crash.summary.starts_with("The server stopped while this run was in flight"));
    }

    #[test]
    fn max_tokens_offers_more_tokens_and_a_plain_answer_needs_no_verdict() {
        let mut cut = Script::started();
        cut.call(1).delta(1, "Some").completed(1, StopReason::MaxTokens);
        let verdict_of_cut = verdict(&cut.detail()).expect("a verdict");
        assert_eq!(verdict_of_cut.tone, Tone::Warning);
        assert_eq!(verdict_of_cut.summary, "The answer hit the max tokens limit (12).");
        assert!(verdict_of_cut.more_tokens);

        let mut whole = Script::started();
        whole.call(1).delta(1, "All").completed(1, StopReason::EndTurn);
        assert_eq!(verdict(&whole.detail()), None);
        let mut running = Script::started();
        running.call(1);
        assert_eq!(verdict(&running.detail()), None);
    }

    #[test]
    fn a_prompt_that_cannot_be_read_back_points_at_the_server() {
        let mut broken = Script::started();
        broken.events.truncate(3);
        broken
            .task(
                TaskName::LoadPromptFile,
                1,
                TaskState::Failed,
                AttemptOutcome { error: Some("checksum mismatch".into()), ..AttemptOutcome::default() },
            )
            .run(RunState::Failed);
        let verdict = verdict(&broken.detail()).expect("a verdict");
        assert!(verdict.summary.contains("read this run's prompt back"), "{}", verdict.summary);
        assert_eq!(verdict.message.as_deref(), Some("checksum mismatch"));
    }
}
