//! Command-line and environment configuration: `backend serve | run | emulator`.
//!
//! Every `serve` flag has an environment variable of the same meaning; flags win. Defaults
//! follow the original system (2 retries, 5 s and 10 s between attempts, Claude 3 Sonnet).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use common::{FaultKind, FaultPlan, Quota};

use crate::bedrock::{BedrockApi, BedrockSettings, Timeouts};
// The values of `--bedrock`: re-exported so code that builds settings names them from here.
pub use crate::bedrock::BedrockChoice;
use crate::emulator::EmulatorConfig;
use crate::flow::{FlowSettings, RetryPolicy};

/// What happens to a run whose replica died mid-way (`--on-owner-loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OwnerLoss {
    /// Another replica continues it: the interrupted attempt ends as a retryable failure and
    /// the next one starts there, within the task's retry budget.
    #[default]
    Resume,
    /// Another replica ends it `Crashed`, as a single server does after a restart.
    Crash,
}
use crate::store::Synchronous;

/// The default model, as in the original system (a Legacy model on Bedrock: override it with
/// `--model-id` or `BEDROCK_MODEL_ID`, e.g. `us.anthropic.claude-sonnet-4-5-20250929-v1:0`).
pub const DEFAULT_MODEL_ID: &str = "anthropic.claude-3-sonnet-20240229-v1:0";

/// The prompt pipeline for Claude on AWS Bedrock.
#[derive(Debug, Parser)]
#[command(name = "backend", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app, the REST API and the WebSocket.
    Serve(ServeArgs),
    /// Run the flow once from the terminal, printing the response as it streams.
    Run(RunArgs),
    /// Run the built-in Bedrock emulator on its own.
    Emulator(EmulatorArgs),
    /// Submit a file of prompts as a batch to a running server and follow it to the end.
    Batch(BatchArgs),
    /// Work with the prompt journal.
    #[command(subcommand)]
    Journal(JournalCommand),
}

/// `backend journal ...`.
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Write every prompt of a PostgreSQL store in the format of `prompts.txt`, oldest first.
    Export(JournalExportArgs),
}

