//! The stall indicator: how long a streaming answer has been silent, against the server's
//! stream idle timeout, so a stalled stream does not pass for a slow model.

use common::{RunDetail, TaskName, TaskState};

use super::outputs::AttemptOutputs;

/// Silence shorter than this is a model thinking between tokens, not worth a line.
pub const NOTICE_AFTER_MS: u64 = 3_000;

/// "No tokens for 18 s · stall timeout at 30 s" while the current `call_bedrock` attempt has
/// written text and then fallen silent for [`NOTICE_AFTER_MS`] or more; `timeout_ms` 0 (a
/// server that does not say) leaves the deadline out.
///
/// Times are the server's (the delta's `ts`) against the browser's clock, as the retry
/// countdown does: on one machine, or NTP-synchronised ones, they agree to well under a second.
pub fn stall_notice(run: &RunDetail, outputs: &AttemptOutputs, now_ms: f64, timeout_ms: u64) -> Option<String> {
    if run.state.is_terminal() {
        return None;
    }
    let current = run.tasks.iter().find(|t| t.name == TaskName::CallBedrock)?.attempts.last()?;
    let (attempt, at) = outputs.last_delta()?;
    if current.state != TaskState::Running || attempt != current.number {
        return None;
    }
    let silent_ms = now_ms - at.timestamp_millis() as f64;
    if silent_ms < NOTICE_AFTER_MS as f64 {
        return None;
    }
    let silent_s = (silent_ms / 1_000.0) as u64;
    Some(match timeout_ms {
        0 => format!("No tokens for {silent_s} s"),
        timeout => format!("No tokens for {silent_s} s · stall timeout at {} s", timeout.div_ceil(1_000)),
    })
}

#[cfg(test)]
mod tests {
    use common::{RunState, StopReason, TaskState};

    use super::super::script::Script;
    use super::*;

    fn ms(seconds: f64) -> f64 {
        seconds * 1_000.0
    }

    #[test]
    fn silence_after_text_shows_once_it_lasts_and_counts_up_to_the_deadline() {
        let mut script = Script::started();
        script.call(1).delta(1, "One");
        let last = Script::at(script.events.len() as u64).timestamp_millis() as f64;
        let (detail, outputs) = (script.detail(), script.outputs());
        assert_eq!(stall_notice(&detail, &outputs, last + ms(2.9), 30_000), None, "a pause, not a stall");
        assert_eq!(
            stall_notice(&detail, &outputs, last + ms(18.4), 30_000).as_deref(),
            Some("No tokens for 18 s · stall timeout at 30 s")
        );
        assert_eq!(stall_notice(&detail, &outputs, last + ms(4.0), 0).as_deref(), Some("No tokens for 4 s"));
        assert_eq!(stall_notice(&detail, &outputs, last - ms(60.0), 30_000), None, "a clock behind the server");
    }

    #[test]
    fn no_notice_before_text_between_attempts_or_once_the_run_ended() {
        let mut script = Script::started();
        script.call(1);
        let far = ms(1e6);
        assert_eq!(stall_notice(&script.detail(), &script.outputs(), far, 30_000), None, "no text yet");
        script.delta(1, "One").ended(1, TaskState::AwaitingRetry, "idle", None);
        assert_eq!(stall_notice(&script.detail(), &script.outputs(), far, 30_000), None, "awaiting retry");
        script.call(2);
        assert_eq!(stall_notice(&script.detail(), &script.outputs(), far, 30_000), None, "the new attempt is silent");
        script.delta(2, "Two").completed(2, StopReason::EndTurn);
        assert_eq!(script.detail().state, RunState::Completed);
        assert_eq!(stall_notice(&script.detail(), &script.outputs(), far, 30_000), None, "done");
    }
}
