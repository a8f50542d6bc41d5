//! The assembled core of the server, without HTTP: store, journal, hub, Bedrock and runner.
//!
//! [`App::build`] wires them from the configuration (recovering runs a previous process left
//! in flight, starting the built-in emulator when no AWS is configured), and [`App::submit`]
//! is the one way a run is accepted, used by the REST API and by `backend run` alike.

use std::sync::Arc;
use std::time::Duration;

use common::{
    ApiLimits, AttemptOutcome, BedrockBackend, BedrockInfo, Defaults, Event, EventKind, RunDetail, RunId, RunState,
    SubmitRun, TaskState, prompt_preview,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bedrock::{ModelClient, SdkClient, SdkSettings};
use crate::config::{AppArgs, BedrockChoice};
use crate::emulator::Emulator;
use crate::events::{Hub, stamp};
use crate::flow::{RunSpec, Runner};
use crate::journal::{Journal, JournalError};
use crate::metrics::Metrics;
use crate::store::{Created, NewRun, SqliteStore, Store, StoreError};

/// Largest `max_tokens` a run may ask for.
pub const MAX_TOKENS_LIMIT: u32 = 131_072;
/// Longest model id accepted (ARNs of inference profiles included).
const MAX_MODEL_ID_LEN: usize = 256;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The run store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The prompt journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is contradictory.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A field is invalid; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// A field is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The journal could not store the prompt.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The store could not record the run.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A concurrency or rate limit is reached; nothing was stored and no Bedrock call made.
    #[error("{message}")]
    Limited {
        /// Which limit.
        message: String,
        /// Seconds until a submission may be accepted.
        retry_after_secs: u64,
    },
}

/// Per-run defaults and limits applied to submissions.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Defaults for omitted fields.
    pub defaults: Defaults,
    /// Limits on fields.
    pub limits: ApiLimits,
    /// Most runs in flight at once.
    pub max_concurrent_runs: usize,
}

/// The server's core.
pub struct App {
    /// Durable runs and events.
    pub store: Arc<dyn Store>,
    /// The prompt journal.
    pub journal: Journal,
    /// Live events.
    pub hub: Arc<Hub>,
    /// Executes runs.
    pub runner: Arc<Runner>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The built-in emulator, when it is the Bedrock in use.
    pub emulator: Option<Emulator>,
    /// Which Bedrock is in use.
    pub bedrock: BedrockInfo,
    /// Defaults and limits for submissions.
    pub policy: Policy,
    /// Cancelled when the server starts shutting down: WebSockets close on it.
    pub closing: CancellationToken,
    /// Stops the background services (the emulator) once runs are done.
    pub shutdown: CancellationToken,
    /// Limits submissions per minute, when configured.
    rate: Option<RateLimiter>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("bedrock", &self.bedrock).finish_non_exhaustive()
    }
}

/// Whether the usual AWS credential sources are configured, without contacting any of them
/// (probing the instance metadata service would stall start-up off AWS).
fn aws_credentials_configured() -> bool {
    let env_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let from_env = [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|name| env_set(name));
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let from_files =
        home.is_some_and(|home| home.join(".aws/credentials").exists() || home.join(".aws/config").exists());
    from_env || from_files
}