/// `backend journal export`.
#[derive(Debug, Clone, Args)]
pub struct JournalExportArgs {
    /// The PostgreSQL database to read.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Write here instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Settings shared by `serve` and `run`: storage, Bedrock and the flow.
#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// Store everything in this PostgreSQL database (`postgres://user@host/db`), shared with
    /// the other replicas of a cluster; without it, SQLite in `--data-dir` and `prompts.txt`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// This replica's name in the cluster (PostgreSQL only); default: host, process id and a
    /// random suffix, unique per start.
    #[arg(long, env = "APP_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Seconds a replica's lease lasts without a heartbeat (PostgreSQL only): after a replica
    /// dies, its runs are taken over within about this long. Heartbeats come every third of it.
    #[arg(long, env = "APP_LEASE_SECS", default_value_t = 3.0)]
    pub lease_secs: f64,
    /// What a replica does with a run whose owner died (PostgreSQL only): `resume` it from the
    /// interrupted attempt, within its retry budget, or end it `crash`ed.
    #[arg(long, env = "APP_ON_OWNER_LOSS", value_enum, default_value_t)]
    pub on_owner_loss: OwnerLoss,
    /// Directory of the SQLite database.
    #[arg(long, env = "APP_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The prompt journal every submitted prompt is written to.
    #[arg(long, env = "APP_PROMPTS_FILE", default_value = "./prompts.txt")]
    pub prompts_file: PathBuf,
    /// How hard SQLite syncs commits (see the README's "Durability").
    #[arg(long, env = "APP_SQLITE_SYNCHRONOUS", value_enum, default_value_t)]
    pub sqlite_synchronous: Synchronous,
    /// Which Bedrock to call.
    #[arg(long, env = "APP_BEDROCK", value_enum, default_value_t)]
    pub bedrock: BedrockChoice,
    /// Send every Bedrock call to this URL through the SDK (credentials from the AWS chain).
    #[arg(long, env = "BEDROCK_ENDPOINT_URL")]
    pub bedrock_endpoint: Option<String>,
    /// Default model id or inference profile for runs that do not name one.
    #[arg(long, env = "BEDROCK_MODEL_ID", default_value = DEFAULT_MODEL_ID)]
    pub model_id: String,
    /// A model catalog file to use instead of the built-in one (see the README's "Model
    /// catalog"): its lifecycle dates refuse end-of-life models and its prices cost the runs.
    #[arg(long, env = "APP_MODEL_CATALOG")]
    pub model_catalog: Option<PathBuf>,
    /// ConverseStream (streaming) or InvokeModel (Anthropic Messages body, no streaming).
    #[arg(long, env = "BEDROCK_API", value_enum, default_value_t)]
    pub bedrock_api: BedrockApi,
    /// Default response token limit.
    #[arg(long, env = "APP_MAX_TOKENS", default_value_t = 1024)]
    pub max_tokens: u32,
    /// Retries of each task after its first attempt.
    #[arg(long, env = "APP_RETRIES", default_value_t = 2)]
    pub retries: u32,
    /// Seconds between `load_prompt_file` attempts.
    #[arg(long, env = "APP_LOAD_RETRY_DELAY_SECS", default_value_t = 5.0)]
    pub load_retry_delay_secs: f64,
    /// Seconds between `call_bedrock` attempts.
    #[arg(long, env = "APP_BEDROCK_RETRY_DELAY_SECS", default_value_t = 10.0)]
    pub bedrock_retry_delay_secs: f64,
    /// Up to this many extra random seconds before each retry.
    #[arg(long, env = "APP_RETRY_JITTER_SECS", default_value_t = 0.0)]
    pub retry_jitter_secs: f64,
    /// Seconds allowed to connect to Bedrock.
    #[arg(long, env = "APP_CONNECT_TIMEOUT_SECS", default_value_t = 5.0)]
    pub connect_timeout_secs: f64,
    /// Seconds allowed from sending a call to Bedrock's response headers (a retryable timeout).
    /// InvokeModel answers only once the whole reply is generated: raise it for long answers
    /// with `--bedrock-api invoke`.
    #[arg(long, env = "APP_FIRST_BYTE_TIMEOUT_SECS", default_value_t = 60.0)]
    pub first_byte_timeout_secs: f64,
    /// Seconds allowed for a whole Bedrock call, stream included; 0 (the default) sets no limit,
    /// since a stream that keeps producing is healthy. A call cut by this limit is not retried:
    /// another attempt would be billed again and cut the same way.
    #[arg(long, env = "APP_CALL_TIMEOUT_SECS", default_value_t = 0.0)]
    pub call_timeout_secs: f64,
    /// Seconds of silence after which a response stream counts as stalled (and is retried).
    #[arg(long, env = "APP_STREAM_IDLE_TIMEOUT_SECS", default_value_t = 30.0)]
    pub stream_idle_timeout_secs: f64,
    /// Most runs in flight at once (each makes at most one Bedrock call at a time); 429 beyond.
    #[arg(long, env = "APP_MAX_CONCURRENT_RUNS", default_value_t = 10_000)]
    pub max_concurrent_runs: usize,
    /// Most Bedrock calls in progress at once, across all runs; further calls wait their turn.
    #[arg(long, env = "APP_MAX_CONCURRENT_BEDROCK_CALLS", default_value_t = 1000)]
    pub max_concurrent_bedrock_calls: usize,
    /// Most submissions accepted per minute (0 = no limit); 429 with `Retry-After` beyond.
    #[arg(long, env = "APP_MAX_SUBMISSIONS_PER_MINUTE", default_value_t = 0)]
    pub max_submissions_per_minute: u32,
    /// Most items in one batch.
    #[arg(long, env = "APP_MAX_BATCH_ITEMS", default_value_t = 50_000)]
    pub max_batch_items: usize,
    /// Largest batch request body accepted, in bytes (other requests: `--max-body-bytes`).
    #[arg(long, env = "APP_MAX_BATCH_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// Most batch runs in flight at once, over all models; each model's own limit adapts to
    /// its quota below this.
    #[arg(long, env = "APP_MAX_BATCH_CONCURRENCY", default_value_t = 64)]
    pub max_batch_concurrency: usize,
    /// Pause before the built-in emulator's response headers, in milliseconds.
    #[arg(long, env = "APP_EMULATOR_LATENCY_MS", default_value_t = 200)]
    pub emulator_latency_ms: u64,
    /// Pause between the built-in emulator's response headers and its first body byte, in milliseconds.
    #[arg(long, env = "APP_EMULATOR_BODY_LATENCY_MS", default_value_t = 0)]
    pub emulator_body_latency_ms: u64,
    /// The built-in emulator's streaming pace (0 = unpaced).
    #[arg(long, env = "APP_EMULATOR_TOKENS_PER_SEC", default_value_t = 40)]
    pub emulator_tokens_per_sec: u32,
    /// The built-in emulator's requests per minute per model, throttled beyond (0 = no quota).
    #[arg(long, env = "APP_EMULATOR_QUOTA_RPM", default_value_t = 0)]
    pub emulator_quota_rpm: u32,
    /// The built-in emulator's input plus output tokens per minute per model, throttled beyond (0 = no quota).
    #[arg(long, env = "APP_EMULATOR_QUOTA_TPM", default_value_t = 0)]
    pub emulator_quota_tpm: u32,
}

