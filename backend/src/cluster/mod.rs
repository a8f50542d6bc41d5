//! Several replicas sharing one PostgreSQL: the lease, the tailer and takeovers.
//!
//! A replica runs three loops beside the HTTP server (only with `--database-url`; a single
//! SQLite server has none of this):
//!
//! - **Heartbeat** ([`heartbeat`]): every third of the lease it extends its lease (only while
//!   still valid), acts on cancels requested elsewhere that it missed, and claims the runs of
//!   replicas whose lease expired, resuming or crashing them ([`takeover`]). A replica that
//!   cannot renew in time gives up all its runs at once, silently (another replica will take
//!   them), and reports itself unhealthy until restarted: it can no longer know what it owns.
//! - **Tailer** ([`tail`]): `LISTEN`s for the small notification each committed batch sends,
//!   reads the new rows of the runs it does not execute, and feeds them to its hub, so a client
//!   on any replica sees every run live, in order and without a gap. A poll every second is the
//!   backstop for notifications lost while the listener reconnects.
//! - Runs the store fenced ([`crate::store::Stored::fenced`]) are abandoned by the runner.

mod takeover;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{ClusterHealth, PeerHealth, RunDetail, RunId};
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn};

use crate::batch::scheduler::QuotaPeers;
use crate::causes::chain;
use crate::config::OwnerLoss;
use crate::events::Hub;
use crate::flow::{RunSpec, Runner};
use crate::store::{CONTROL_CHANNEL, Claimed, EVENTS_CHANNEL, PgStore, QuotaUse, StoreError, parse_notification};
use crate::submission::SharedAllowance;
use crate::wire::{Published, stamp};

/// How often the tailer looks at the tables even without a notification.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Runs changed this recently are compared by the poll.
const RECENT: Duration = Duration::from_secs(30);
/// Most runs claimed in one heartbeat.
const CLAIM_AT_ONCE: i64 = 64;

/// How a replica takes part in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub lease: Duration,
    pub on_owner_loss: OwnerLoss,
}

#[derive(Debug, Clone, Copy)]
enum Lease {
    /// Valid until this instant, by this process's clock (a little before the database's).
    Held {
        until: Instant,
    },
    Lost,
}

/// This replica's part in the cluster.
pub struct Cluster {
    store: Arc<PgStore>,
    hub: Arc<Hub>,
    runner: Arc<Runner>,
    settings: ClusterSettings,
    lease: Mutex<Lease>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("replica", &self.store.replica()).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins the cluster with a fresh lease and starts the heartbeat and the tailer.
    pub async fn join(
        store: Arc<PgStore>,
        hub: Arc<Hub>,
        runner: Arc<Runner>,
        settings: ClusterSettings,
    ) -> Result<Arc<Cluster>, StoreError> {
        let started = Instant::now();
        store.join("", settings.lease).await?;
        let lease = Mutex::new(Lease::Held { until: started + settings.lease });
        let cluster = Arc::new(Cluster { store, hub, runner, settings, lease, stop: CancellationToken::new() });
        for run in cluster.store.reclaim_own().await? {
            cluster.take_over(run);
        }
        tokio::spawn(heartbeat(Arc::clone(&cluster)));
        tokio::spawn(tail(Arc::clone(&cluster)));
        tokio::spawn(abandon_disowned(Arc::clone(&cluster)));
        info!(
            replica = cluster.store.replica(),
            lease_secs = cluster.settings.lease.as_secs_f32(),
            "joined the cluster"
        );
        Ok(cluster)
    }

    /// Records the address this replica serves on, for its peers' health pages.
    pub async fn announce(&self, address: &str) -> Result<(), StoreError> {
        self.store.join(address, self.settings.lease).await
    }

