//! The event hub: numbers each run's events, stores them, then fans them out live.
//!
//! Every event of a run goes through [`Hub::publish`], which under one short lock assigns the
//! next `seq` and appends the event to the run's in-memory log, *unreleased*. A persister task
//! takes what was published, in order and in batches, commits it to the store, and only then
//! releases it: marks it stored and broadcasts it. So every event a client can receive — live,
//! in a backlog, from `GET /api/runs/{id}` — is already stored and survives a process kill, and
//! crash recovery can never hand out a `seq` a client has already seen. Batching keeps this
//! cheap: while one commit is in flight the next events queue up and share the following one.
//! A batch that holds a run's terminal event is committed with a sync, so the outcome of a run
//! survives a power loss like its acceptance does.
//!
//! A failed commit is retried with backoff, never dropped; meanwhile [`Hub::storage_ok`] is
//! false (health answers 503 and submissions are refused) and nothing more is released, so
//! clients see a pause, never a gap. Because subscribing takes the same lock as releasing, a
//! follower that asks for "run X after seq N" gets the backlog and the live feed with no gap and
//! no duplicate. Runs stay in memory while in flight and a little after they end (bounded by
//! count and by time), then only the store has them.
//!
//! In a cluster, a replica holds the runs other replicas execute too, as copies it does not
//! number: [`Hub::ingest`] appends what their owner stored (read by [`crate::cluster`]), and
//! their followers here are served exactly as those of local runs. A run changes hands with
//! [`Hub::adopt`] (taken over from a dead replica) and [`Hub::disown`] (fenced by the store).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use chrono::Utc;
use common::{Event, EventKind, RunId};
use tokio::sync::{broadcast, mpsc, oneshot};
// Tokio's clock, so eviction by age follows a paused clock in tests.
use tokio::time::Instant;

use crate::causes::chain;
use crate::store::Store;
use crate::wire::{Published, stamp};

/// Events buffered for live subscribers; a client further behind than this resyncs.
const LIVE_CAPACITY: usize = 8192;
/// Finished runs stay in memory this long, so a lagging client can resync from memory.
const RETAIN_FINISHED_FOR: Duration = Duration::from_secs(10);
/// Most finished runs kept in memory, however recent: bounds the hub after a burst.
const RETAIN_FINISHED_RUNS: usize = 256;
/// Most events committed in one store transaction.
const MAX_BATCH: usize = 4096;
/// Waits between attempts to store a batch while storage fails: doubling up to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_secs(5);
/// How often finished runs are evicted by age when no event arrives to trigger it.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The events of one run that the hub holds in memory.
struct RunLog {
    /// Every event published, released or not; `seq` is the index plus one.
    events: Vec<Published>,
    /// How many of `events` are stored and released to clients.
    released: usize,
    /// The terminal event is published: nothing may follow it.
    ended: bool,
    /// When the terminal event was released; the clock for eviction.
    finished_at: Option<Instant>,
    /// This server executes the run and numbers its events. A run another replica executes
    /// is held as a copy, fed by [`Hub::ingest`] from what that replica stored.
    owned: bool,
}

impl RunLog {
    fn released(&self) -> &[Published] {
        &self.events[..self.released]
    }
}

#[derive(Default)]
struct Inner {
    runs: HashMap<RunId, RunLog>,
    finished: VecDeque<RunId>,
}

/// What a subscriber gets: the backlog it asked for, then the live feed.
pub struct Subscription {
    /// Released events the subscriber asked for, oldest first.
    pub backlog: Vec<Published>,
    /// Whether the run is held in memory; if not, its history must come from the store.
    pub in_memory: bool,
    /// For a subscription to all runs: each run's last released `seq` at the moment of
    /// subscribing ([`ENDED`] for runs already over), so the subscriber starts from now rather
    /// than from each run's history.
    pub positions: HashMap<RunId, u64>,
    /// Every event released from now on, of all runs.
    pub live: broadcast::Receiver<Published>,
}

enum Persist {
    Event(Published),
    Flush(oneshot::Sender<()>),
}

