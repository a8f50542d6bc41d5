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

/// Newest runs looked at, after a lag, for runs an all-runs feed never heard of.
const NEW_RUNS_AFTER_LAG: u32 = 1000;

/// Runs remembered by an all-runs feed before it forgets those that left memory.
const FORGET_ABOVE: usize = 4096;

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
    /// For an all-runs feed: an id below every run created after the feed opened (ids are
    /// UUIDv7, ordered by creation time), to find runs it never heard of after a lag.
    opened: RunId,
    /// After a lag, look in the store for runs created since `opened` that left memory.
    find_new_runs: bool,
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
            opened: RunId(uuid::Uuid::now_v7()),
            find_new_runs: false,
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
                let query = RunQuery { limit: NEW_RUNS_AFTER_LAG, ..RunQuery::default() };
                let listed = self.runs.list(&query).await?;
                let (hub, seen) = (&self.hub, &self.last_seen);
                let unheard = listed.iter().map(|r| r.id).filter(|id| *id > self.opened && !seen.contains_key(id));
                let gone: Vec<RunId> = unheard.filter(|id| !hub.holds(*id)).collect();
                self.backfill.extend(gone);
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

    /// Runs gone from memory after their backfill get no new events: forget them so the map
    /// stays small.
    fn forget_finished(&mut self) {
        if self.only.is_none() && self.last_seen.len() > FORGET_ABOVE {
            let hub = &self.hub;
            self.last_seen.retain(|id, _| hub.holds(*id));
        }
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
}