/// `backend serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "APP_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Directory of the built frontend, served at `/` (skipped when it does not exist).
    #[arg(long, env = "APP_STATIC_DIR", default_value = "./dist")]
    pub static_dir: PathBuf,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "APP_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest prompt accepted, in bytes.
    #[arg(long, env = "APP_MAX_PROMPT_BYTES", default_value_t = 200 * 1024)]
    pub max_prompt_bytes: usize,
    /// Access token every request must carry; required when `--addr` is not a loopback address.
    #[arg(long, env = "APP_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Extra host names the server answers to (besides loopback names and the bound address).
    #[arg(long = "allowed-host", env = "APP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Origins besides the page's own that may submit, cancel and open the event feed, as
    /// `scheme://host[:port]` (e.g. `http://127.0.0.1:8081` for `trunk serve`).
    #[arg(long = "allowed-origin", env = "APP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Seconds runs in flight may take to finish at shutdown before they are interrupted.
    #[arg(long, env = "APP_SHUTDOWN_GRACE_SECS", default_value_t = 10.0)]
    pub shutdown_grace_secs: f64,
    /// Storage, Bedrock and flow settings.
    #[command(flatten)]
    pub app: AppArgs,
}

/// `backend run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The prompt.
    #[arg(long, conflicts_with = "prompt_file", required_unless_present = "prompt_file")]
    pub prompt: Option<String>,
    /// A plain text file holding the prompt.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// Model id for this run.
    #[arg(long = "run-model-id")]
    pub run_model_id: Option<String>,
    /// System prompt for this run.
    #[arg(long)]
    pub system: Option<String>,
    /// Storage, Bedrock and flow settings.
    #[command(flatten)]
    pub app: AppArgs,
}

/// `backend batch`.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// The items: plain text (a prompt per line), JSON Lines or CSV, by its extension (or
    /// `--format`); `-` reads standard input.
    pub file: PathBuf,
    /// The server to submit to.
    #[arg(long, env = "APP_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The server's access token, if it requires one.
    #[arg(long, env = "APP_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// The file's format, when its extension does not say.
    #[arg(long, value_enum)]
    pub format: Option<BatchFileFormat>,
    /// A prompt template whose `{{name}}` placeholders each line's (JSON Lines) or column's
    /// (CSV) values fill.
    #[arg(long, conflicts_with = "template_file")]
    pub template: Option<String>,
    /// A file holding the template.
    #[arg(long)]
    pub template_file: Option<PathBuf>,
    /// Model id for every item (the server's default if absent).
    #[arg(long = "run-model-id")]
    pub run_model_id: Option<String>,
    /// System prompt for every item.
    #[arg(long)]
    pub system: Option<String>,
    /// Max tokens for every item.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature for every item.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Submit and print the batch's id without waiting for it.
    #[arg(long)]
    pub no_follow: bool,
    /// Once the batch ends, write its results here: CSV for a `.csv` name, else JSON Lines.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The formats `backend batch` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchFileFormat {
    Text,
    Jsonl,
    Csv,
}

/// `backend emulator`.
#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub addr: SocketAddr,
    /// Pause before the response headers, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub latency_ms: u64,
    /// Pause between the response headers and the first body byte, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub body_latency_ms: u64,
    /// Streaming pace (0 = unpaced).
    #[arg(long, default_value_t = 40)]
    pub tokens_per_sec: u32,
    /// Fail the first N calls.
    #[arg(long, default_value_t = 0)]
    pub fail_first: u32,
    /// Also fail every Nth call after those (0 = never).
    #[arg(long, default_value_t = 0)]
    pub fail_every: u32,
    /// How injected failures fail.
    #[arg(long, value_parser = parse_fault_kind, default_value = "throttle")]
    pub fail_kind: FaultKind,
    /// Requests per minute per model, throttled beyond (0 = no quota).
    #[arg(long, default_value_t = 0)]
    pub quota_rpm: u32,
    /// Input plus output tokens per minute per model, throttled beyond (0 = no quota).
    #[arg(long, default_value_t = 0)]
    pub quota_tpm: u32,
}

fn parse_fault_kind(text: &str) -> Result<FaultKind, String> {
    text.parse().map_err(|_| format!("expected one of {}", FaultKind::ALL.map(FaultKind::as_str).join(", ")))
}

/// Turns a non-negative number of seconds from the command line into a duration.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

impl AppArgs {
    /// The flow's retry policies.
    pub fn flow_settings(&self) -> FlowSettings {
        let jitter = seconds(self.retry_jitter_secs);
        FlowSettings {
            load: RetryPolicy { retries: self.retries, delay: seconds(self.load_retry_delay_secs), jitter },
            bedrock: RetryPolicy { retries: self.retries, delay: seconds(self.bedrock_retry_delay_secs), jitter },
            max_concurrent_calls: self.max_concurrent_bedrock_calls,
        }
    }