    fn lease(&self) -> Lease {
        *self.lease.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_lease(&self, lease: Lease) {
        *self.lease.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = lease;
    }

    /// Whether this replica holds a valid lease: false once it lost it.
    pub fn healthy(&self) -> bool {
        matches!(self.lease(), Lease::Held { until } if until > Instant::now())
    }

    /// This replica, its lease and its peers, for `GET /api/health`.
    pub async fn health(&self) -> ClusterHealth {
        // An expired lease counts as lost at once, before the heartbeat notices: a replica
        // frozen past its lease must not look healthy for a moment when it wakes up.
        let lease_remaining_ms = match self.lease() {
            Lease::Held { until } if until > Instant::now() => {
                Some(until.duration_since(Instant::now()).as_millis() as i64)
            }
            _ => None,
        };
        let peers = match self.store.peers().await {
            Ok(peers) => peers
                .into_iter()
                .map(|p| PeerHealth {
                    alive: p.lease_remaining_ms > 0,
                    id: p.id,
                    address: p.address,
                    lease_remaining_ms: p.lease_remaining_ms,
                })
                .collect(),
            Err(error) => {
                warn!(error = %chain(&error), "cannot list the cluster's replicas");
                Vec::new()
            }
        };
        ClusterHealth {
            replica: self.store.replica().to_owned(),
            lease_lost: lease_remaining_ms.is_none(),
            lease_remaining_ms,
            peers,
        }
    }

    /// Leaves the cluster at shutdown, once every event is stored: the heartbeat and the tailer
    /// stop, and the lease ends, so the other replicas need not wait for it to expire.
    pub async fn leave(&self) {
        self.stop.cancel();
        if let Err(error) = self.store.leave().await {
            warn!(error = %chain(&error), "cannot end this replica's lease; it expires by itself");
        }
    }

    /// At shutdown, with runs still in flight: gives them up to the other replicas (which resume
    /// them once this one has [left](Cluster::leave)) instead of interrupting them.
    pub fn hand_over(&self) {
        self.give_up_runs();
    }

    /// Stops executing every run this replica owns, leaving their stored events as they are.
    fn give_up_runs(&self) {
        let runs = self.store.disown_all();
        if !runs.is_empty() {
            warn!(runs = runs.len(), "giving up this replica's runs to the rest of the cluster");
        }
        self.hub.disown(&runs);
        for id in runs {
            self.runner.abandon(id);
        }
    }

    /// The lease is lost (or can no longer be renewed in time): stop every run here.
    fn lose_lease(&self, why: &str) {
        if matches!(self.lease(), Lease::Lost) {
            return;
        }
        self.set_lease(Lease::Lost);
        tracing::error!(
            "{why}: this replica stops its runs (another replica takes them over) and reports itself unhealthy until restarted"
        );
        self.give_up_runs();
    }

    /// Continues a run this replica just claimed from a dead owner.
    fn take_over(&self, claimed: Claimed) {
        let id = claimed.id;
        let stored: Vec<Published> = claimed.events.into_iter().map(|e| stamp(Arc::new(e))).collect();
        let Some(detail) = RunDetail::fold(stored.iter().map(|e| e.event.as_ref())) else {
            warn!(run_id = %id, "claimed a run with no events; leaving it");
            return;
        };
        self.hub.adopt(stored);
        let reason = format!("replica {} stopped while this run was in flight", claimed.from);
        let plan = takeover::plan(&detail, self.settings.on_owner_loss, &reason);
        let span = info_span!("run", run_id = %id, hub = self.hub.id());
        span.in_scope(|| match plan.resume {
            Some(_) => warn!("taken over by replica {}: {reason}; the run continues here", self.store.replica()),
            None => warn!("taken over by replica {}: {reason}", self.store.replica()),
        });
        for kind in plan.events {
            self.hub.publish(id, kind);
        }
        if let Some(at) = plan.resume {
            let spec = RunSpec {
                id,
                journal: claimed.journal,
                model_id: detail.model_id,
                system: detail.system,
                max_tokens: detail.max_tokens,
                temperature: detail.temperature,
                batch_id: detail.batch_id,
            };
            self.runner.start_at(spec, at, ());
        }
    }
}

#[async_trait]
impl QuotaPeers for PgStore {
    async fn exchange(&self, mine: &[QuotaUse]) -> Result<Vec<QuotaUse>, StoreError> {
        self.exchange_quota_use(mine).await
    }
}

#[async_trait]
impl SharedAllowance for PgStore {
    async fn take(&self, per_minute: u32) -> Result<Option<Duration>, StoreError> {
        self.take_submission(per_minute).await
    }
}

/// Renews the lease, relays missed cancels and claims orphaned runs, every third of the lease.
async fn heartbeat(cluster: Arc<Cluster>) {
    let every = cluster.settings.lease / 3;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cluster.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if matches!(cluster.lease(), Lease::Lost) {
            continue;
        }
        let asked = Instant::now();
        match cluster.store.renew(cluster.settings.lease).await {
            // Counted from before the request: the database's lease ends no earlier than this.
            Ok(Some(_)) => cluster.set_lease(Lease::Held { until: asked + cluster.settings.lease }),
            Ok(None) => {
                cluster.lose_lease("this replica's lease expired before it could renew it");
                continue;
            }
            Err(error) => {
                if let Lease::Held { until } = cluster.lease()
                    && until <= Instant::now()
                {
                    cluster.lose_lease(&format!("cannot renew this replica's lease ({})", chain(&error)));
                } else {
                    warn!(error = %chain(&error), "cannot renew this replica's lease; retrying");
                }
                continue;
            }
        }
        match cluster.store.cancel_requests().await {
            Ok(ids) => {
                for id in ids {
                    cluster.runner.cancel(id);
                }
            }
            Err(error) => warn!(error = %chain(&error), "cannot read cancel requests"),
        }
        match cluster.store.claim_orphans(CLAIM_AT_ONCE).await {
            Ok(claimed) => {
                for run in claimed {
                    cluster.take_over(run);
                }
            }
            Err(error) => warn!(error = %chain(&error), "cannot claim the runs of replicas that stopped"),
        }
    }
}

