//! How many calls to one model a batch may have in flight: additive increase while calls
//! succeed, multiplicative decrease when Bedrock throttles (the idea of TCP's congestion
//! window and of the AWS SDK's adaptive retry mode). Near the account's quota the limit
//! saw-tooths just below it: few throttled calls, and none of the waste of one-at-a-time.

use std::time::Duration;

use tokio::time::Instant;

/// The limit a model starts at: enough to find the quota quickly, few enough to throttle little.
pub const INITIAL_LIMIT: f64 = 4.0;
/// Throttles within this long after a cut come from calls sent before it: one cut answers them
/// all. About the time a call takes, so the calls that saw the old limit have come back.
pub const COOLDOWN: Duration = Duration::from_secs(2);
/// What a cut keeps of the limit.
const DECREASE: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct Adaptive {
    limit: f64,
    max: f64,
    last_cut: Option<Instant>,
    throttles: u64,
}

impl Adaptive {
    /// A limit that never exceeds `max` calls in flight.
    pub fn new(max: usize) -> Adaptive {
        let max = max.max(1) as f64;
        Adaptive { limit: INITIAL_LIMIT.min(max), max, last_cut: None, throttles: 0 }
    }

    /// Calls that may be in flight now: at least one, so a throttled model is still probed.
    pub fn limit(&self) -> usize {
        self.limit.floor().max(1.0) as usize
    }

    /// Throttled calls seen so far.
    pub fn throttles(&self) -> u64 {
        self.throttles
    }

    /// A call succeeded: one more call in flight per `limit` successes, so a full round of
    /// successes grows the limit by one.
    pub fn succeeded(&mut self) {
        self.limit = (self.limit + 1.0 / self.limit.max(1.0)).min(self.max);
    }

    /// A call was throttled at `now`.
    pub fn throttled(&mut self, now: Instant) {
        self.throttles += 1;
        if self.last_cut.is_some_and(|cut| now.duration_since(cut) < COOLDOWN) {
            return;
        }
        self.limit = (self.limit * DECREASE).max(1.0);
        self.last_cut = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_of_successes_raises_the_limit_by_one() {
        let mut limit = Adaptive::new(100);
        assert_eq!(limit.limit(), 4);
        for _ in 0..4 {
            limit.succeeded();
        }
        // 4 + 1/4 + 1/4.25 + 1/4.49 + 1/4.71 = 4.92 after four successes, 5.12 after five.
        assert_eq!(limit.limit(), 4);
        limit.succeeded();
        assert_eq!(limit.limit(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_throttles_halves_the_limit_once() {
        let mut limit = Adaptive::new(100);
        for _ in 0..50 {
            limit.succeeded();
        }
        // Each success adds 1/limit, so limit² grows by a little over 2: √(16 + 100) ≈ 10.8.
        assert_eq!(limit.limit(), 10);
        let now = Instant::now();
        for _ in 0..8 {
            limit.throttled(now);
        }
        assert_eq!(limit.limit(), 5);
        assert_eq!(limit.throttles(), 8);
        limit.throttled(now + COOLDOWN);
        assert_eq!(limit.limit(), 2, "a throttle after the cooldown cuts again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_stays_between_one_and_the_maximum() {
        let mut limit = Adaptive::new(3);
        assert_eq!(limit.limit(), 3, "a maximum below the initial limit caps it from the start");
        for _ in 0..50 {
            limit.succeeded();
        }
        assert_eq!(limit.limit(), 3);
        let start = Instant::now();
        for n in 0..10 {
            limit.throttled(start + COOLDOWN * n);
        }
        assert_eq!(limit.limit(), 1);
    }
}
