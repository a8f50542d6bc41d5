//! How many calls to one model a batch may have in flight: additive increase while calls
//! succeed, multiplicative decrease when Bedrock throttles (the idea of TCP's congestion
//! window and of the AWS SDK's adaptive retry mode). Near the account's quota the limit
//! saw-tooths just below it: few throttled calls, and none of the waste of one-at-a-time.
//!
//! Bedrock's quotas count calls per minute, and a minute's calls can all come in a burst: no
//! throttle says the quota is near until a whole minute's worth was sent, and from then on
//! the calls a minute earlier decide what gets in. So the first throttle also sets a budget of
//! call attempts per minute, the calls that got in over the minute before it (lowered by each
//! throttle of the calls already on their way); attempts beyond it wait for the minute to slide
//! on. The budget grows by one per budget's worth of successes, and a throttle a minute or more
//! after the budget last changed cuts it by 5 %.
//!
//! The quota is the account's, not a replica's: with several replicas (PostgreSQL mode) each
//! one hears about once a second how many calls the others got in within the minute and the
//! budget they learnt ([`Adaptive::heard_from_peers`]), and counts their calls against the same
//! budget. What a throttle teaches then waits for that word, so the budget is set from every
//! replica's calls, not from this one's alone; and a replica that has not met the quota yet
//! adopts a budget learnt elsewhere.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The limit a model starts at: enough to find the quota quickly, few enough to throttle little.
pub const INITIAL_LIMIT: f64 = 4.0;
/// Throttles within this long after a cut come from calls sent before it: one cut answers them
/// all. About the time a call takes, so the calls that saw the old limit have come back.
pub const COOLDOWN: Duration = Duration::from_secs(2);
/// What a cut keeps of the limit.
const DECREASE: f64 = 0.5;
/// The span Bedrock's quotas count over.
pub const MINUTE: Duration = Duration::from_secs(60);
/// What a cut keeps of the per-minute budget.
const BUDGET_DECREASE: f64 = 0.95;
/// How much longer than Bedrock's minute an attempt is counted: it is counted from when it was
/// allowed, before Bedrock sees it (by up to a second on a loaded server), so without this
/// margin the budget would free a slot just before the quota does.
const MARGIN: Duration = Duration::from_secs(2);
/// How long a throttle's lesson waits for the other replicas' word before it is learnt from
/// this replica's calls alone (they may be unreachable).
const LESSON_WAIT: Duration = Duration::from_secs(5);
/// Rounds of calls (of the limit at the time) the last minute must have seen for a throttle to
/// say where the quota is: a throttle after a handful of calls is a passing one.
const ROUNDS_TO_LEARN: f64 = 2.0;

#[derive(Debug, Clone)]
pub struct Adaptive {
    limit: f64,
    max: f64,
    last_cut: Option<Instant>,
    throttles: u64,
    /// Call attempts started within the last minute, and those of them throttled.
    attempts: VecDeque<Instant>,
    throttled: VecDeque<Instant>,
    /// Attempts a minute may start, once a throttle showed where the quota is.
    budget: Option<Budget>,
    /// Whether other replicas share the quota: see [`Adaptive::heard_from_peers`].
    shared: bool,
    /// Calls other replicas got in within their last minute, as they last said.
    elsewhere: u64,
    /// When a throttle's lesson for the budget began to wait for the other replicas' word.
    lesson: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    per_minute: f64,
    /// When the first throttle set it, and when a throttle last cut it.
    learnt: Instant,
    cut: Instant,
}

impl Adaptive {
    /// A limit that never exceeds `max` calls in flight.
    pub fn new(max: usize) -> Adaptive {
        let max = max.max(1) as f64;
        Adaptive {
            limit: INITIAL_LIMIT.min(max),
            max,
            last_cut: None,
            throttles: 0,
            attempts: VecDeque::new(),
            throttled: VecDeque::new(),
            budget: None,
            shared: false,
            elsewhere: 0,
            lesson: None,
        }
    }

    /// The same limit for a replica whose quota other replicas share.
    pub fn shared(mut self) -> Adaptive {
        self.shared = true;
        self
    }