    /// Bedrock call time limits.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: seconds(self.connect_timeout_secs),
            first_byte: seconds(self.first_byte_timeout_secs),
            idle: seconds(self.stream_idle_timeout_secs),
            call: (self.call_timeout_secs > 0.0).then(|| seconds(self.call_timeout_secs)),
        }
    }

    /// How to reach Bedrock.
    pub fn bedrock_settings(&self) -> BedrockSettings {
        BedrockSettings {
            choice: self.bedrock,
            endpoint: self.bedrock_endpoint.clone(),
            api: self.bedrock_api,
            timeouts: self.timeouts(),
            emulator: self.emulator_config(),
        }
    }

    /// How long a replica's lease lasts (at least a second: heartbeats come every third).
    pub fn lease(&self) -> Duration {
        seconds(self.lease_secs).max(Duration::from_secs(1))
    }

    /// The built-in emulator's settings.
    pub fn emulator_config(&self) -> EmulatorConfig {
        EmulatorConfig {
            latency: Duration::from_millis(self.emulator_latency_ms),
            body_latency: Duration::from_millis(self.emulator_body_latency_ms),
            tokens_per_sec: self.emulator_tokens_per_sec,
            faults: None,
            quota: Quota { rpm: self.emulator_quota_rpm, tpm: self.emulator_quota_tpm },
        }
    }
}

impl EmulatorArgs {
    /// The emulator's settings.
    pub fn emulator_config(&self) -> EmulatorConfig {
        let faults = (self.fail_first > 0 || self.fail_every > 0).then_some(FaultPlan {
            kind: self.fail_kind,
            fail_first: self.fail_first,
            every_nth: self.fail_every,
        });
        EmulatorConfig {
            latency: Duration::from_millis(self.latency_ms),
            body_latency: Duration::from_millis(self.body_latency_ms),
            tokens_per_sec: self.tokens_per_sec,
            faults,
            quota: Quota { rpm: self.quota_rpm, tpm: self.quota_tpm },
        }
    }
}

impl ServeArgs {
    /// Settings with every default, for tests and tools that build a server in code.
    pub fn defaults() -> ServeArgs {
        // Parsing an empty command line only applies the defaults declared above; it fails only
        // if those defaults are themselves invalid, which the unit test below rules out.
        match Cli::try_parse_from(["backend", "serve"]) {
            Ok(Cli { command: Command::Serve(args) }) => args,
            _ => unreachable!("the declared defaults of `serve` parse"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_follow_the_original_system() {
        let args = ServeArgs::defaults();
        assert_eq!(args.addr.to_string(), "127.0.0.1:8080");
        let flow = args.app.flow_settings();
        assert_eq!(flow.load.max_attempts(), 3);
        assert_eq!(flow.load.delay, Duration::from_secs(5));
        assert_eq!(flow.bedrock.delay, Duration::from_secs(10));
        assert_eq!(args.app.model_id, DEFAULT_MODEL_ID);
        assert_eq!(args.max_body_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn emulator_fault_flags_build_a_plan() {
        let cli = Cli::try_parse_from([
            "backend",
            "emulator",
            "--addr",
            "127.0.0.1:0",
            "--fail-first",
            "2",
            "--fail-kind",
            "503",
        ])
        .expect("valid flags");
        let Command::Emulator(args) = cli.command else { panic!("emulator subcommand") };
        let plan = args.emulator_config().faults.expect("a plan");
        assert_eq!((plan.kind, plan.fail_first), (FaultKind::Unavailable, 2));
        assert_eq!(args.emulator_config().quota, Quota::default(), "no quota unless asked");
    }

    #[test]
    fn quota_flags_set_the_emulator_quota_alone_and_built_in() {
        let cli = Cli::try_parse_from(["backend", "emulator", "--quota-rpm", "600", "--quota-tpm", "90000"])
            .expect("valid flags");
        let Command::Emulator(args) = cli.command else { panic!("emulator subcommand") };
        assert_eq!(args.emulator_config().quota, Quota { rpm: 600, tpm: 90_000 });

        let cli = Cli::try_parse_from(["backend", "serve", "--emulator-quota-rpm", "2", "--emulator-quota-tpm", "50"])
            .expect("valid flags");
        let Command::Serve(args) = cli.command else { panic!("serve subcommand") };
        assert_eq!(args.app.emulator_config().quota, Quota { rpm: 2, tpm: 50 });
        assert_eq!(ServeArgs::defaults().app.emulator_config().quota, Quota::default());
    }
}
