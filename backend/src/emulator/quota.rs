//! Per-model quotas: requests and tokens per minute over a sliding window, refused with a
//! `ThrottlingException` as Bedrock refuses calls over an account's on-demand quota.
//!
//! A call is charged when it is admitted, with the tokens its deterministic reply uses (input
//! plus output), so whether the next call fits never depends on how fast earlier streams drain.
//! A refused call is not charged: a client retrying with backoff gets in once the window slides.
//! A call whose tokens alone exceed the token quota is never admitted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::Quota;
// Tokio's clock, so tests can pause and advance it instead of waiting out real minutes.
use tokio::time::Instant;

use super::error::BedrockError;

/// Bedrock's quotas are per minute. The window slides rather than resetting on the minute, so a
/// burst cannot take twice the quota across a minute boundary.
const WINDOW: Duration = Duration::from_secs(60);

/// The limit a refused call would have gone over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Exceeded {
    #[error("requests per minute")]
    Requests,
    #[error("tokens per minute")]
    Tokens,
}

impl From<Exceeded> for BedrockError {
    fn from(_: Exceeded) -> Self {
        // Bedrock answers both limits alike, and clients tell them apart only by waiting.
        BedrockError::Throttling
    }
}

/// Admits or refuses calls under one [`Quota`], applied to each model separately.
///
/// The windows sit under a std mutex: a check is a few deque operations and never spans an
/// `.await`, and check-then-charge must be one step, or two concurrent calls could both take
/// the last slot.
#[derive(Debug)]
pub(crate) struct Quotas {
    quota: Quota,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Only models called within the last minute: an emptied window is dropped, so ids seen
    /// once do not stay in memory.
    windows: HashMap<String, Window>,
    /// Calls refused so far, for the emulator's status.
    throttled: u64,
}

/// One model's admitted calls of the last minute, oldest first, with the sum of their tokens.
///
/// It holds at most `rpm` calls, or with no request limit at most `tpm` (a call charging no
/// token is then not recorded, as it counts against nothing).
#[derive(Debug, Default)]
struct Window {
    calls: VecDeque<(Instant, u32)>,
    tokens: u64,
}

impl Window {
    fn slide(&mut self, now: Instant) {
        while let Some(&(at, tokens)) = self.calls.front() {
            if now.duration_since(at) < WINDOW {
                break;
            }
            self.calls.pop_front();
            self.tokens -= u64::from(tokens);
        }
    }
}

impl Quotas {
    pub(crate) fn new(quota: Quota) -> Self {
        Quotas { quota, state: Mutex::new(State::default()) }
    }

    /// The quota for the emulator's status; `None` when no limit is set.
    pub(crate) fn quota(&self) -> Option<Quota> {
        (!self.quota.is_unlimited()).then_some(self.quota)
    }

    /// Calls refused since the emulator started.
    pub(crate) fn throttled(&self) -> u64 {
        self.lock().throttled
    }