/// Numbers, stores and fans out the events of all runs of one server.
pub struct Hub {
    id: u64,
    inner: Mutex<Inner>,
    live: broadcast::Sender<Published>,
    persist: mpsc::UnboundedSender<Persist>,
    /// False while the store refuses writes; see the module doc.
    storage_ok: AtomicBool,
    /// See [`Hub::disowned`].
    disowned: broadcast::Sender<RunId>,
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
    /// Creates a hub that stores through `store`, registered for log routing. Its persister
    /// task runs until the hub is dropped.
    pub fn new(store: Arc<dyn Store>) -> Arc<Hub> {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let (persist, queue) = mpsc::unbounded_channel();
        let id = NEXT_HUB_ID.fetch_add(1, Ordering::Relaxed);
        let (disowned, _) = broadcast::channel(1024);
        let hub = Arc::new(Hub {
            id,
            inner: Mutex::new(Inner::default()),
            live,
            persist,
            storage_ok: AtomicBool::new(true),
            disowned,
        });
        if let Ok(mut hubs) = HUBS.write() {
            hubs.retain(|(_, weak)| weak.strong_count() > 0);
            hubs.push((id, Arc::downgrade(&hub)));
        }
        // A weak handle: the task must not keep the hub (and so its own queue) alive.
        tokio::spawn(persist_loop(Arc::downgrade(&hub), store, queue));
        hub
    }

    /// The hub registered under `id`, if it is still alive.
    pub fn find(id: u64) -> Option<Arc<Hub>> {
        let hubs = HUBS.read().ok()?;
        hubs.iter().find(|(hub_id, _)| *hub_id == id).and_then(|(_, weak)| weak.upgrade())
    }

    /// Recorded on run spans, so the tracing layer can find this hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The lock guards plain collections; a panic while holding it cannot leave them torn
        // in a way that matters more than refusing all further events would.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a run's log with its `run_created` event, which the store already holds (it was
    /// stored with the run), and announces it.
    pub fn register(&self, stamped: Published) {
        let mut inner = self.lock();
        let log =
            RunLog { events: vec![Arc::clone(&stamped)], released: 1, ended: false, finished_at: None, owned: true };
        inner.runs.insert(stamped.event.run_id, log);
        let _ = self.live.send(stamped);
    }

    /// Publishes the run's next event; returns its `seq`, or `None` if the run is not live here
    /// or already published its terminal state (nothing follows the terminal event). Clients
    /// receive it once it is stored.
    pub fn publish(&self, run_id: RunId, kind: EventKind) -> Option<u64> {
        let terminal = kind.ends_run();
        let mut inner = self.lock();
        let log = inner.runs.get_mut(&run_id)?;
        if log.ended || !log.owned {
            return None;
        }
        let seq = log.events.len() as u64 + 1;
        let stamped = stamp(Arc::new(Event { run_id, seq, ts: Utc::now(), kind }));
        log.events.push(Arc::clone(&stamped));
        log.ended = terminal;
        // Sent under the lock, so the persister receives each run's events in seq order.
        let _ = self.persist.send(Persist::Event(stamped));
        Some(seq)
    }

    /// Waits until every event published so far is stored and released.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.persist.send(Persist::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Whether the store accepted the latest write; false while it fails.
    pub fn storage_ok(&self) -> bool {
        self.storage_ok.load(Ordering::SeqCst)
    }

    /// Marks a stored batch released: visible to readers, and broadcast, in order.
    fn release(&self, batch: &[Published]) {
        let mut inner = self.lock();
        let now = Instant::now();
        for stamped in batch {
            let run_id = stamped.event.run_id;
            let Some(log) = inner.runs.get_mut(&run_id) else { continue };
            log.released = log.released.max(usize::try_from(stamped.event.seq).unwrap_or(usize::MAX));
            if stamped.event.kind.ends_run() {
                log.finished_at = Some(now);
                inner.finished.push_back(run_id);
            }
            let _ = self.live.send(Arc::clone(stamped));
        }
        evict_old(&mut inner, now);
    }

