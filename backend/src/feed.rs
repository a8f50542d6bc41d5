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
use crate::store::StoreError;
use crate::wire::Published;

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
                return Err(FeedError::BeyondLastEvent { after_seq, last_seq: detail.last_seq });
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
        *seen = event.event.seq;
        true
    }

    /// The next event for this client; `None` once the hub is gone.
    ///
    /// Cancel-safe: state changes only after each await completes, so it can sit in a
    /// `select!` beside the socket's incoming messages.
    pub async fn next(&mut self) -> Result<Option<Published>, StoreError> {
        loop {
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
            self.backfill.extend(self.last_seen.keys().filter(|id| !hub.holds(**id)));
        }
        let resent = self
            .pending
            .iter()
            .filter(|e| e.event.seq > self.last_seen.get(&e.event.run_id).copied().unwrap_or(0))
            .count();
        self.metrics.ws_lagged(missed, resent as u64);
    }
}
