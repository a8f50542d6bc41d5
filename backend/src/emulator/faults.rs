//! Fault injection: which model calls fail, and how, under a replaceable [`FaultPlan`].
//!
//! The module is public for [`fails`] alone: the end-to-end tests predict a run's outcome under a
//! plan with the very rule the emulator applies.

use std::sync::Mutex;

use common::{EmulatorStatus, FaultKind, FaultPlan};

use super::error::BedrockError;

/// What a fault does to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Injected {
    /// The call is refused with this error before any answer.
    Refuse(BedrockError),
    /// The answer starts, then the connection goes silent for good.
    Stall,
    /// Half the answer arrives, then the stream or body just ends.
    Cut,
    /// Half the answer streams, then this error arrives as an exception frame; a non-streaming
    /// call, having no stream, is refused with it instead.
    MidStream(BedrockError),
}

impl Injected {
    pub(crate) fn of(kind: FaultKind) -> Self {
        match kind {
            FaultKind::Throttle => Injected::Refuse(BedrockError::Throttling),
            FaultKind::Internal => Injected::Refuse(BedrockError::InternalServer),
            FaultKind::Unavailable => Injected::Refuse(BedrockError::ServiceUnavailable),
            FaultKind::Validation => Injected::Refuse(BedrockError::invalid(
                "The emulator's fault plan rejected this request (injected ValidationException).",
            )),
            FaultKind::Stall => Injected::Stall,
            FaultKind::Cut => Injected::Cut,
            FaultKind::StreamThrottle => Injected::MidStream(BedrockError::Throttling),
            FaultKind::StreamModelError => Injected::MidStream(BedrockError::ModelStreamError),
            FaultKind::StreamInternal => Injected::MidStream(BedrockError::InternalServer),
        }
    }
}

/// Decides, call by call, whether the emulator injects a fault.
///
/// Plan and counters sit under one std mutex: the critical section is a few integer operations
/// and never spans an `.await`, so an async mutex would only add cost, and keeping them together
/// means a plan replaced mid-burst can never be applied with the previous plan's call count.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    plan: Option<FaultPlan>,
    /// Model calls since the emulator started, for [`EmulatorStatus`].
    calls: u64,
    /// Calls since the current plan was set: "fail the first N" counts from the moment it is set.
    calls_under_plan: u64,
}

impl Faults {
    pub(crate) fn new(plan: Option<FaultPlan>) -> Self {
        Faults { state: Mutex::new(State { plan, calls: 0, calls_under_plan: 0 }) }
    }

    /// Replaces the plan; the new plan's "first N calls" start with the next call.
    pub(crate) fn set(&self, plan: Option<FaultPlan>) {
        let mut state = self.lock();
        state.plan = plan;
        state.calls_under_plan = 0;
    }

    /// `calls` counts from the emulator's start, not from when the plan was set. The quota's
    /// part is left empty: the quota is not this module's to report.
    pub(crate) fn status(&self) -> EmulatorStatus {
        let state = self.lock();
        let remaining_first = state.plan.map_or(0, |plan| {
            let used = u32::try_from(state.calls_under_plan).unwrap_or(u32::MAX);
            plan.fail_first.saturating_sub(used)
        });
        EmulatorStatus { plan: state.plan, calls: state.calls, remaining_first, quota: None, throttled: 0 }
    }

    /// Counts one model call and returns the fault to inject into it, if any.
    pub(crate) fn next_call(&self) -> Option<Injected> {
        let kind = {
            let mut state = self.lock();
            state.calls += 1;
            state.calls_under_plan += 1;
            let plan = state.plan?;
            fails(plan, state.calls_under_plan).then_some(plan.kind)
        };
        kind.map(Injected::of)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain integers updated atomically under the lock, so a panic elsewhere
        // cannot leave it inconsistent: recover from poisoning instead of propagating it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether call number `call` (from 1) under `plan` fails: the first `fail_first`, then every `every_nth` after those.
pub fn fails(plan: FaultPlan, call: u64) -> bool {
    let first = u64::from(plan.fail_first);
    if call <= first {
        return true;
    }
    plan.every_nth != 0 && (call - first).is_multiple_of(u64::from(plan.every_nth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(fail_first: u32, every_nth: u32) -> FaultPlan {
        FaultPlan { kind: FaultKind::Throttle, fail_first, every_nth }
    }

    fn pattern(faults: &Faults, calls: usize) -> Vec<bool> {
        (0..calls).map(|_| faults.next_call().is_some()).collect()
    }

    #[test]
    fn without_a_plan_no_call_fails_but_all_are_counted() {
        let faults = Faults::new(None);
        assert_eq!(pattern(&faults, 3), [false; 3]);
        let status = faults.status();
        assert_eq!((status.plan, status.calls, status.remaining_first), (None, 3, 0));
    }

    #[test]
    fn the_first_n_calls_fail_then_the_rest_succeed() {
        let faults = Faults::new(Some(plan(2, 0)));
        assert_eq!(pattern(&faults, 5), [true, true, false, false, false]);
    }

    #[test]
    fn every_nth_call_after_the_first_ones_fails() {
        let faults = Faults::new(Some(plan(1, 3)));
        assert_eq!(pattern(&faults, 8), [true, false, false, true, false, false, true, false]);
        let faults = Faults::new(Some(plan(0, 2)));
        assert_eq!(pattern(&faults, 4), [false, true, false, true]);
    }

    #[test]
    fn a_replaced_plan_counts_its_first_calls_from_when_it_was_set() {
        let faults = Faults::new(None);
        assert_eq!(pattern(&faults, 2), [false, false]);
        faults.set(Some(plan(1, 0)));
        assert_eq!(faults.status().remaining_first, 1);
        assert_eq!(faults.next_call(), Some(Injected::Refuse(BedrockError::Throttling)));
        assert_eq!(faults.status().remaining_first, 0, "the one failing call is used up");
        assert_eq!(faults.next_call(), None);
        faults.set(None);
        assert_eq!(faults.next_call(), None);
        assert_eq!(faults.status().calls, 5);
    }
}