    /// Adds events another replica stored for a run it executes, in order, and broadcasts
    /// them. Events already held are skipped; a run not held starts only at its `run_created`
    /// (seq 1). Returns the runs whose events did not follow on from what is held (a gap): the
    /// caller re-reads those from what the hub holds.
    pub fn ingest(&self, events: &[Published]) -> Vec<RunId> {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut gaps = Vec::new();
        for stamped in events {
            let event = &stamped.event;
            let log = match inner.runs.get_mut(&event.run_id) {
                Some(log) => log,
                None if event.seq == 1 => inner.runs.entry(event.run_id).or_insert(RunLog {
                    events: Vec::new(),
                    released: 0,
                    ended: false,
                    finished_at: None,
                    owned: false,
                }),
                None => {
                    gaps.push(event.run_id);
                    continue;
                }
            };
            let next = log.events.len() as u64 + 1;
            if log.owned || event.seq < next {
                continue;
            }
            if event.seq > next {
                gaps.push(event.run_id);
                continue;
            }
            log.events.push(Arc::clone(stamped));
            log.released = log.events.len();
            if event.kind.ends_run() {
                log.ended = true;
                log.finished_at = Some(now);
                inner.finished.push_back(event.run_id);
            }
            let _ = self.live.send(Arc::clone(stamped));
        }
        gaps.dedup();
        gaps
    }

    /// The `seq` of the run's last event held (stored), if the hub holds the run.
    pub fn last_seq(&self, run_id: RunId) -> Option<u64> {
        self.lock().runs.get(&run_id).map(|log| log.released as u64)
    }

    /// Whether this server executes the run.
    pub fn owns(&self, run_id: RunId) -> bool {
        self.lock().runs.get(&run_id).is_some_and(|log| log.owned)
    }

    /// Takes over a run another replica executed: `stored` (all its events, read after the
    /// takeover committed) becomes its log, and from now on this hub numbers its events.
    /// Events it did not hold yet are broadcast.
    pub fn adopt(&self, stored: Vec<Published>) {
        let Some(run_id) = stored.first().map(|e| e.event.run_id) else { return };
        let mut inner = self.lock();
        let held = inner.runs.get(&run_id).map_or(0, |log| log.events.len());
        for event in stored.iter().skip(held) {
            let _ = self.live.send(Arc::clone(event));
        }
        let released = stored.len();
        inner.runs.insert(run_id, RunLog { events: stored, released, ended: false, finished_at: None, owned: true });
    }

    /// Gives up runs this server no longer owns (the store fenced its writes): their events not
    /// stored are dropped, never shown to anyone, and nothing more is published for them here;
    /// the replica that owns them now continues their log, which [`Hub::ingest`] then follows.
    pub fn disown(&self, runs: &[RunId]) {
        let mut inner = self.lock();
        for run_id in runs {
            if let Some(log) = inner.runs.get_mut(run_id) {
                log.events.truncate(log.released);
                log.owned = false;
            }
        }
        drop(inner);
        for run_id in runs {
            let _ = self.disowned.send(*run_id);
        }
    }

    /// Runs this server stops executing because the store fenced them, as they happen.
    pub fn disowned(&self) -> broadcast::Receiver<RunId> {
        self.disowned.subscribe()
    }

    fn sweep(&self) {
        evict_old(&mut self.lock(), Instant::now());
    }

    /// Subscribes to live events, with the backlog of `run_id` after `after_seq` if it is in memory.
    pub fn subscribe(&self, run: Option<(RunId, u64)>) -> Subscription {
        let inner = self.lock();
        let live = self.live.subscribe();
        let Some((run_id, after_seq)) = run else {
            let positions = inner.runs.iter().map(|(id, log)| (*id, position(log))).collect();
            return Subscription { backlog: Vec::new(), in_memory: false, positions, live };
        };
        let positions = HashMap::new();
        match inner.runs.get(&run_id) {
            Some(log) => Subscription { backlog: after(log.released(), after_seq), in_memory: true, positions, live },
            None => Subscription { backlog: Vec::new(), in_memory: false, positions, live },
        }
    }