/// Stops executing runs the store no longer lets this replica write.
async fn abandon_disowned(cluster: Arc<Cluster>) {
    let mut disowned = cluster.hub.disowned();
    loop {
        tokio::select! {
            () = cluster.stop.cancelled() => return,
            received = disowned.recv() => match received {
                Ok(id) => cluster.runner.abandon(id),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed some: every run the store does not list as ours goes.
                    for id in cluster.runner.running() {
                        if !cluster.store.owns(id) {
                            cluster.runner.abandon(id);
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// What the listener heard.
enum Heard {
    /// Runs with new events, and their last `seq`.
    Events(Vec<(RunId, u64)>),
    /// Something changed that a notification could not name, or notifications may be lost.
    Anything,
    Cancel(RunId),
}

/// Feeds the hub with the events of runs other replicas execute, and relays cancels.
async fn tail(cluster: Arc<Cluster>) {
    let (heard, mut hearing) = mpsc::unbounded_channel();
    tokio::spawn(listen(Arc::clone(&cluster), heard));
    let mut tailer = Tailer { cluster: Arc::clone(&cluster), seen: HashMap::new() };
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        let mut everything = false;
        let mut runs: HashMap<RunId, u64> = HashMap::new();
        tokio::select! {
            () = cluster.stop.cancelled() => return,
            _ = poll.tick() => everything = true,
            count = hearing.recv_many(&mut batch, 1024) => if count == 0 { return },
        }
        for heard in batch.drain(..) {
            match heard {
                Heard::Events(pairs) => {
                    for (id, seq) in pairs {
                        let last = runs.entry(id).or_default();
                        *last = (*last).max(seq);
                    }
                }
                Heard::Anything => everything = true,
                Heard::Cancel(id) => {
                    cluster.runner.cancel(id);
                }
            }
        }
        if everything {
            match cluster.store.recent_runs(RECENT).await {
                Ok(recent) => {
                    tailer.forget_except(&recent);
                    runs.extend(recent);
                }
                Err(error) => warn!(error = %chain(&error), "cannot poll the runs of other replicas"),
            }
        }
        if let Err(error) = tailer.catch_up(&runs).await {
            warn!(error = %chain(&error), "cannot read the events of other replicas' runs; retrying");
        }
    }
}

/// Where the tailer stands.
struct Tailer {
    cluster: Arc<Cluster>,
    /// The last `seq` fed to the hub per run, for runs the hub may have evicted since.
    seen: HashMap<RunId, u64>,
}

impl Tailer {
    fn position(&self, id: RunId) -> u64 {
        self.cluster.hub.last_seq(id).or_else(|| self.seen.get(&id).copied()).unwrap_or(0)
    }

    /// Reads what each run has beyond what the hub holds, and feeds it to the hub.
    async fn catch_up(&mut self, runs: &HashMap<RunId, u64>) -> Result<(), StoreError> {
        let hub = &self.cluster.hub;
        let behind: Vec<(RunId, u64)> = runs
            .iter()
            .filter(|(id, _)| !hub.owns(**id))
            .map(|(id, last)| (*id, *last, self.position(*id)))
            .filter(|(_, last, position)| last > position)
            .map(|(id, _, position)| (id, position))
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        let events = self.cluster.store.events_after(&behind).await?;
        let stamped: Vec<Published> = events.into_iter().map(|e| stamp(Arc::new(e))).collect();
        for event in &stamped {
            self.seen.insert(event.event.run_id, event.event.seq);
        }
        let gaps = hub.ingest(&stamped);
        for id in gaps {
            // The hub dropped the run meanwhile (or never held its start): read it whole.
            self.seen.remove(&id);
            let events = self.cluster.store.events_after(&[(id, hub.last_seq(id).unwrap_or(0))]).await?;
            hub.ingest(&events.into_iter().map(|e| stamp(Arc::new(e))).collect::<Vec<_>>());
        }
        Ok(())
    }

    /// Forgets runs that left the poll's window: no notification or poll names them again.
    fn forget_except(&mut self, recent: &[(RunId, u64)]) {
        if self.seen.len() > recent.len() * 2 + 1024 {
            let keep: std::collections::HashSet<RunId> = recent.iter().map(|(id, _)| *id).collect();
            self.seen.retain(|id, _| keep.contains(id));
        }
    }
}

/// Listens for notifications on its own connection; after a reconnect, asks for a full look
/// (what was notified meanwhile is lost).
async fn listen(cluster: Arc<Cluster>, heard: mpsc::UnboundedSender<Heard>) {
    loop {
        let mut listener = match PgListener::connect_with(cluster.store.pool()).await {
            Ok(listener) => listener,
            Err(error) => {
                warn!(error = %chain(&error), "cannot open the notification listener; the poll carries on");
                tokio::select! {
                    () = cluster.stop.cancelled() => return,
                    () = tokio::time::sleep(POLL_EVERY) => continue,
                }
            }
        };
        if let Err(error) = listener.listen_all([EVENTS_CHANNEL, CONTROL_CHANNEL]).await {
            warn!(error = %chain(&error), "cannot LISTEN; the poll carries on");
            tokio::time::sleep(POLL_EVERY).await;
            continue;
        }
        let _ = heard.send(Heard::Anything);
        loop {
            let received = tokio::select! {
                () = cluster.stop.cancelled() => return,
                received = listener.try_recv() => received,
            };
            let message = match received {
                Ok(Some(notification)) => match notification.channel() {
                    CONTROL_CHANNEL => match notification.payload().strip_prefix("cancel:").map(str::parse) {
                        Some(Ok(id)) => Heard::Cancel(id),
                        _ => continue,
                    },
                    _ => parse_notification(notification.payload()).map_or(Heard::Anything, Heard::Events),
                },
                // The connection dropped; the next call reconnects. Whatever was notified in
                // between is gone: look at everything.
                Ok(None) => {
                    info!("the notification listener reconnects");
                    Heard::Anything
                }
                Err(error) => {
                    warn!(error = %chain(&error), "the notification listener failed; reopening it");
                    let _ = heard.send(Heard::Anything);
                    break;
                }
            };
            if heard.send(message).is_err() {
                return;
            }
        }
    }
}
