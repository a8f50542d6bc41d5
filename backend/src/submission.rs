//! Accepting a run: validation, admission (concurrency cap and rate limit), the journal and the
//! store, then handing it to the runner. The one way a run is accepted, used by the REST API and
//! by `backend run` alike.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    ApiLimits, BatchId, Catalog, Defaults, Event, EventKind, ReplayRun, RunDetail, RunId, SubmitRun, prompt_preview,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::flow::RunSpec;
use crate::journal::{Journal, JournalError};
use crate::runs::Runs;
use crate::store::{BatchItemRef, Created, NewRun, StoreError};
use crate::wire::stamp;

/// Largest `max_tokens` a run may ask for.
pub const MAX_TOKENS_LIMIT: u32 = 131_072;
/// Longest model id accepted (ARNs of inference profiles included).
const MAX_MODEL_ID_LEN: usize = 256;

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A field is invalid; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// A field is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    #[error("the prompt journal could not record the prompt")]
    Journal(#[from] JournalError),
    #[error("the run store could not record the run")]
    Store(#[from] StoreError),
    /// Storage is failing; nothing was accepted.
    #[error("storage is unavailable; try again later")]
    StorageDown,
    /// A concurrency or rate limit is reached; nothing was stored and no Bedrock call made.
    #[error("{message}")]
    Limited { message: String, retry_after_secs: u64 },
}

/// Defaults for omitted fields and the limits a submission must respect.
#[derive(Debug, Clone)]
pub struct Policy {
    pub defaults: Defaults,
    pub limits: ApiLimits,
    /// Most runs in flight at once in this process.
    pub max_concurrent_runs: usize,
    /// Most submissions accepted per minute; 0 for no limit.
    pub max_per_minute: u32,
    /// Models past their end of life are refused before anything is stored or called.
    pub catalog: Arc<Catalog>,
}

/// A per-minute allowance of submissions shared by every replica of a cluster.
#[async_trait::async_trait]
pub trait SharedAllowance: Send + Sync {
    /// Takes one submission; `Some(wait)` when none is left, with the time until one is.
    async fn take(&self, per_minute: u32) -> Result<Option<Duration>, StoreError>;
}

/// How submissions per minute are limited.
enum Rate {
    /// By this server alone.
    Local(RateLimiter),
    /// Across the cluster, through the store.
    Shared(Arc<dyn SharedAllowance>, u32),
}

impl Rate {
    async fn try_take(&self) -> Result<Option<Duration>, StoreError> {
        match self {
            Rate::Local(limiter) => Ok(limiter.try_take()),
            Rate::Shared(allowance, per_minute) => allowance.take(*per_minute).await,
        }
    }
}

/// Accepts runs.
pub struct Submissions {
    /// One permit per run in flight: taking one is the admission decision, atomic however
    /// many submissions race, and the run holds it until it ends.
    slots: Arc<Semaphore>,
    journal: Journal,
    /// The runs accepted so far, and through it the store, hub and runner a new one joins.
    runs: Arc<Runs>,
    policy: Policy,
    rate: Option<Rate>,
}

impl Submissions {
    /// `shared`, when given, holds `max_per_minute` across the cluster instead of per server.
    pub fn new(
        journal: Journal,
        runs: Arc<Runs>,
        policy: Policy,
        shared: Option<Arc<dyn SharedAllowance>>,
    ) -> Submissions {
        let per_minute = policy.max_per_minute;
        let rate = (per_minute > 0).then(|| match shared {
            Some(allowance) => Rate::Shared(allowance, per_minute),
            None => Rate::Local(RateLimiter::per_minute(per_minute)),
        });
        let slots = Arc::new(Semaphore::new(policy.max_concurrent_runs.min(Semaphore::MAX_PERMITS)));
        Submissions { slots, journal, runs, policy, rate }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Validates and accepts a run: its prompt is in the journal and the run in the store
    /// (both durable) before this returns, and it is executing. A repeated `idempotency_key`
    /// returns the run it created the first time, without journaling or running anything.
    pub async fn submit(&self, request: SubmitRun, idempotency_key: Option<String>) -> Result<RunDetail, SubmitError> {
        self.accept(request, idempotency_key, None).await
    }

    /// Runs the prompt of run `original` again, with `changes` to its settings, as a new run
    /// linked to it; `None` if there is no such run.
    pub async fn replay(&self, original: RunId, changes: ReplayRun) -> Result<Option<RunDetail>, SubmitError> {
        let Some(run) = self.runs.detail(original).await? else { return Ok(None) };
        let request = SubmitRun {
            prompt: run.prompt,
            model_id: Some(changes.model_id.unwrap_or(run.model_id)),
            system: changes.system.or(run.system),
            max_tokens: Some(changes.max_tokens.unwrap_or(run.max_tokens)),
            temperature: changes.temperature.or(run.temperature),
            replay_of: Some(original),
        };
        self.submit(request, None).await.map(Some)
    }

    /// Starts an item of a batch as a run linked to it: like [`Submissions::submit`], but
    /// outside the per-minute limit, which is for people and clients (the batch scheduler
    /// paces itself). Each item and round has its own idempotency key, so an item is never run
    /// twice for one round, not even across a restart.
    pub async fn submit_batch_item(&self, request: SubmitRun, item: BatchItemRef) -> Result<RunDetail, SubmitError> {
        let key = match item.round {
            0 => format!("batch:{}:{}", item.batch, item.index),
            round => format!("batch:{}:{}:{round}", item.batch, item.index),
        };
        self.accept(request, Some(key), Some(item.batch)).await
    }

    /// `batch` is the batch of an item's run, which is not rate limited; `None` for a client's.
    async fn accept(
        &self,
        request: SubmitRun,
        idempotency_key: Option<String>,
        batch: Option<BatchId>,
    ) -> Result<RunDetail, SubmitError> {
        let run = validate(&self.policy, request)?;
        // A repeated submission must not journal its prompt again; a race between two
        // first submissions is settled by the store's unique key below.
        if let Some(key) = &idempotency_key
            && let Some(existing) = self.runs.store().run_for_idempotency_key(key).await?
        {
            return self.existing_run(existing).await;
        }
        if let Some(original) = run.replay_of
            && self.runs.store().run_summary(original).await?.is_none()
        {
            return Err(SubmitError::Invalid(format!("replay_of names run {original}, which does not exist")));
        }
        let slot = self.admit(batch.is_none()).await?;
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
                max_attempts: self.runs.runner().settings().max_attempts(),
                replay_of: run.replay_of,
                batch_id: batch,
            },
        }));
        let new_run = NewRun {
            created: Arc::clone(&created),
            model_id: run.model_id.clone(),
            prompt_preview: prompt_preview(&run.prompt),
            journal,
            idempotency_key,
        };
        if let Created::Existing(existing) = self.runs.store().create_run(new_run).await? {
            return self.existing_run(existing).await;
        }
        let detail = RunDetail::from_created(&created.event)
            .ok_or_else(|| StoreError::Malformed(format!("run {id}: its first event is not `run_created`")))?;
        self.runs.hub().register(created);
        let spec = RunSpec {
            id,
            journal,
            model_id: run.model_id,
            system: run.system,
            max_tokens: run.max_tokens,
            temperature: run.temperature,
            batch_id: batch,
        };
        self.runs.runner().start(spec, slot);
        Ok(detail)
    }

    async fn existing_run(&self, id: RunId) -> Result<RunDetail, SubmitError> {
        self.runs.detail(id).await?.ok_or_else(|| StoreError::Malformed(format!("run {id} has no events")).into())
    }

    /// Checks the cost limits before anything is stored or any Bedrock call is made; the slot
    /// it returns is released if the submission fails later, or when the run ends.
    async fn admit(&self, rate_limited: bool) -> Result<OwnedSemaphorePermit, SubmitError> {
        // A run accepted now could not store its events: refuse rather than run blind.
        if !self.runs.hub().storage_ok() {
            return Err(SubmitError::StorageDown);
        }
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            let max = self.policy.max_concurrent_runs;
            return Err(SubmitError::Limited {
                message: format!("{max} runs are in flight, the configured maximum; try again shortly"),
                retry_after_secs: 1,
            });
        };
        let wait = match &self.rate {
            Some(rate) if rate_limited => rate.try_take().await?,
            _ => None,
        };
        if let Some(wait) = wait {
            return Err(SubmitError::Limited {
                message: "the configured number of submissions per minute is reached".into(),
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        Ok(slot)
    }
}

/// A submission with its defaults applied.
#[derive(Debug, PartialEq)]
pub(crate) struct Validated {
    pub(crate) prompt: String,
    pub(crate) model_id: String,
    pub(crate) system: Option<String>,
    pub(crate) max_tokens: u32,
    pub(crate) temperature: Option<f32>,
    pub(crate) replay_of: Option<RunId>,
}

/// PostgreSQL's text cannot hold the NUL character, and no prompt or filter means one: refused
/// in every store alike, so a request never depends on where runs are stored. `Err` says which
/// `field` held one.
pub(crate) fn without_nul(field: &str, text: &str) -> Result<(), String> {
    if text.contains('\0') { Err(format!("{field} may not contain the NUL character (U+0000)")) } else { Ok(()) }
}

/// The checks of a prompt alone; [`validate`] makes them with the settings'.
pub(crate) fn check_prompt(policy: &Policy, prompt: &str) -> Result<(), SubmitError> {
    if prompt.trim().is_empty() {
        return Err(SubmitError::Invalid("prompt must not be empty".to_owned()));
    }
    without_nul("prompt", prompt).map_err(SubmitError::Invalid)?;
    let max = policy.limits.max_prompt_bytes;
    if prompt.len() > max {
        return Err(SubmitError::TooLarge(format!("prompt is {} bytes; the limit is {max} bytes", prompt.len())));
    }
    Ok(())
}

pub(crate) fn validate(policy: &Policy, request: SubmitRun) -> Result<Validated, SubmitError> {
    let limits = &policy.limits;
    let invalid = |message: &str| Err(SubmitError::Invalid(message.to_owned()));
    check_prompt(policy, &request.prompt)?;
    let model_id = match request.model_id {
        None => policy.defaults.model_id.clone(),
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
    policy
        .catalog
        .check(&model_id, crate::catalog::today())
        .map_err(|refusal| SubmitError::Invalid(refusal.to_string()))?;
    let system = request.system.filter(|s| !s.trim().is_empty());
    if let Some(system) = &system {
        without_nul("system", system).map_err(SubmitError::Invalid)?;
    }
    if system.as_ref().is_some_and(|s| s.len() > limits.max_prompt_bytes) {
        return Err(SubmitError::TooLarge(format!("system prompt is longer than {} bytes", limits.max_prompt_bytes)));
    }
    let max_tokens = request.max_tokens.unwrap_or(policy.defaults.max_tokens);
    if max_tokens == 0 || max_tokens > limits.max_tokens {
        return Err(SubmitError::Invalid(format!("max_tokens must be between 1 and {}", limits.max_tokens)));
    }
    if request.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return invalid("temperature must be between 0 and 1");
    }
    Ok(Validated {
        prompt: request.prompt,
        model_id,
        system,
        max_tokens,
        temperature: request.temperature,
        replay_of: request.replay_of,
    })
}

/// A token bucket: `capacity` submissions at once, refilled evenly over a minute.
struct RateLimiter {
    capacity: f64,
    per_sec: f64,
    /// Tokens left and when they were counted; a std mutex, held for arithmetic only.
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn per_minute(limit: u32) -> RateLimiter {
        let capacity = f64::from(limit);
        RateLimiter { capacity, per_sec: capacity / 60.0, state: Mutex::new((capacity, Instant::now())) }
    }

    /// Takes a token; when none is left, returns how long until one is.
    fn try_take(&self) -> Option<Duration> {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> Option<Duration> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, counted) = *state;
        let tokens = (tokens + now.saturating_duration_since(counted).as_secs_f64() * self.per_sec).min(self.capacity);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            None
        } else {
            *state = (tokens, now);
            Some(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::World;

    fn submissions(max_concurrent_runs: usize) -> Arc<Submissions> {
        let world = World::new();
        let policy = Policy { max_concurrent_runs, ..policy() };
        Arc::new(Submissions::new(world.journal.clone(), Arc::clone(&world.runs), policy, None))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_submissions_never_exceed_the_concurrency_cap() {
        let submissions = submissions(5);
        let attempts = (0..40).map(|n| {
            let submissions = Arc::clone(&submissions);
            tokio::spawn(async move { submissions.submit(request(&format!("prompt {n}")), None).await })
        });
        let mut accepted = 0;
        let mut limited = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            match attempt.await.expect("task") {
                Ok(_) => accepted += 1,
                Err(SubmitError::Limited { .. }) => limited += 1,
                Err(other) => panic!("unexpected refusal: {other}"),
            }
        }
        assert_eq!((accepted, limited), (5, 35));
        assert_eq!(submissions.runs.runner().in_flight(), 5);
    }

    fn policy() -> Policy {
        Policy {
            defaults: Defaults {
                model_id: "default-model".into(),
                max_tokens: 1024,
                retries: 2,
                stream_idle_timeout_ms: 30_000,
            },
            limits: ApiLimits { max_body_bytes: 1 << 20, max_prompt_bytes: 16, max_tokens: 4096 },
            max_concurrent_runs: 10,
            max_per_minute: 0,
            catalog: Arc::default(),
        }
    }

    fn request(prompt: &str) -> SubmitRun {
        SubmitRun { prompt: prompt.into(), ..SubmitRun::default() }
    }

    #[test]
    fn omitted_fields_take_the_configured_defaults() {
        let validated = validate(&policy(), request("hello")).expect("valid");
        assert_eq!(validated.model_id, "default-model");
        assert_eq!(validated.max_tokens, 1024);
        assert_eq!(validated.system, None);
    }

    #[test]
    fn each_bad_field_is_refused_with_a_message_naming_it() {
        let cases = [
            (SubmitRun { prompt: "  \n".into(), ..SubmitRun::default() }, "prompt"),
            (SubmitRun { model_id: Some("bad id!".into()), ..request("p") }, "model_id"),
            (SubmitRun { max_tokens: Some(0), ..request("p") }, "max_tokens"),
            (SubmitRun { max_tokens: Some(4097), ..request("p") }, "max_tokens"),
            (SubmitRun { temperature: Some(1.5), ..request("p") }, "temperature"),
        ];
        for (submission, field) in cases {
            match validate(&policy(), submission) {
                Err(SubmitError::Invalid(message)) => assert!(message.contains(field), "{message} names {field}"),
                other => panic!("expected Invalid naming {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_prompt_over_the_limit_is_too_large() {
        // The policy allows 16 bytes; 17 are one too many.
        let result = validate(&policy(), request("12345678901234567"));
        assert!(matches!(result, Err(SubmitError::TooLarge(_))), "{result:?}");
    }

    #[test]
    fn the_rate_limiter_allows_its_burst_then_says_when_the_next_token_comes() {
        let limiter = RateLimiter::per_minute(2);
        let start = Instant::now();
        assert_eq!(limiter.try_take_at(start), None);
        assert_eq!(limiter.try_take_at(start), None);
        // 2 per minute refill one token every 30 s.
        let wait = limiter.try_take_at(start).expect("bucket is empty");
        assert!((wait.as_secs_f64() - 30.0).abs() < 0.01, "{wait:?}");
        assert_eq!(limiter.try_take_at(start + Duration::from_secs(30)), None);
    }
}
