//! Retry policies: how many attempts a task gets and how long it waits between them.
//!
//! Defaults follow the original system: 2 retries for each task (3 attempts in all), 5 s
//! between `load_prompt_file` attempts and 10 s between `call_bedrock` attempts. An optional
//! jitter adds up to that much random delay, so many runs throttled together do not all come
//! back at the same instant.

use std::time::Duration;

/// When and how often a task is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    /// Wait before each retry.
    pub delay: Duration,
    /// Up to this much extra random wait before each retry.
    pub jitter: Duration,
}

impl RetryPolicy {
    /// How many attempts the task may make in all.
    pub fn max_attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// What follows a failed attempt: the wait before the next one, or `None` to give up.
    ///
    /// `random` is a sample from `0.0..1.0`, passed in so the decision stays a pure function.
    pub fn after_failure(&self, attempt: u32, retryable: bool, random: f64) -> Option<Duration> {
        if !retryable || attempt >= self.max_attempts() {
            return None;
        }
        Some(self.delay + self.jitter.mul_f64(random.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy { retries, delay: Duration::from_secs(10), jitter: Duration::from_secs(2) }
    }

    #[test]
    fn the_default_shape_retries_twice_then_gives_up() {
        let policy = policy(2);
        assert_eq!(policy.max_attempts(), 3);
        assert_eq!(policy.after_failure(1, true, 0.0), Some(Duration::from_secs(10)));
        assert_eq!(policy.after_failure(2, true, 0.5), Some(Duration::from_secs(11)));
        assert_eq!(policy.after_failure(3, true, 0.0), None);
    }

    #[test]
    fn a_permanent_error_is_never_retried() {
        assert_eq!(policy(2).after_failure(1, false, 0.0), None);
    }

    proptest! {
        #[test]
        fn delays_stay_within_delay_plus_jitter(retries in 0u32..10, attempt in 1u32..12, random in any::<f64>()) {
            let policy = policy(retries);
            if let Some(wait) = policy.after_failure(attempt, true, random) {
                prop_assert!(attempt < policy.max_attempts());
                prop_assert!(wait >= policy.delay && wait <= policy.delay + policy.jitter);
            } else {
                prop_assert!(attempt >= policy.max_attempts());
            }
        }
    }
}