    /// The run's current picture as stored, if it is in memory.
    #[cfg(test)]
    pub fn detail(&self, run_id: RunId) -> Option<common::RunDetail> {
        let events = self.events(run_id)?;
        common::RunDetail::fold(events.iter().map(|p| p.event.as_ref()))
    }

    /// Resubscribes a client that fell behind: the released events in memory it has not seen
    /// (per run, after the seq it last got, or all of a run it has not heard of yet; of `only`
    /// that run if given), then the live feed from there.
    pub fn resubscribe(&self, seen: &HashMap<RunId, u64>, only: Option<RunId>) -> Subscription {
        let inner = self.lock();
        let live = self.live.subscribe();
        let mut backlog = Vec::new();
        for (run_id, log) in inner.runs.iter().filter(|(id, _)| only.is_none_or(|only| only == **id)) {
            backlog.extend(after(log.released(), seen.get(run_id).copied().unwrap_or(0)));
        }
        let in_memory = only.is_none_or(|id| inner.runs.contains_key(&id));
        Subscription { backlog, in_memory, positions: HashMap::new(), live }
    }

    /// The released events of a run held in memory, oldest first.
    pub fn events(&self, run_id: RunId) -> Option<Vec<Published>> {
        Some(self.lock().runs.get(&run_id)?.released().to_vec())
    }

    /// Whether the run is held in memory.
    pub fn holds(&self, run_id: RunId) -> bool {
        self.lock().runs.contains_key(&run_id)
    }

    /// How many runs this server executes (their terminal event not yet published).
    pub fn runs_in_flight(&self) -> usize {
        self.lock().runs.values().filter(|log| log.owned && !log.ended).count()
    }

    /// How many runs the hub holds in memory, finished ones included.
    pub fn runs_held(&self) -> usize {
        self.lock().runs.len()
    }

    /// How many WebSocket clients (and other subscribers) are following live events.
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }
}

/// The position of a run whose terminal event is released: nothing more will come.
pub const ENDED: u64 = u64::MAX;

fn position(log: &RunLog) -> u64 {
    if log.finished_at.is_some() { ENDED } else { log.released as u64 }
}

fn after(events: &[Published], after_seq: u64) -> Vec<Published> {
    events.iter().skip(usize::try_from(after_seq).unwrap_or(usize::MAX)).cloned().collect()
}

/// Drops finished runs from memory once they are old enough, or beyond the count bound.
fn evict_old(inner: &mut Inner, now: Instant) {
    while let Some(oldest) = inner.finished.front().copied() {
        let finished_at = inner.runs.get(&oldest).and_then(|log| log.finished_at);
        let old_enough = finished_at.is_none_or(|at| now.saturating_duration_since(at) > RETAIN_FINISHED_FOR);
        if !old_enough && inner.finished.len() <= RETAIN_FINISHED_RUNS {
            break;
        }
        inner.finished.pop_front();
        inner.runs.remove(&oldest);
    }
}

