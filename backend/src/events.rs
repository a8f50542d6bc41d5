//! The event hub: numbers each run's events, fans them out live, and hands them to the store.
//!
//! Every event of a run goes through [`Hub::publish`], which under one short lock assigns the
//! next `seq`, appends the event to the run's in-memory log, broadcasts it and queues it for
//! the store. Because subscribing takes the same lock, a WebSocket that asks for "run X after
//! seq N" gets the backlog and the live feed with no gap and no duplicate. Runs stay in memory
//! while in flight and for a while after they end (so a lagging client can resync from memory),
//! then only the store has them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Event, EventKind, RunDetail, RunId};
use tokio::sync::broadcast;

use crate::store::Store;
use crate::wire::{Published, stamp};

/// Events buffered for live subscribers; a client further behind than this resyncs.
const LIVE_CAPACITY: usize = 8192;
/// Finished runs kept in memory at least this long, so a lagging client can resync from memory.
const RETAIN_FINISHED_FOR: Duration = Duration::from_secs(10);
/// Finished runs kept in memory regardless of age.
const RETAIN_FINISHED_RUNS: usize = 256;

/// The events of one run that the hub holds in memory.
struct RunLog {
    events: Vec<Published>,
    finished_at: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    runs: HashMap<RunId, RunLog>,
    finished: VecDeque<RunId>,
}

/// What a subscriber gets: the backlog it asked for, then the live feed.
pub struct Subscription {
    /// Events already published that the subscriber asked for, oldest first.
    pub backlog: Vec<Published>,
    /// Whether the run is held in memory; if not, its history must come from the store.
    pub in_memory: bool,
    /// Every event published from now on, of all runs.
    pub live: broadcast::Receiver<Published>,
}

/// Fans out and persists the events of all runs of one server.
pub struct Hub {
    id: u64,
    inner: Mutex<Inner>,
    live: broadcast::Sender<Published>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Hubs by id, so the tracing layer can route a run's log lines to the hub that owns the run.
/// Several servers may share a process (tests do), and a tracing subscriber is process-wide.
static HUBS: RwLock<Vec<(u64, Weak<Hub>)>> = RwLock::new(Vec::new());
static NEXT_HUB_ID: AtomicU64 = AtomicU64::new(1);

impl Hub {
    /// Creates a hub that persists through `store`, registered for log routing.
    pub fn new(store: Arc<dyn Store>) -> Arc<Hub> {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let id = NEXT_HUB_ID.fetch_add(1, Ordering::Relaxed);
        let hub = Arc::new(Hub { id, inner: Mutex::new(Inner::default()), live, store });
        if let Ok(mut hubs) = HUBS.write() {
            hubs.retain(|(_, weak)| weak.strong_count() > 0);
            hubs.push((id, Arc::downgrade(&hub)));
        }
        hub
    }