impl App {
    /// Opens storage, recovers interrupted runs, connects to Bedrock (or starts the emulator).
    pub async fn build(args: &AppArgs, limits: ApiLimits) -> Result<App, StartupError> {
        crate::telemetry::init(None);
        let sqlite = SqliteStore::open(&args.data_dir, args.sqlite_synchronous).await?;
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let journal = Journal::open(&args.prompts_file)?;
        recover_interrupted(store.as_ref()).await?;
        let hub = Hub::new(Arc::clone(&store));
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();

        let use_emulator = match args.bedrock {
            BedrockChoice::Emulator => true,
            BedrockChoice::Aws => false,
            BedrockChoice::Auto => args.bedrock_endpoint.is_none() && !aws_credentials_configured(),
        };
        if use_emulator && args.bedrock_endpoint.is_some() {
            return Err(StartupError::Config("--bedrock emulator and --bedrock-endpoint exclude each other".into()));
        }
        let (emulator, endpoint, backend) = if use_emulator {
            let emulator = Emulator::new(args.emulator_config());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| StartupError::Bind { addr: "127.0.0.1:0".into(), source })?;
            let addr =
                listener.local_addr().map_err(|source| StartupError::Bind { addr: "127.0.0.1:0".into(), source })?;
            let stop = shutdown.clone();
            tokio::spawn(emulator.clone().serve(listener, async move { stop.cancelled().await }));
            (Some(emulator), Some(format!("http://{addr}")), BedrockBackend::Emulator)
        } else if let Some(endpoint) = &args.bedrock_endpoint {
            (None, Some(endpoint.clone()), BedrockBackend::Endpoint)
        } else {
            (None, None, BedrockBackend::Aws)
        };
        let sdk = SdkClient::connect(&SdkSettings {
            endpoint: endpoint.clone(),
            dummy_credentials: use_emulator,
            region: None,
            api: args.bedrock_api,
            timeouts: args.timeouts(),
        })
        .await;
        let bedrock = BedrockInfo {
            backend,
            endpoint: endpoint.unwrap_or_else(|| format!("https://bedrock-runtime.{}.amazonaws.com", sdk.region())),
            region: sdk.region().to_owned(),
            api: args.bedrock_api.as_str().to_owned(),
        };
        let model: Arc<dyn ModelClient> = Arc::new(sdk);
        let runner = Runner::new(Arc::clone(&hub), journal.clone(), model, args.flow_settings(), Arc::clone(&metrics));
        let defaults = Defaults { model_id: args.model_id.clone(), max_tokens: args.max_tokens, retries: args.retries };
        let closing = CancellationToken::new();
        let policy = Policy { defaults, limits, max_concurrent_runs: args.max_concurrent_runs.max(1) };
        let rate =
            (args.max_submissions_per_minute > 0).then(|| RateLimiter::per_minute(args.max_submissions_per_minute));
        Ok(App { store, journal, hub, runner, metrics, emulator, bedrock, policy, closing, shutdown, rate })
    }

    /// Validates and accepts a run: its prompt is in the journal and the run in the store
    /// (both durable) before this returns, and it is executing.
    pub async fn submit(&self, request: SubmitRun, idempotency_key: Option<String>) -> Result<RunDetail, SubmitError> {
        let run = self.validate(request)?;
        // A repeated submission must not journal its prompt again; a race between two
        // first submissions is settled by the store's unique key below.
        if let Some(key) = &idempotency_key
            && let Some(existing) = self.store.run_for_idempotency_key(key).await?
        {
            return self.existing_run(existing).await;
        }
        self.admit()?;
        let id = RunId(Uuid::now_v7());
        let journal = self.journal.append(id, &run.prompt).await?;
        let created = stamp(Arc::new(Event {
            run_id: id,
            seq: 1,
            ts: chrono::Utc::now(),
            kind: EventKind::RunCreated {
                prompt: run.prompt.clone(),
                model_id: run.model_id.clone(),
                system: run.system.clone(),
                max_tokens: run.max_tokens,
                temperature: run.temperature,
                max_attempts: self.runner.settings().max_attempts(),
            },
        }));
        let new_run = NewRun {
            created: Arc::clone(&created),
            model_id: run.model_id.clone(),
            prompt_preview: prompt_preview(&run.prompt),
            journal,
            idempotency_key,
        };
        if let Created::Existing(existing) = self.store.create_run(new_run).await? {
            return self.existing_run(existing).await;
        }
        let detail = RunDetail::from_created(&created.event)
            .ok_or_else(|| SubmitError::Invalid("internal: bad event".into()))?;
        self.hub.register(created);
        self.runner.start(RunSpec {
            id,
            journal,
            model_id: run.model_id,
            system: run.system,
            max_tokens: run.max_tokens,
            temperature: run.temperature,
        });
        Ok(detail)
    }

    async fn existing_run(&self, id: RunId) -> Result<RunDetail, SubmitError> {
        self.detail(id).await?.ok_or_else(|| StoreError::Malformed(format!("run {id} has no events")).into())
    }

    /// The run's current picture: from memory while it is live, else from the store.
    pub async fn detail(&self, id: RunId) -> Result<Option<RunDetail>, StoreError> {
        if let Some(detail) = self.hub.detail(id) {
            return Ok(Some(detail));
        }
        let events = self.store.run_events(id, 0).await?;
        Ok(RunDetail::fold(&events))
    }

    /// Checks the cost limits before anything is stored or any Bedrock call is made.
    fn admit(&self) -> Result<(), SubmitError> {
        let in_flight = self.runner.in_flight();
        if in_flight >= self.policy.max_concurrent_runs {
            return Err(SubmitError::Limited {
                message: format!("{in_flight} runs are in flight, the configured maximum; try again shortly"),
                retry_after_secs: 1,
            });
        }
        if let Some(wait) = self.rate.as_ref().and_then(RateLimiter::try_take) {
            return Err(SubmitError::Limited {
                message: "the configured number of submissions per minute is reached".into(),
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        Ok(())
    }

    fn validate(&self, request: SubmitRun) -> Result<Validated, SubmitError> {
        let limits = &self.policy.limits;
        let invalid = |message: &str| Err(SubmitError::Invalid(message.to_owned()));
        if request.prompt.trim().is_empty() {
            return invalid("prompt must not be empty");
        }
        if request.prompt.len() > limits.max_prompt_bytes {
            return Err(SubmitError::TooLarge(format!(
                "prompt is {} bytes; the limit is {} bytes",
                request.prompt.len(),
                limits.max_prompt_bytes
            )));
        }
        let model_id = match request.model_id {
            None => self.policy.defaults.model_id.clone(),
            Some(id) => {
                let id = id.trim().to_owned();
                if id.is_empty() {
                    return invalid("model_id must not be empty when given");
                }
                if id.len() > MAX_MODEL_ID_LEN {
                    return invalid("model_id is longer than any Bedrock model id or ARN");
                }
                if !id.chars().all(|c| c.is_ascii_alphanumeric() || ".:/_-".contains(c)) {
                    return invalid("model_id may only contain letters, digits and . : / _ -");
                }
                id
            }
        };
        let system = request.system.filter(|s| !s.trim().is_empty());
        if system.as_ref().is_some_and(|s| s.len() > limits.max_prompt_bytes) {
            return Err(SubmitError::TooLarge(format!(
                "system prompt is longer than {} bytes",
                limits.max_prompt_bytes
            )));
        }
        let max_tokens = request.max_tokens.unwrap_or(self.policy.defaults.max_tokens);
        if max_tokens == 0 || max_tokens > limits.max_tokens {
            return Err(SubmitError::Invalid(format!("max_tokens must be between 1 and {}", limits.max_tokens)));
        }
        if request.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return invalid("temperature must be between 0 and 1");
        }
        Ok(Validated { prompt: request.prompt, model_id, system, max_tokens, temperature: request.temperature })
    }

    /// Stops accepting work, lets runs in flight finish within `grace` (interrupting the rest),
    /// stores every event and stops the emulator.
    pub async fn shutdown(&self, grace: Duration) {
        self.runner.shutdown(grace).await;
        if let Err(error) = self.store.flush().await {
            tracing::error!(error = %error, "could not store the last events at shutdown");
        }
        self.shutdown.cancel();
    }
}

/// A token bucket: `capacity` submissions at once, refilled evenly over a minute.
struct RateLimiter {
    capacity: f64,
    per_sec: f64,
    /// Tokens left and when they were counted; a std mutex, held for arithmetic only.
    state: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl RateLimiter {
    fn per_minute(limit: u32) -> RateLimiter {
        let capacity = f64::from(limit);
        RateLimiter {
            capacity,
            per_sec: capacity / 60.0,
            state: std::sync::Mutex::new((capacity, std::time::Instant::now())),
        }
    }

    /// Takes a token; when none is left, returns how long until one is.
    fn try_take(&self) -> Option<Duration> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, counted) = *state;
        let now = std::time::Instant::now();
        let tokens = (tokens + now.duration_since(counted).as_secs_f64() * self.per_sec).min(self.capacity);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            None
        } else {
            *state = (tokens, now);
            Some(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }
}

/// A submission with its defaults applied.
struct Validated {
    prompt: String,
    model_id: String,
    system: Option<String>,
    max_tokens: u32,
    temperature: Option<f32>,
}

/// Marks runs a previous process left `Pending` or `Running` as `Crashed`, ending their open
/// task attempts, so nothing stays "running" forever after a crash.
async fn recover_interrupted(store: &dyn Store) -> Result<(), StoreError> {
    const REASON: &str = "crashed: the server stopped while this run was in flight";
    let interrupted = store.interrupted_runs().await?;
    if interrupted.is_empty() {
        return Ok(());
    }
    for run in &interrupted {
        let Some(detail) = RunDetail::fold(&run.events) else { continue };
        let mut seq = detail.last_seq;
        let mut next = |kind| {
            seq += 1;
            stamp(Arc::new(Event { run_id: run.id, seq, ts: chrono::Utc::now(), kind }))
        };
        let mut events = Vec::new();
        for task in detail.tasks.iter().filter(|t| !t.state.is_terminal() && !t.attempts.is_empty()) {
            let attempt = task.attempts.last().map_or(1, |a| a.number);
            let outcome =
                AttemptOutcome { error: Some(REASON.into()), retryable: Some(false), ..AttemptOutcome::default() };
            events.push(next(EventKind::TaskState { task: task.name, attempt, state: TaskState::Failed, outcome }));
        }
        events.push(next(EventKind::RunState { state: RunState::Crashed, error: Some(REASON.into()) }));
        store.enqueue_events(events);
    }
    store.flush().await?;
    tracing::warn!(runs = interrupted.len(), "marked runs interrupted by the previous process as Crashed");
    Ok(())
}
