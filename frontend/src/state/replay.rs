//! Requests that run a finished run's input again, each linked to that run (`replay_of`).

use common::{RunDetail, SubmitRun};

/// The same input again.
pub fn same_input(run: &RunDetail) -> SubmitRun {
    SubmitRun {
        prompt: run.prompt.clone(),
        model_id: Some(run.model_id.clone()),
        system: run.system.clone(),
        max_tokens: Some(run.max_tokens),
        temperature: run.temperature,
        replay_of: Some(run.id),
    }
}

/// The same input with twice the max tokens, capped at the server's limit (`None` when not
/// known yet: the server checks it anyway); `None` when the run already had the limit, as
/// running it again could only stop at the same place.
pub fn with_more_tokens(run: &RunDetail, limit: Option<u32>) -> Option<SubmitRun> {
    let doubled = run.max_tokens.saturating_mul(2);
    let max_tokens = limit.map_or(doubled, |limit| doubled.min(limit));
    (max_tokens > run.max_tokens).then(|| SubmitRun { max_tokens: Some(max_tokens), ..same_input(run) })
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use common::{Event, EventKind, RunId};
    use uuid::Uuid;

    use super::*;

    fn run(max_tokens: u32) -> RunDetail {
        let created = Event {
            run_id: RunId(Uuid::nil()),
            seq: 1,
            ts: DateTime::UNIX_EPOCH,
            kind: EventKind::RunCreated {
                prompt: "p".into(),
                model_id: "m".into(),
                system: Some("s".into()),
                max_tokens,
                temperature: Some(0.2),
                max_attempts: 3,
                replay_of: None,
                batch_id: None,
            },
        };
        RunDetail::from_created(&created).unwrap_or_else(|| panic!("a created event"))
    }

    #[test]
    fn running_again_keeps_the_input_and_links_back() {
        let request = same_input(&run(12));
        assert_eq!(request.replay_of, Some(RunId(Uuid::nil())));
        assert_eq!((request.max_tokens, request.temperature), (Some(12), Some(0.2)));
        assert_eq!((request.system.as_deref(), request.model_id.as_deref()), (Some("s"), Some("m")));
    }

    #[test]
    fn more_tokens_doubles_up_to_the_limit_and_never_repeats_the_limit() {
        assert_eq!(with_more_tokens(&run(12), Some(4096)).and_then(|r| r.max_tokens), Some(24));
        assert_eq!(with_more_tokens(&run(3000), Some(4096)).and_then(|r| r.max_tokens), Some(4096));
        assert_eq!(with_more_tokens(&run(4096), Some(4096)), None);
        assert_eq!(with_more_tokens(&run(12), None).and_then(|r| r.max_tokens), Some(24));
        assert_eq!(with_more_tokens(&run(12), None).and_then(|r| r.replay_of), Some(RunId(Uuid::nil())));
    }
}