/// Stores what the hub publishes, in order and in batches, releasing each batch once stored.
async fn persist_loop(hub: Weak<Hub>, store: Arc<dyn Store>, mut queue: mpsc::UnboundedReceiver<Persist>) {
    let mut received = Vec::with_capacity(64);
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            count = queue.recv_many(&mut received, MAX_BATCH) => if count == 0 { return },
            _ = sweep.tick() => {
                match hub.upgrade() {
                    Some(hub) => hub.sweep(),
                    None => return,
                }
                continue;
            }
        }
        let mut batch = Vec::with_capacity(received.len());
        let mut flushes = Vec::new();
        for item in received.drain(..) {
            match item {
                Persist::Event(event) => batch.push(event),
                Persist::Flush(done) => flushes.push(done),
            }
        }
        if !batch.is_empty() {
            let fenced = store_until_done(&hub, store.as_ref(), &batch).await;
            let Some(hub) = hub.upgrade() else { return };
            if !fenced.is_empty() {
                batch.retain(|e| !fenced.contains(&e.event.run_id));
                hub.disown(&fenced);
            }
            hub.release(&batch);
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Stores a batch, retrying with backoff for as long as the store fails; returns the runs
/// whose events the store refused because this server no longer owns them.
async fn store_until_done(hub: &Weak<Hub>, store: &dyn Store, batch: &[Published]) -> Vec<RunId> {
    let sync = batch.iter().any(|e| e.event.kind.ends_run());
    let mut wait = RETRY_FIRST;
    loop {
        match store.append_events(batch, sync).await {
            Ok(stored) => {
                if let Some(hub) = hub.upgrade()
                    && !hub.storage_ok.swap(true, Ordering::SeqCst)
                {
                    tracing::info!(events = batch.len(), "storage recovered; the queued events are stored");
                }
                return stored.fenced;
            }
            Err(error) => {
                let Some(hub) = hub.upgrade() else { return Vec::new() };
                if hub.storage_ok.swap(false, Ordering::SeqCst) {
                    tracing::error!(error = %chain(&error), events = batch.len(), "cannot store events; retrying until storage recovers");
                }
                drop(hub);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_CAP);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use common::{LogLevel, RunState};
    use tokio::sync::broadcast::error::TryRecvError;
    use uuid::Uuid;

    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::testing::created;

    fn hub() -> (Arc<Hub>, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::default());
        (Hub::new(Arc::clone(&store) as Arc<dyn Store>), store)
    }

    fn log(n: usize) -> EventKind {
        EventKind::Log { level: LogLevel::Info, task: None, attempt: None, message: format!("line {n}") }
    }

    fn new_run(hub: &Hub) -> RunId {
        let run = RunId(Uuid::now_v7());
        hub.register(created(run));
        run
    }

    #[tokio::test]
    async fn a_subscriber_that_fell_behind_resyncs_every_event_it_missed_in_order() {
        let (hub, _) = hub();
        let run = new_run(&hub);
        let mut slow = hub.subscribe(None).live;
        for n in 0..LIVE_CAPACITY + 100 {
            hub.publish(run, log(n));
        }
        hub.flush().await;
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
        let (hub, _) = hub();
        let run = new_run(&hub);
        assert_eq!(hub.publish(run, EventKind::RunState { state: RunState::Cancelled, error: None }), Some(2));
        assert_eq!(hub.publish(run, EventKind::RunState { state: RunState::Completed, error: None }), None);
        assert_eq!(hub.publish(run, log(0)), None);
        assert_eq!(hub.runs_in_flight(), 0);
        hub.flush().await;
        assert_eq!(hub.detail(run).map(|d| d.state), Some(RunState::Cancelled));
    }

    #[tokio::test]
    async fn a_follower_gets_the_backlog_after_its_seq_then_the_live_feed() {
        let (hub, _) = hub();
        let run = new_run(&hub);
        for n in 0..5 {
            hub.publish(run, log(n));
        }
        hub.flush().await;
        let mut subscription = hub.subscribe(Some((run, 3)));
        assert!(subscription.in_memory);
        let backlog: Vec<u64> = subscription.backlog.iter().map(|e| e.event.seq).collect();
        assert_eq!(backlog, [4, 5, 6]);
        hub.publish(run, log(5));
        let next = subscription.live.recv().await.expect("live event");
        assert_eq!(next.event.seq, 7);
        assert!(!hub.subscribe(Some((RunId(Uuid::now_v7()), 0))).in_memory);
    }

    #[tokio::test(start_paused = true)]
    async fn no_client_sees_an_event_before_the_store_has_it_and_a_failing_store_loses_nothing() {
        let (hub, store) = hub();
        let run = new_run(&hub);
        let mut live = hub.subscribe(None).live;
        store.set_failing(true);
        for n in 0..3 {
            hub.publish(run, log(n));
        }
        // Long enough for several retries with backoff.
        tokio::time::sleep(Duration::from_secs(3)).await;

        assert_eq!(live.try_recv().map(|e| e.event.seq), Err(TryRecvError::Empty), "nothing released");
        assert_eq!(hub.events(run).map(|e| e.len()), Some(1), "readers see only the stored run_created");
        assert!(!hub.storage_ok(), "the failure is reported");

        store.set_failing(false);
        hub.flush().await;

        assert!(hub.storage_ok());
        let released: Vec<u64> = (0..3).filter_map(|_| live.try_recv().ok()).map(|e| e.event.seq).collect();
        assert_eq!(released, [2, 3, 4], "every queued event, in order, once stored");
        assert_eq!(store.stored(), [(run, 2), (run, 3), (run, 4)]);
    }

    #[tokio::test(start_paused = true)]
    async fn finished_runs_leave_memory_after_a_while_even_when_nothing_else_happens() {
        let (hub, _) = hub();
        let run = new_run(&hub);
        hub.publish(run, EventKind::RunState { state: RunState::Completed, error: None });
        hub.flush().await;
        assert!(hub.holds(run), "kept a while for followers that lag");

        tokio::time::sleep(RETAIN_FINISHED_FOR + SWEEP_EVERY * 2).await;

        assert!(!hub.holds(run), "evicted by age without another run finishing");
    }

    #[tokio::test]
    async fn a_burst_of_finished_runs_keeps_at_most_the_bound_in_memory() {
        let (hub, _) = hub();
        for _ in 0..RETAIN_FINISHED_RUNS + 50 {
            let run = new_run(&hub);
            hub.publish(run, EventKind::RunState { state: RunState::Completed, error: None });
        }
        hub.flush().await;
        assert_eq!(hub.runs_held(), RETAIN_FINISHED_RUNS);
    }

    fn stored_event(run: RunId, seq: u64, kind: EventKind) -> Published {
        stamp(Arc::new(Event { run_id: run, seq, ts: Utc::now(), kind }))
    }

    #[tokio::test]
    async fn another_replicas_run_is_followed_in_order_without_duplicates_and_gaps_are_reported() {
        let (hub, _) = hub();
        let mut live = hub.subscribe(None).live;
        let run = RunId(Uuid::now_v7());
        let first = created(run);
        let events = [Arc::clone(&first), stored_event(run, 2, log(0)), stored_event(run, 3, log(1))];

        assert!(hub.ingest(&events[..2]).is_empty());
        assert!(hub.ingest(&events).is_empty(), "seq 1 and 2 again are skipped");
        let gaps = hub.ingest(&[stored_event(run, 5, log(3))]);

        assert_eq!(gaps, [run], "seq 4 is missing");
        let received: Vec<u64> = (0..3).filter_map(|_| live.try_recv().ok()).map(|e| e.event.seq).collect();
        assert_eq!(received, [1, 2, 3]);
        assert_eq!(live.try_recv().map(|e| e.event.seq), Err(TryRecvError::Empty));
        assert_eq!(hub.last_seq(run), Some(3));
        assert!(!hub.owns(run));
        assert_eq!(hub.publish(run, log(9)), None, "this server does not number another's run");
    }

    #[tokio::test]
    async fn a_run_the_store_fenced_keeps_only_what_was_stored_and_is_then_followed_from_its_new_owner() {
        let (hub, store) = hub();
        let mut disowned = hub.disowned();
        let run = new_run(&hub);
        hub.publish(run, log(0));
        hub.flush().await;
        store.set_failing(true);
        hub.publish(run, log(1)); // never stored: the store refuses it

        hub.disown(&[run]);

        assert_eq!(disowned.try_recv().ok(), Some(run));
        assert_eq!(hub.publish(run, log(2)), None);
        assert_eq!(hub.last_seq(run), Some(2), "the unstored seq 3 is gone");
        assert!(hub.ingest(&[stored_event(run, 3, log(10))]).is_empty(), "the new owner's seq 3 follows");
        assert_eq!(hub.events(run).map(|e| e.len()), Some(3));
        store.set_failing(false);
    }

    #[tokio::test]
    async fn an_adopted_run_is_numbered_here_from_its_last_stored_event() {
        let (hub, _) = hub();
        let run = RunId(Uuid::now_v7());
        hub.ingest(&[created(run)]);
        let stored = vec![created(run), stored_event(run, 2, log(0)), stored_event(run, 3, log(1))];

        hub.adopt(stored);

        assert!(hub.owns(run));
        assert_eq!(hub.publish(run, log(2)), Some(4));
    }
}
