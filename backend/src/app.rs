//! The composition root: builds every part of the server from the configuration, hands the
//! HTTP layer and the CLI the use cases they call, and shuts the parts down in order.
//!
//! Nothing here decides anything about a run: accepting one is [`crate::submission`], reading
//! and cancelling them is [`crate::runs`], following them live is [`crate::feed`], crash
//! recovery is [`crate::store::recover_interrupted`] and choosing a Bedrock is
//! [`crate::bedrock::connect`].

use std::sync::Arc;
use std::time::Duration;

use common::{ApiLimits, BedrockInfo, Defaults, RunId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::batch::scheduler::QuotaPeers;
use crate::batch::{BatchLimits, Batches, Scheduler};
use crate::bedrock::{self, ConnectError};
use crate::cluster::{Cluster, ClusterSettings};
use crate::config::AppArgs;
use crate::emulator::Emulator;
use crate::events::Hub;
use crate::feed::{Feed, FeedError};
use crate::flow::Runner;
use crate::journal::{Journal, JournalError, PromptTable};
use crate::metrics::Metrics;
use crate::runs::Runs;
use crate::store::{PgStore, SqliteStore, Store, StoreError, recover_interrupted};
use crate::submission::{Policy, SharedAllowance, Submissions};

/// How long shutdown waits for the last events to be stored.
const FLUSH_AT_SHUTDOWN: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the run store")]
    Store(#[from] StoreError),
    #[error("cannot open the prompt journal")]
    Journal(#[from] JournalError),
    #[error("cannot set up Bedrock")]
    Bedrock(#[from] ConnectError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot use the model catalog")]
    Catalog(#[from] crate::catalog::CatalogError),
}

/// The server's parts, wired.
pub struct App {
    store: Arc<dyn Store>,
    journal: Journal,
    hub: Arc<Hub>,
    runner: Arc<Runner>,
    runs: Arc<Runs>,
    submissions: Arc<Submissions>,
    batches: Batches,
    /// The batch scheduler's task, awaited at shutdown: left running, it could start a run
    /// after the runner stopped, or write through this store once another process opened it.
    scheduling: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Largest batch request body.
    max_batch_bytes: usize,
    metrics: Arc<Metrics>,
    emulator: Option<Emulator>,
    bedrock: BedrockInfo,
    /// This replica's part in a cluster, with a PostgreSQL store.
    cluster: Option<Arc<Cluster>>,
    /// Cancelled when the server starts shutting down: WebSockets close on it.
    closing: CancellationToken,
    /// Stops the background services (the emulator) once runs are done.
    stopped: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("bedrock", &self.bedrock).finish_non_exhaustive()
    }
}

impl App {
    /// Opens storage, recovers interrupted runs, connects to Bedrock (or starts the emulator).
    pub async fn build(args: &AppArgs, limits: ApiLimits) -> Result<App, StartupError> {
        crate::telemetry::init(None);
        let (store, shared, journal): (Arc<dyn Store>, Option<Arc<PgStore>>, Journal) = match &args.database_url {
            Some(url) => {
                let pg = Arc::new(PgStore::connect(url, args.replica_id.clone().unwrap_or_else(replica_id)).await?);
                let journal = Journal::Table(PromptTable::new(pg.pool().clone()));
                (Arc::clone(&pg) as Arc<dyn Store>, Some(pg), journal)
            }
            None => {
                let store = Arc::new(SqliteStore::open(&args.data_dir, args.sqlite_synchronous).await?);
                (store, None, Journal::open(&args.prompts_file)?)
            }
        };
        recover_interrupted(store.as_ref()).await?;
        let hub = Hub::new(Arc::clone(&store));
        let catalog = Arc::new(crate::catalog::load(args.model_catalog.as_deref())?);
        if let Err(refusal) = catalog.check(&args.model_id, crate::catalog::today()) {
            // Runs naming a model of their own still work; those relying on the default do not.
            tracing::warn!(model_id = %args.model_id, "the default model is refused: {refusal}; set --model-id");
        }
        let metrics = Arc::new(Metrics::priced(Arc::clone(&catalog)));
        let stopped = CancellationToken::new();
        let connected = bedrock::connect(&args.bedrock_settings(), &stopped).await?;
        let runner = Runner::new(
            Arc::clone(&hub),
            journal.clone(),
            connected.client,
            args.flow_settings(),
            Arc::clone(&metrics),
        );
        let runs = Arc::new(Runs::new(Arc::clone(&store), Arc::clone(&hub), Arc::clone(&runner), Arc::clone(&catalog)));
        let policy = Policy {
            defaults: Defaults {
                model_id: args.model_id.clone(),
                max_tokens: args.max_tokens,
                retries: args.retries,
                stream_idle_timeout_ms: u64::try_from(args.timeouts().idle.as_millis()).unwrap_or(u64::MAX),
            },
            limits,
            max_concurrent_runs: args.max_concurrent_runs.max(1),
            max_per_minute: args.max_submissions_per_minute,
            catalog,
        };
        let allowance = shared.clone().map(|pg| pg as Arc<dyn SharedAllowance>);
        let submissions = Arc::new(Submissions::new(journal.clone(), Arc::clone(&runs), policy, allowance));
        let closing = CancellationToken::new();
        // Batches leave room for single runs: those are never queued behind a batch.
        let batch_room = args.max_batch_concurrency.min(args.max_concurrent_runs.saturating_sub(1)).max(1);
        let quota_peers = shared.clone().map(|pg| pg as Arc<dyn QuotaPeers>);
        let scheduler =
            Scheduler::new(Arc::clone(&store), Arc::clone(&submissions), Arc::clone(&runs), batch_room, quota_peers);
        let pacer: std::sync::Weak<dyn crate::flow::RetryPacer> = Arc::downgrade(&scheduler) as _;
        runs.runner().pace_batch_retries(pacer);
        let scheduling = tokio::spawn(Arc::clone(&scheduler).run(Arc::clone(&hub), closing.clone()));
        let batches = Batches::new(
            Arc::clone(&store),
            Arc::clone(&runs),
            scheduler,
            BatchLimits { max_items: args.max_batch_items },
        );
        let cluster = match shared {
            Some(pg) => {
                let settings = ClusterSettings { lease: args.lease(), on_owner_loss: args.on_owner_loss };
                Some(Cluster::join(pg, Arc::clone(&hub), Arc::clone(&runner), settings).await?)
            }
            None => None,
        };
        Ok(App {
            store,
            journal: journal.clone(),
            hub,
            runner,
            runs,
            submissions,
            batches,
            scheduling: std::sync::Mutex::new(Some(scheduling)),
            max_batch_bytes: args.max_batch_bytes,
            metrics,
            emulator: connected.emulator,
            bedrock: connected.info,
            cluster,
            closing,
            stopped,
        })
    }

    pub fn batches(&self) -> &Batches {
        &self.batches
    }

    /// Largest batch request body accepted.
    pub fn max_batch_bytes(&self) -> usize {
        self.max_batch_bytes
    }

    pub fn submissions(&self) -> &Submissions {
        &self.submissions
    }

    pub fn runs(&self) -> &Runs {
        &self.runs
    }

    /// A live feed of every run from now on, or of `run` after its `seq`.
    pub async fn feed(&self, run: Option<(RunId, u64)>) -> Result<Feed, FeedError> {
        Feed::open(Arc::clone(&self.hub), Arc::clone(&self.runs), Arc::clone(&self.metrics), run).await
    }

    /// Whether storage accepts writes; false while it fails (health then answers 503).
    pub fn storage_ok(&self) -> bool {
        self.hub.storage_ok()
    }

    /// This replica's part in a cluster; `None` for a single server on SQLite.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The built-in emulator, when it is the Bedrock in use.
    pub fn emulator(&self) -> Option<&Emulator> {
        self.emulator.as_ref()
    }

    pub fn bedrock(&self) -> &BedrockInfo {
        &self.bedrock
    }

    /// Cancelled once shutdown begins; long-lived connections end on it.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// Stops accepting work, lets runs in flight finish within `grace` (interrupting the rest),
    /// stores every event and stops the emulator.
    pub async fn shutdown(&self, grace: Duration) {
        self.closing.cancel();
        let scheduling = self.scheduling.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(mut scheduling) = scheduling
            && tokio::time::timeout(FLUSH_AT_SHUTDOWN, &mut scheduling).await.is_err()
        {
            scheduling.abort();
        }
        if let Some(cluster) = &self.cluster
            && !self.runner.drain(grace).await
        {
            // In a cluster, runs still in flight after the grace period are not interrupted:
            // what they produced so far is stored, then they are given up to the other
            // replicas, which resume them.
            let _ = tokio::time::timeout(FLUSH_AT_SHUTDOWN, self.hub.flush()).await;
            cluster.hand_over();
        }
        self.runner.shutdown(grace).await;
        // The hub retries a failing store for ever; at shutdown that must end somewhere.
        let flushed = tokio::time::timeout(FLUSH_AT_SHUTDOWN, self.hub.flush()).await.is_ok();
        self.stopped.cancel();
        if !flushed {
            // The persister still retries: keep the files locked until the process exits, so
            // no other process recovers runs this one may yet write. (In a cluster, the lease
            // then expires by itself, and the store fences whatever this process still writes.)
            tracing::error!(
                "storage still failing after {} s: the last events of some runs are not stored",
                FLUSH_AT_SHUTDOWN.as_secs()
            );
            return;
        }
        // Only once every event is stored: the store refuses a replica's writes after its lease.
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        self.store.release().await;
        self.journal.release();
    }
}

/// A replica id unique to this start: the host, the process and a random suffix.
fn replica_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "replica".to_owned() } else { host };
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}