    /// What the other replicas said: the calls they got in within their last minute, and the
    /// lowest budget one of them learnt, if any. A budget learnt elsewhere is adopted while this
    /// replica has none; otherwise a lesson of its own throttles is learnt now, with the others'
    /// calls counted.
    pub fn heard_from_peers(&mut self, admitted: u64, per_minute: Option<f64>, now: Instant) {
        self.elsewhere = admitted;
        if let (None, Some(per_minute)) = (self.budget, per_minute) {
            self.budget = Some(Budget { per_minute: per_minute.max(1.0), learnt: now, cut: now });
            self.lesson = None;
        } else if self.lesson.take().is_some() {
            self.slide(now);
            self.learn(now);
        }
    }

    /// What this replica tells the others: the calls it got in within the last minute, and its
    /// budget.
    pub fn share(&mut self, now: Instant) -> (u64, Option<f64>) {
        self.slide(now);
        let admitted = self.attempts.len().saturating_sub(self.throttled.len()) as u64;
        (admitted, self.budget.map(|budget| budget.per_minute))
    }

    /// Attempts within the last minute: this replica's, and the calls the others got in.
    fn seen(&self) -> f64 {
        (self.attempts.len() as u64 + self.elsewhere) as f64
    }

    /// Sets the budget from the calls that got in over the last minute, or lowers it to them.
    fn learn(&mut self, now: Instant) {
        let admitted = (self.seen() - self.throttled.len() as f64).max(1.0);
        match &mut self.budget {
            None => self.budget = Some(Budget { per_minute: admitted, learnt: now, cut: now }),
            Some(budget) => budget.per_minute = budget.per_minute.min(admitted),
        }
    }

    /// A call attempt (a first one or a retry) started at `now`.
    pub fn attempt_started(&mut self, now: Instant) {
        self.slide(now);
        self.attempts.push_back(now);
    }

    /// Whether another attempt may start at `now` within the per-minute budget. None may while
    /// a throttle's lesson waits for the other replicas: the quota was just met.
    pub fn within_budget(&mut self, now: Instant) -> bool {
        self.slide(now);
        if let Some(since) = self.lesson {
            if now.duration_since(since) < LESSON_WAIT {
                return false;
            }
            self.lesson = None;
            self.learn(now);
        }
        self.budget.is_none_or(|budget| self.seen() < budget.per_minute.floor().max(1.0))
    }

    /// The attempts a minute may start, once known.
    pub fn budget(&self) -> Option<u64> {
        self.budget.map(|budget| budget.per_minute.floor().max(1.0) as u64)
    }

    fn slide(&mut self, now: Instant) {
        for window in [&mut self.attempts, &mut self.throttled] {
            while window.front().is_some_and(|at| now.duration_since(*at) >= MINUTE + MARGIN) {
                window.pop_front();
            }
        }
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
        if let Some(budget) = &mut self.budget {
            budget.per_minute += 1.0 / budget.per_minute.max(1.0);
        }
    }

