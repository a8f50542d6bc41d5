//! The live event feed a client follows: all runs, or one run resumed after a given `seq`.
//!
//! A [`Feed`] yields each event once, in order per run, with no gap: it starts from the backlog
//! the client asked for, then the hub's broadcast. A follower too slow for the broadcast is not
//! dropped: it is resubscribed and sent what it missed, re-read from memory (or, for one run
//! no longer in memory, from the store), so its memory stays bounded — the broadcast buffer is
//! shared and fixed, and what it missed is re-read rather than queued for it. The WebSocket and
//! `backend run` both follow runs through it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::RunId;
use tokio::sync::broadcast::error::RecvError;

use crate::events::{Hub, Subscription};
use crate::metrics::Metrics;
use crate::runs::Runs;
use crate::store::{RunQuery, StoreError};
use crate::wire::Published;

/// The `last_seen` of a run whose terminal event was handed out (or that had ended before the
/// feed opened).
const DONE: u64 = crate::events::ENDED;

/// Runs read per page, after a lag, while looking for runs an all-runs feed never heard of.
const NEW_RUNS_PAGE: u32 = 1000;

/// Runs remembered by an all-runs feed before it first forgets those that left memory.
const FORGET_ABOVE: usize = 4096;

/// How long after its creation a run may still be unheard of by a feed that is not lagging: its
/// first event may still be on its way (in a cluster, from another replica's poll). A feed
/// remembers the runs created this recently, so a later lag neither misses nor resends them.
const HEARD_WITHIN: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// Why a feed could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("no run with id {0}")]
    NoSuchRun(RunId),
    #[error("after_seq {after_seq} is beyond the run's last event ({last_seq})")]
    BeyondLastEvent { after_seq: u64, last_seq: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One client's position in the event stream.
pub struct Feed {
    hub: Arc<Hub>,
    runs: Arc<Runs>,
    metrics: Arc<Metrics>,
    /// The one run followed, or `None` for all runs.
    only: Option<RunId>,
    /// The last `seq` handed out per run: drops the overlap between backlog and live feed.
    last_seen: HashMap<RunId, u64>,
    subscription: Subscription,
    /// Backlog events not yet handed out.
    pending: VecDeque<Published>,
    /// Runs whose missed events must be read from the store: they left memory meanwhile.
    backfill: Vec<RunId>,
    /// For an all-runs feed: every run created before this instant that it must follow is in
    /// `last_seen` or was forgotten after its end, so after a lag only runs created since are
    /// looked for in the store.
    heard_all_before: DateTime<Utc>,
    /// After a lag, look in the store for runs created since `heard_all_before` that left memory.
    find_new_runs: bool,
    /// `last_seen` is pruned once it grows past this; doubling it keeps pruning amortised.
    forget_above: usize,
}

impl Feed {
    /// Follows every run from now on, or `run` after its `seq`.
    pub async fn open(
        hub: Arc<Hub>,
        runs: Arc<Runs>,
        metrics: Arc<Metrics>,
        run: Option<(RunId, u64)>,
    ) -> Result<Feed, FeedError> {
        if let Some((id, after_seq)) = run {
            let detail = runs.detail(id).await?.ok_or(FeedError::NoSuchRun(id))?;
            if after_seq > detail.last_seq {
                // In a cluster, this replica's copy of a run another one executes may trail the
                // store by a moment: a client coming from that replica may have seen more.
                let stored = runs.store().run_events(id, detail.last_seq).await?.len() as u64;
                let last_seq = detail.last_seq + stored;
                if after_seq > last_seq {
                    return Err(FeedError::BeyondLastEvent { after_seq, last_seq });
                }
            }
        }
        let mut subscription = hub.subscribe(run);
        // Following all runs starts from now: runs already in memory resume where they stand.
        let mut last_seen = std::mem::take(&mut subscription.positions);
        last_seen.extend(run);
        let mut feed = Feed {
            hub,
            runs,
            metrics,
            only: run.map(|(id, _)| id),
            last_seen,
            backfill: Vec::new(),
            heard_all_before: Utc::now(),
            find_new_runs: false,
            forget_above: FORGET_ABOVE,
            pending: VecDeque::new(),
            subscription,
        };
        feed.take_backlog();
        Ok(feed)
    }

    fn take_backlog(&mut self) {
        let mut backlog = std::mem::take(&mut self.subscription.backlog);
        backlog.sort_by_key(|e| (e.event.run_id, e.event.seq));
        self.pending = backlog.into();
        if let (Some(id), false) = (self.only, self.subscription.in_memory) {
            self.backfill.push(id);
        }
    }

    /// Whether the event is new to this client; records it if so.
    fn admit(&mut self, event: &Published) -> bool {
        if self.only.is_some_and(|id| id != event.event.run_id) {
            return false;
        }
        let seen = self.last_seen.entry(event.event.run_id).or_default();
        if event.event.seq <= *seen {
            return false;
        }
        // Nothing follows a terminal event: mark the run done, so a resync neither resends it
        // nor asks the store about it.
        *seen = if event.event.kind.ends_run() { DONE } else { event.event.seq };
        true
    }

    /// The next event for this client; `None` if the hub stops broadcasting (it never does while
    /// this feed holds it, but a caller must not loop on that).
    ///
    /// Cancel-safe: state changes only after each await completes, so it can sit in a
    /// `select!` beside the socket's incoming messages.
    pub async fn next(&mut self) -> Result<Option<Published>, StoreError> {
        loop {
            if self.find_new_runs {
                self.find_unheard_runs().await?;
                self.find_new_runs = false;
            }
            while let Some(&id) = self.backfill.last() {
                let after = self.last_seen.get(&id).copied().unwrap_or(0);
                let stored = self.runs.events_after(id, after).await?.unwrap_or_default();
                self.pending.extend(stored);
                self.backfill.pop();
            }
            while let Some(event) = self.pending.pop_front() {
                if self.admit(&event) {
                    return Ok(Some(event));
                }
            }
            self.forget_finished();
            match self.subscription.live.recv().await {
                Ok(event) => {
                    if self.admit(&event) {
                        return Ok(Some(event));
                    }
                }
                Err(RecvError::Lagged(missed)) => self.resync(missed),
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// Runs that came and left memory while this feed lagged, unheard of: every one created
    /// since `heard_all_before`, page by page, however many there are.
    async fn find_unheard_runs(&mut self) -> Result<(), StoreError> {
        let mut query = RunQuery { limit: NEW_RUNS_PAGE, since: Some(self.heard_all_before), ..RunQuery::default() };
        loop {
            let page = self.runs.list(&query).await?;
            let (hub, seen, horizon) = (&self.hub, &self.last_seen, self.heard_all_before);
            // A run whose id is older than the horizon was heard of (and may have been pruned
            // since): its `created_at`, stamped a moment after its id, can still pass `since`.
            let gone = page
                .iter()
                .map(|r| r.id)
                .filter(|id| created_at(*id).is_none_or(|at| newer_than(at, horizon)))
                .filter(|id| !seen.contains_key(id) && !hub.holds(*id));
            self.backfill.extend(gone);
            match page.last() {
                Some(oldest) if page.len() == NEW_RUNS_PAGE as usize && query.before != Some(oldest.id) => {
                    query.before = Some(oldest.id);
                }
                _ => return Ok(()),
            }
        }
    }

    /// Runs gone from memory after their backfill get no new events: forget them so the map
    /// stays small — but not those created too recently to be sure every run of that moment
    /// was heard of, or a later lag would take them for new and send them again.
    fn forget_finished(&mut self) {
        let caught_up = !self.find_new_runs && self.backfill.is_empty() && self.pending.is_empty();
        if self.only.is_some() || self.last_seen.len() <= self.forget_above || !caught_up {
            return;
        }
        self.heard_all_before = self.heard_all_before.max(Utc::now() - HEARD_WITHIN);
        let (hub, horizon) = (&self.hub, self.heard_all_before);
        // A run whose end this feed has not handed out yet is kept whatever its age: the hub may
        // have evicted it while its last events wait in the broadcast for this feed.
        self.last_seen.retain(|id, seen| {
            *seen != DONE || hub.holds(*id) || created_at(*id).is_none_or(|at| newer_than(at, horizon))
        });
        self.forget_above = FORGET_ABOVE.max(2 * self.last_seen.len());
    }

    fn resync(&mut self, missed: u64) {
        self.subscription = self.hub.resubscribe(&self.last_seen, self.only);
        self.take_backlog();
        // Runs this client follows that left memory while it lagged: their missed events
        // (the terminal one among them) come from the store.
        if self.only.is_none() {
            let hub = &self.hub;
            let missed = self.last_seen.iter().filter(|(id, seen)| **seen != DONE && !hub.holds(**id));
            self.backfill.extend(missed.map(|(id, _)| *id));
            // And runs that started and ended while it lagged, which it never heard of.
            self.find_new_runs = true;
        }
        let resent = self
            .pending
            .iter()
            .filter(|e| e.event.seq > self.last_seen.get(&e.event.run_id).copied().unwrap_or(0))
            .count();
        self.metrics.ws_lagged(missed, resent as u64);
    }
}

/// Whether a run created at `at` (to the millisecond, as its id holds it) may be newer than
/// `horizon`: a run of the horizon's own millisecond may be.
fn newer_than(at: DateTime<Utc>, horizon: DateTime<Utc>) -> bool {
    at + chrono::TimeDelta::milliseconds(1) > horizon
}

/// When a run was created, from its id (a UUIDv7 carries its creation time in milliseconds).
fn created_at(id: RunId) -> Option<DateTime<Utc>> {
    let (secs, nanos) = id.0.get_timestamp()?.to_unix();
    DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::{EventKind, LogLevel, RunState};

    use super::*;
    use crate::testing::World;

    trait Script {
        fn log(&self, id: RunId, n: usize);
        fn finish(&self, id: RunId);
        async fn all_runs(&self) -> Feed;
    }

    impl Script for World {
        fn log(&self, id: RunId, n: usize) {
            let kind = EventKind::Log { level: LogLevel::Info, task: None, attempt: None, message: format!("{n}") };
            self.hub.publish(id, kind);
        }

        fn finish(&self, id: RunId) {
            self.hub.publish(id, EventKind::RunState { state: RunState::Completed, error: None });
        }

        async fn all_runs(&self) -> Feed {
            Feed::open(Arc::clone(&self.hub), Arc::clone(&self.runs), Arc::new(Metrics::default()), None)
                .await
                .expect("feed")
        }
    }

    async fn next(feed: &mut Feed) -> (RunId, u64) {
        let event = feed.next().await.expect("store").expect("hub alive");
        (event.event.run_id, event.event.seq)
    }

    #[tokio::test]
    async fn a_new_follower_of_all_runs_gets_what_happens_from_now_on_not_the_history() {
        let world = World::new();
        let old = world.new_run().await;
        world.log(old, 0);
        world.log(old, 1);
        world.hub.flush().await;

        let mut feed = world.all_runs().await;
        world.log(old, 2);
        let new = world.new_run().await;

        let mut received = vec![next(&mut feed).await, next(&mut feed).await];
        received.sort();
        let mut expected = vec![(old, 4), (new, 1)];
        expected.sort();
        assert_eq!(received, expected, "the old run's seq 1 to 3 happened before the follower came");
    }

    #[tokio::test]
    async fn a_lagging_follower_gets_a_run_that_left_memory_meanwhile_from_the_store_to_its_end() {
        let world = World::new();
        let mut feed = world.all_runs().await;
        let followed = world.new_run().await;
        assert_eq!(next(&mut feed).await, (followed, 1));

        // While the follower reads nothing: the run ends, and so many events and finished runs
        // go by that the broadcast overflows and the run is evicted from memory.
        world.log(followed, 0);
        world.finish(followed);
        for _ in 0..300 {
            let other = world.new_run().await;
            world.finish(other);
        }
        let noisy = world.new_run().await;
        for n in 0..9000 {
            world.log(noisy, n);
        }
        world.hub.flush().await;
        assert!(!world.hub.holds(followed), "evicted");

        let mut followed_seqs = Vec::new();
        let mut ended = std::collections::HashSet::new();
        let read_all = async {
            while ended.len() < 301 {
                let event = feed.next().await.expect("store").expect("hub alive");
                if event.event.run_id == followed {
                    followed_seqs.push(event.event.seq);
                }
                if event.event.kind.ends_run() {
                    ended.insert(event.event.run_id);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read_all).await.expect("every run reaches its end");
        assert_eq!(followed_seqs, [2, 3], "the log line and the terminal event, from the store");
        assert_eq!(ended.len(), 301, "the followed run and the 300 that came and went while it lagged");
    }

    /// Makes the follower lag: more events than the broadcast holds, on a run it then sees end.
    async fn overflow(world: &World) -> RunId {
        let noisy = world.new_run().await;
        for n in 0..9000 {
            world.log(noisy, n);
        }
        world.finish(noisy);
        world.hub.flush().await;
        noisy
    }

    /// Reads the feed until `runs` distinct runs have ended; counts the terminal events of each.
    async fn read_ends(feed: &mut Feed, runs: usize) -> HashMap<RunId, usize> {
        let mut ends = HashMap::new();
        let read = async {
            while ends.len() < runs {
                let event = feed.next().await.expect("store").expect("hub alive");
                if event.event.kind.ends_run() {
                    *ends.entry(event.event.run_id).or_default() += 1;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read).await.expect("every run reaches its end");
        ends
    }

    #[tokio::test]
    async fn a_lagging_follower_gets_every_run_that_came_and_went_however_many() {
        let world = World::new();
        let mut feed = world.all_runs().await;
        // Far more than the hub keeps once finished, and more than one page of the store.
        for _ in 0..2500 {
            let run = world.new_run().await;
            world.finish(run);
        }
        overflow(&world).await;

        let ends = read_ends(&mut feed, 2501).await;
        assert_eq!(ends.len(), 2501, "the 2500 runs and the noisy one");
        assert!(ends.values().all(|n| *n == 1), "each run ended once");
    }

    #[tokio::test]
    async fn a_follower_that_pruned_finished_runs_is_not_sent_them_again_after_a_lag() {
        let world = World::new();
        let mut feed = world.all_runs().await;
        // Heard of while keeping up: enough that the feed prunes what it remembers.
        for _ in 0..(FORGET_ABOVE + 500) {
            let run = world.new_run().await;
            world.finish(run);
            world.hub.flush().await;
        }
        let mut ends = read_ends(&mut feed, FORGET_ABOVE + 500).await;
        let noisy = overflow(&world).await;
        let mut after_lag = read_ends(&mut feed, 1).await;
        // A run that starts once the follower caught up: anything resent comes before its end.
        let last = world.new_run().await;
        world.finish(last);
        while !after_lag.contains_key(&last) {
            for (run, n) in read_ends(&mut feed, 1).await {
                *after_lag.entry(run).or_default() += n;
            }
        }

        let mut ended_after_lag: Vec<_> = after_lag.keys().copied().collect();
        ended_after_lag.sort();
        assert_eq!(ended_after_lag, [noisy, last], "only the runs that ended after the pruning");
        ends.extend(after_lag);
        assert!(ends.values().all(|n| *n == 1), "each run ended once");
    }
}