    /// The hub registered under `id`, if it is still alive.
    pub fn find(id: u64) -> Option<Arc<Hub>> {
        let hubs = HUBS.read().ok()?;
        hubs.iter().find(|(hub_id, _)| *hub_id == id).and_then(|(_, weak)| weak.upgrade())
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The lock guards plain collections; a panic while holding it cannot leave them torn
        // in a way that matters more than refusing all further events would.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a run's log with its stored `run_created` event and announces it.
    pub fn register(&self, stamped: Published) {
        let mut inner = self.lock();
        inner.runs.insert(stamped.event.run_id, RunLog { events: vec![Arc::clone(&stamped)], finished_at: None });
        let _ = self.live.send(stamped);
    }

    /// Publishes the run's next event; returns its `seq`, or `None` if the run is not live here
    /// or already reached a terminal state (nothing follows the terminal event).
    pub fn publish(&self, run_id: RunId, kind: EventKind) -> Option<u64> {
        let terminal = matches!(&kind, EventKind::RunState { state, .. } if state.is_terminal());
        let mut inner = self.lock();
        let log = inner.runs.get_mut(&run_id)?;
        if log.finished_at.is_some() {
            return None;
        }
        let seq = log.events.len() as u64 + 1;
        let stamped = stamp(Arc::new(Event { run_id, seq, ts: Utc::now(), kind }));
        log.events.push(Arc::clone(&stamped));
        if terminal {
            log.finished_at = Some(Instant::now());
            inner.finished.push_back(run_id);
            evict_old(&mut inner);
        }
        self.store.enqueue_events(vec![Arc::clone(&stamped)]);
        let _ = self.live.send(stamped);
        Some(seq)
    }

    /// Subscribes to live events, with the backlog of `run_id` after `after_seq` if it is in memory.
    pub fn subscribe(&self, run: Option<(RunId, u64)>) -> Subscription {
        let inner = self.lock();
        let live = self.live.subscribe();
        let Some((run_id, after_seq)) = run else {
            return Subscription { backlog: Vec::new(), in_memory: false, live };
        };
        match inner.runs.get(&run_id) {
            Some(log) => Subscription {
                backlog: log.events.iter().skip(usize::try_from(after_seq).unwrap_or(usize::MAX)).cloned().collect(),
                in_memory: true,
                live,
            },
            None => Subscription { backlog: Vec::new(), in_memory: false, live },
        }
    }

    pub fn detail(&self, run_id: RunId) -> Option<RunDetail> {
        let events = self.events(run_id)?;
        RunDetail::fold(events.iter().map(|p| p.event.as_ref()))
    }

    /// Resubscribes a client that fell behind: the events in memory it has not seen (per run,
    /// after the seq it last got; of `only` that run if given), then the live feed from there.
    pub fn resubscribe(&self, seen: &HashMap<RunId, u64>, only: Option<RunId>) -> Subscription {
        let inner = self.lock();
        let live = self.live.subscribe();
        let mut backlog = Vec::new();
        for (run_id, log) in inner.runs.iter().filter(|(id, _)| only.is_none_or(|only| only == **id)) {
            let after = seen.get(run_id).copied().unwrap_or(0);
            backlog.extend(log.events.iter().skip(usize::try_from(after).unwrap_or(usize::MAX)).cloned());
        }
        let in_memory = only.is_none_or(|id| inner.runs.contains_key(&id));
        Subscription { backlog, in_memory, live }
    }

    /// The events of a run held in memory, oldest first.
    pub fn events(&self, run_id: RunId) -> Option<Vec<Published>> {
        Some(self.lock().runs.get(&run_id)?.events.clone())
    }

    /// Whether the run is held in memory.
    pub fn holds(&self, run_id: RunId) -> bool {
        self.lock().runs.contains_key(&run_id)
    }

    /// How many runs are in flight.
    pub fn runs_in_flight(&self) -> usize {
        self.lock().runs.values().filter(|log| log.finished_at.is_none()).count()
    }

    /// How many WebSocket clients (and other subscribers) are following live events.
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

fn evict_old(inner: &mut Inner) {
    while inner.finished.len() > RETAIN_FINISHED_RUNS {
        let Some(oldest) = inner.finished.front().copied() else { break };
        let old_enough =
            inner.runs.get(&oldest).and_then(|log| log.finished_at).is_none_or(|at| at.elapsed() > RETAIN_FINISHED_FOR);
        if !old_enough {
            break;
        }
        inner.finished.pop_front();
        inner.runs.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use common::{LogLevel, RunState};
    use uuid::Uuid;

    use super::*;
    use crate::store::{SqliteStore, Synchronous};

    async fn hub() -> Arc<Hub> {
        let dir = std::env::temp_dir().join(format!("hub-test-{}", Uuid::now_v7()));
        let store = SqliteStore::open(&dir, Synchronous::Normal).await.expect("store");
        Hub::new(Arc::new(store))
    }

    fn created(run_id: RunId) -> Published {
        stamp(Arc::new(Event {
            run_id,
            seq: 1,
            ts: Utc::now(),
            kind: EventKind::RunCreated {
                prompt: "p".into(),
                model_id: "m".into(),
                system: None,
                max_tokens: 1,
                temperature: None,
                max_attempts: 1,
            },
        }))
    }

    fn log(n: usize) -> EventKind {
        EventKind::Log { level: LogLevel::Info, task: None, attempt: None, message: format!("line {n}") }
    }

    #[tokio::test]
    async fn a_subscriber_that_fell_behind_resyncs_every_event_it_missed_in_order() {
        let hub = hub().await;
        let run = RunId(Uuid::now_v7());
        hub.register(created(run));
        let mut slow = hub.subscribe(None).live;
        for n in 0..LIVE_CAPACITY + 100 {
            hub.publish(run, log(n));
        }
        let first = slow.recv().await;
        assert!(matches!(first, Err(broadcast::error::RecvError::Lagged(_))), "the slow subscriber lagged");
        let seen = HashMap::from([(run, 1)]);
        let resynced = hub.resubscribe(&seen, None);
        let seqs: Vec<u64> = resynced.backlog.iter().map(|e| e.event.seq).collect();
        let expected: Vec<u64> = (2..=LIVE_CAPACITY as u64 + 101).collect();
        assert_eq!(seqs, expected);
    }

    #[tokio::test]
    async fn nothing_is_published_after_a_terminal_state() {
        let hub = hub().await;
        let run = RunId(Uuid::now_v7());
        hub.register(created(run));
        assert_eq!(hub.publish(run, EventKind::RunState { state: RunState::Cancelled, error: None }), Some(2));
        assert_eq!(hub.publish(run, EventKind::RunState { state: RunState::Completed, error: None }), None);
        assert_eq!(hub.publish(run, log(0)), None);
        assert_eq!(hub.detail(run).map(|d| d.state), Some(RunState::Cancelled));
        assert_eq!(hub.runs_in_flight(), 0);
    }

    #[tokio::test]
    async fn a_follower_gets_the_backlog_after_its_seq_then_the_live_feed() {
        let hub = hub().await;
        let run = RunId(Uuid::now_v7());
        hub.register(created(run));
        for n in 0..5 {
            hub.publish(run, log(n));
        }
        let mut subscription = hub.subscribe(Some((run, 3)));
        assert!(subscription.in_memory);
        let backlog: Vec<u64> = subscription.backlog.iter().map(|e| e.event.seq).collect();
        assert_eq!(backlog, [4, 5, 6]);
        hub.publish(run, log(5));
        let next = subscription.live.recv().await.expect("live event");
        assert_eq!(next.event.seq, 7);
        assert!(!hub.subscribe(Some((RunId(Uuid::now_v7()), 0))).in_memory);
    }
}