    /// A call was throttled at `now`.
    pub fn throttled(&mut self, now: Instant) {
        self.throttles += 1;
        self.slide(now);
        self.throttled.push_back(now);
        let seen = self.seen();
        match self.budget.as_mut() {
            None if seen < ROUNDS_TO_LEARN * self.limit => {}
            // A minute on, the budget is settled: a throttle cuts it, at most once a minute.
            Some(budget) if now.duration_since(budget.learnt) >= MINUTE => {
                if now.duration_since(budget.cut) >= MINUTE {
                    budget.per_minute = (budget.per_minute * BUDGET_DECREASE).max(1.0);
                    budget.cut = now;
                }
            }
            // The first throttle sets the budget from what got in; within a minute of it, another
            // one answers an attempt sent before the budget: one more that did not get in. With
            // other replicas what got in is known only with their word (within a second).
            _ if self.shared => self.lesson = self.lesson.or(Some(now)),
            _ => self.learn(now),
        }
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
    async fn the_first_throttle_sets_a_budget_of_the_attempts_that_got_in_over_the_last_minute() {
        let mut limit = Adaptive::new(100);
        let start = Instant::now();
        for n in 0..30 {
            limit.attempt_started(start + Duration::from_secs(n));
        }
        assert!(limit.within_budget(start), "no budget before a throttle");
        let mut early = Adaptive::new(100);
        early.attempt_started(start);
        early.throttled(start);
        assert_eq!(early.budget(), None, "one call is not two rounds of the limit of 4: a passing throttle");
        // The 31st attempt is throttled: 30 got in within the minute.
        let now = start + Duration::from_secs(30);
        limit.attempt_started(now);
        limit.throttled(now);
        assert_eq!(limit.budget(), Some(30));
        assert!(!limit.within_budget(now), "31 attempts in the last minute");
        // Counted for 62 s (a margin of 2 s): at 62 s the attempt of 0 s has gone, 30 remain
        // and still none may start; at 63 s the one of 1 s has gone too.
        assert!(!limit.within_budget(start + MINUTE + MARGIN));
        assert!(limit.within_budget(start + MINUTE + MARGIN + Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_learns_from_the_first_minute_then_grows_with_successes_and_shrinks_at_most_once_a_minute() {
        let mut limit = Adaptive::new(100);
        let start = Instant::now();
        for _ in 0..20 {
            limit.attempt_started(start);
        }
        limit.throttled(start);
        assert_eq!(limit.budget(), Some(19), "20 attempts, one of them throttled");
        limit.throttled(start);
        assert_eq!(limit.budget(), Some(18), "another attempt already on its way did not get in");
        for _ in 0..20 {
            limit.succeeded();
        }
        assert_eq!(limit.budget(), Some(19), "18 + 20 × about 1/18.5");
        limit.throttled(start + MINUTE);
        assert_eq!(limit.budget(), Some(18), "19.0x × 0.95, a minute after the budget was set");
        limit.throttled(start + MINUTE + Duration::from_secs(59));
        assert_eq!(limit.budget(), Some(18), "at most one cut a minute");
        limit.throttled(start + MINUTE * 2);
        assert_eq!(limit.budget(), Some(17), "18.1 × 0.95");
    }

    #[tokio::test(start_paused = true)]
    async fn with_other_replicas_a_throttle_teaches_the_budget_once_their_calls_are_heard() {
        let mut here = Adaptive::new(100).shared();
        let start = Instant::now();
        for _ in 0..10 {
            here.attempt_started(start);
        }
        here.throttled(start);
        assert_eq!(here.budget(), None, "what got in is not known before the others say");
        assert!(!here.within_budget(start), "meanwhile nothing starts: the quota was just met");
        // The others got 20 calls in within the minute: with the 9 of this replica that got
        // in, the account's minute admitted 29.
        here.heard_from_peers(20, None, start);
        assert_eq!(here.budget(), Some(29));
        assert!(!here.within_budget(start), "10 attempts here and 20 calls elsewhere, over a budget of 29");
        here.heard_from_peers(18, None, start);
        assert!(here.within_budget(start), "10 + 18 = 28: one more may start");
        assert_eq!(here.share(start), (9, Some(29.0)), "what this replica tells the others: 9 got in");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lesson_the_other_replicas_never_answer_is_learnt_from_this_replica_alone() {
        let mut here = Adaptive::new(100).shared();
        let start = Instant::now();
        for _ in 0..10 {
            here.attempt_started(start);
        }
        here.throttled(start);
        assert!(!here.within_budget(start + LESSON_WAIT - Duration::from_millis(1)));
        // Five seconds without a word: 9 of this replica's 10 calls got in, so 9 it is; and
        // those 10 fill it.
        assert!(!here.within_budget(start + LESSON_WAIT));
        assert_eq!(here.budget(), Some(9));
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_learnt_by_another_replica_is_adopted_before_meeting_the_quota_here() {
        let mut here = Adaptive::new(100).shared();
        let now = Instant::now();
        here.heard_from_peers(0, None, now);
        assert_eq!(here.budget(), None);
        for _ in 0..8 {
            here.attempt_started(now);
        }
        here.throttled(now);
        // The lesson of that throttle (7 got in here) gives way to the budget learnt elsewhere.
        here.heard_from_peers(5, Some(30.4), now);
        assert_eq!(here.budget(), Some(30));
        for _ in 0..17 {
            here.attempt_started(now);
        }
        assert!(!here.within_budget(now), "25 attempts here and 5 calls elsewhere fill a budget of 30");
        // Once it has a budget, a peer's lower one does not replace it.
        here.heard_from_peers(0, Some(10.0), now);
        assert_eq!(here.budget(), Some(30));
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