    /// Admits one call to `model` that uses `tokens`, charging it to the model's window, or
    /// says which limit it would exceed.
    pub(crate) fn admit(&self, model: &str, tokens: u32) -> Result<(), Exceeded> {
        let Quota { rpm, tpm } = self.quota;
        if self.quota.is_unlimited() {
            return Ok(());
        }
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        state.windows.retain(|_, window| {
            window.slide(now);
            !window.calls.is_empty()
        });
        let window = state.windows.entry(model.to_owned()).or_default();
        let exceeded = if rpm != 0 && window.calls.len() >= usize::try_from(rpm).unwrap_or(usize::MAX) {
            Some(Exceeded::Requests)
        } else if tpm != 0 && window.tokens + u64::from(tokens) > u64::from(tpm) {
            Some(Exceeded::Tokens)
        } else {
            None
        };
        if let Some(limit) = exceeded {
            let (calls, used) = (window.calls.len(), window.tokens);
            state.throttled += 1;
            drop(guard);
            tracing::debug!(model, %limit, rpm, tpm, calls, tokens_used = used, tokens, "emulator quota refuses a call");
            return Err(limit);
        }
        if rpm != 0 || tokens != 0 {
            window.calls.push_back((now, tokens));
            window.tokens += u64::from(tokens);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the windows consistent before the next statement can panic, so
        // a poisoned lock still guards valid state: recover it instead of failing every call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "anthropic.claude-3-sonnet-20240229-v1:0";
    const OTHER: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

    fn quotas(rpm: u32, tpm: u32) -> Quotas {
        Quotas::new(Quota { rpm, tpm })
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_quota_admits_n_calls_a_minute_and_again_once_the_window_slides() {
        let quotas = quotas(3, 0);
        for _ in 0..3 {
            assert_eq!(quotas.admit(MODEL, 10), Ok(()));
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        assert_eq!(quotas.admit(MODEL, 10), Err(Exceeded::Requests));
        // The first call was 30 s ago: 29 s more and it is still in the window.
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(quotas.admit(MODEL, 10), Err(Exceeded::Requests));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(quotas.admit(MODEL, 10), Ok(()), "the first call left the window");
        assert_eq!(quotas.admit(MODEL, 10), Err(Exceeded::Requests), "only one slot came free");
        assert_eq!(quotas.throttled(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_quota_counts_the_tokens_of_admitted_calls() {
        let quotas = quotas(0, 100);
        assert_eq!(quotas.admit(MODEL, 60), Ok(()));
        assert_eq!(quotas.admit(MODEL, 41), Err(Exceeded::Tokens));
        assert_eq!(quotas.admit(MODEL, 40), Ok(()), "exactly the quota is allowed, and the refusal cost nothing");
        assert_eq!(quotas.admit(MODEL, 1), Err(Exceeded::Tokens));
        tokio::time::advance(WINDOW).await;
        assert_eq!(quotas.admit(MODEL, 100), Ok(()));
        assert_eq!(quotas.throttled(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_larger_than_the_token_quota_is_never_admitted() {
        let quotas = quotas(0, 100);
        assert_eq!(quotas.admit(MODEL, 101), Err(Exceeded::Tokens));
        tokio::time::advance(WINDOW * 2).await;
        assert_eq!(quotas.admit(MODEL, 101), Err(Exceeded::Tokens));
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_limit_is_checked_before_the_token_limit() {
        let quotas = quotas(1, 100);
        assert_eq!(quotas.admit(MODEL, 50), Ok(()));
        assert_eq!(quotas.admit(MODEL, 500), Err(Exceeded::Requests));
    }

    #[tokio::test(start_paused = true)]
    async fn each_model_has_a_quota_of_its_own() {
        let quotas = quotas(1, 0);
        assert_eq!(quotas.admit(MODEL, 1), Ok(()));
        assert_eq!(quotas.admit(MODEL, 1), Err(Exceeded::Requests));
        assert_eq!(quotas.admit(OTHER, 1), Ok(()), "another model is not held back");
        assert_eq!(quotas.admit(OTHER, 1), Err(Exceeded::Requests));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_no_limit() {
        let quotas = quotas(0, 0);
        for _ in 0..10_000 {
            assert_eq!(quotas.admit(MODEL, u32::MAX), Ok(()));
        }
        assert_eq!((quotas.quota(), quotas.throttled()), (None, 0));
        assert!(quotas.lock().windows.is_empty(), "nothing is recorded without a quota");
        let requests_only = self::quotas(2, 0);
        assert_eq!(requests_only.quota(), Some(Quota { rpm: 2, tpm: 0 }));
        assert_eq!(requests_only.admit(MODEL, u32::MAX), Ok(()), "no token limit");
    }

    #[tokio::test(start_paused = true)]
    async fn windows_of_models_no_longer_called_are_dropped() {
        let quotas = quotas(5, 0);
        for model in [MODEL, OTHER] {
            assert_eq!(quotas.admit(model, 1), Ok(()));
        }
        assert_eq!(quotas.lock().windows.len(), 2);
        tokio::time::advance(WINDOW).await;
        assert_eq!(quotas.admit(MODEL, 1), Ok(()));
        assert_eq!(quotas.lock().windows.len(), 1, "only the model called in the last minute is kept");
    }
}
