//! What the emulator's fault plan still has in store, in words: the panel and the run page's
//! one-line form both say it this way.

use common::{EmulatorStatus, FaultKind};

use crate::format;

/// One injected failure of `kind`, and several, as a person names them.
fn noun(kind: FaultKind) -> (&'static str, &'static str) {
    match kind {
        FaultKind::Throttle => ("throttle", "throttles"),
        FaultKind::Internal => ("500 error", "500 errors"),
        FaultKind::Unavailable => ("503 error", "503 errors"),
        FaultKind::Stall => ("stalled stream", "stalled streams"),
        FaultKind::Validation => ("validation error", "validation errors"),
        FaultKind::Cut => ("cut-off answer", "cut-off answers"),
        FaultKind::StreamThrottle => ("mid-stream throttle", "mid-stream throttles"),
        FaultKind::StreamModelError => ("mid-stream model error", "mid-stream model errors"),
        FaultKind::StreamInternal => ("mid-stream 500 error", "mid-stream 500 errors"),
    }
}

/// What the plan will still do, e.g. "1 of 2 throttles left" or "every 7th call: throttle".
pub fn remaining(status: &EmulatorStatus) -> String {
    let Some(plan) = status.plan else { return "No faults: every call succeeds".to_owned() };
    let (one, many) = noun(plan.kind);
    let first = match (plan.fail_first, status.remaining_first) {
        (0, _) => None,
        (total, 0) => Some(format!("all {total} {} used up", if total == 1 { one } else { many })),
        (total, left) => Some(format!("{left} of {total} {} left", if total == 1 { one } else { many })),
    };
    let every = (plan.every_nth > 0).then(|| format!("every {} call: {one}", format::ordinal(plan.every_nth.into())));
    match (first, every) {
        (Some(first), Some(every)) => format!("{first}, then {every}"),
        (Some(first), None) if status.remaining_first == 0 => format!("{first}; calls succeed now"),
        (Some(first), None) => first,
        (None, Some(every)) => every,
        (None, None) => "No faults: every call succeeds".to_owned(),
    }
}

/// Whether the plan can still fail a call.
pub fn is_active(status: &EmulatorStatus) -> bool {
    status.plan.is_some_and(|plan| status.remaining_first > 0 || plan.every_nth > 0)
}

#[cfg(test)]
mod tests {
    use common::FaultPlan;

    use super::*;

    fn status(kind: FaultKind, fail_first: u32, every_nth: u32, remaining_first: u32) -> EmulatorStatus {
        EmulatorStatus {
            plan: Some(FaultPlan { kind, fail_first, every_nth }),
            calls: 9,
            remaining_first,
            quota: None,
            throttled: 0,
        }
    }

    #[test]
    fn a_plan_counts_down_what_is_left() {
        assert_eq!(remaining(&status(FaultKind::Throttle, 2, 0, 2)), "2 of 2 throttles left");
        assert_eq!(remaining(&status(FaultKind::Throttle, 2, 0, 1)), "1 of 2 throttles left");
        assert_eq!(remaining(&status(FaultKind::Stall, 1, 0, 1)), "1 of 1 stalled stream left");
    }

    #[test]
    fn a_used_up_plan_says_so_instead_of_promising_more_failures() {
        let used = status(FaultKind::Stall, 1, 0, 0);
        assert_eq!(remaining(&used), "all 1 stalled stream used up; calls succeed now");
        assert!(!is_active(&used));
    }

    #[test]
    fn a_plan_of_only_every_nth_call_never_mentions_zero_first_calls() {
        let every = status(FaultKind::Throttle, 0, 7, 0);
        assert_eq!(remaining(&every), "every 7th call: throttle");
        assert!(is_active(&every));
        assert_eq!(
            remaining(&status(FaultKind::Internal, 3, 2, 1)),
            "1 of 3 500 errors left, then every 2nd call: 500 error"
        );
    }

    #[test]
    fn no_plan_means_every_call_succeeds() {
        let none = EmulatorStatus { plan: None, calls: 4, remaining_first: 0, quota: None, throttled: 0 };
        assert_eq!(remaining(&none), "No faults: every call succeeds");
        assert!(!is_active(&none));
    }
}
