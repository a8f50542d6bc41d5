//! Runs, tasks and the REST request and response bodies.

use std::fmt;
use std::str::FromStr;

use crate::{BatchId, RunId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A state name that is not one of the known states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStateError(pub String);

impl fmt::Display for ParseStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown state `{}`", self.0)
    }
}

impl std::error::Error for ParseStateError {}

/// Declares a state enum whose variant names are its wire names.
macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every state, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The state's name as it appears on the wire and in the store.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseStateError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $(stringify!($variant) => Ok($name::$variant),)+
                    other => Err(ParseStateError(other.to_owned())),
                }
            }
        }
    };
}

state_enum! {
    /// The lifecycle state of a flow run.
    RunState {
        /// Accepted and stored, not started yet.
        Pending,
        /// Its tasks are executing.
        Running,
        /// Both tasks completed; the response is final.
        Completed,
        /// A task failed after its allowed attempts.
        Failed,
        /// Cancelled by a user.
        Cancelled,
        /// The process stopped while the run was in flight.
        Crashed,
    }
}

impl RunState {
    /// Whether the run is over; a terminal state never changes.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunState::Pending | RunState::Running)
    }
}

state_enum! {
    /// The state of one task of a run.
    TaskState {
        /// Not started yet.
        Pending,
        /// An attempt is executing.
        Running,
        /// An attempt failed with a retryable error; the next one waits for its delay.
        AwaitingRetry,
        /// An attempt succeeded.
        Completed,
        /// The last allowed attempt failed, or the error was not worth retrying.
        Failed,
        /// The run was cancelled while this task was pending, running or waiting.
        Cancelled,
    }
}

impl TaskState {
    /// Whether the task is over; a terminal state never changes.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Failed | TaskState::Cancelled)
    }
}

/// The two tasks of the flow, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskName {
    /// Reads the run's prompt back from the prompt journal.
    LoadPromptFile,
    /// Sends the prompt to Claude through Bedrock.
    CallBedrock,
}

impl TaskName {
    /// The tasks in the order the flow runs them.
    pub const ALL: [TaskName; 2] = [TaskName::LoadPromptFile, TaskName::CallBedrock];

    /// The task's name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskName::LoadPromptFile => "load_prompt_file",
            TaskName::CallBedrock => "call_bedrock",
        }
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskName {
    type Err = ParseStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "load_prompt_file" => Ok(TaskName::LoadPromptFile),
            "call_bedrock" => Ok(TaskName::CallBedrock),
            other => Err(ParseStateError(other.to_owned())),
        }
    }
}

/// Why the model stopped writing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer.
    EndTurn,
    /// The answer was cut at `max_tokens`.
    MaxTokens,
    /// A stop sequence was produced.
    StopSequence,
    /// A guardrail or content filter intervened.
    ContentFiltered,
    /// Any reason this version does not know, by its Bedrock name.
    #[serde(untagged)]
    Other(String),
}

/// Known reasons as an enum would refuse a reason Bedrock adds later, so the schema is a
/// string with the known ones as examples.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for StopReason {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Why the model stopped writing: `end_turn`, `max_tokens`, `stop_sequence`, `content_filtered`, or Bedrock's own name for any other reason."))
            .examples(["end_turn", "max_tokens"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for StopReason {}

/// Token usage of a model call, as reported by Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// `POST /api/runs`: a prompt to run through the flow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitRun {
    /// The prompt; must contain something other than whitespace.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"^[^\x00]*$"))]
    pub prompt: String,
    /// Bedrock model id or inference profile; the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*[A-Za-z0-9.:/_-]+\s*$"))]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\x00]*$"))]
    pub system: Option<String>,
    /// Upper bound on response tokens; the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_tokens: Option<u32>,
    /// Sampling temperature in `0.0..=1.0`; the model's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub temperature: Option<f32>,
    /// The run this one was made from ("edit as a new run", "run again"); it must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<RunId>,
}

/// `GET /api/runs/totals`: what the runs a history filter selects used and cost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunTotals {
    pub runs: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Estimated cost in US dollars at the model catalog's prices, of the priced runs.
    pub cost_usd: f64,
    /// Runs with usage whose model the catalog does not price: not in `cost_usd`.
    pub unpriced_runs: u64,
}

/// `POST /api/runs/{id}/replay`: the settings to change from the original run; those absent
/// are the original's. An empty `system` removes the original's system prompt.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplayRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*[A-Za-z0-9.:/_-]+\s*$"))]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\x00]*$"))]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub temperature: Option<f32>,
}

/// Opens a found word in a search snippet (STX: never in text people write).
pub const SNIPPET_MARK_START: char = '\u{2}';
/// Closes a found word in a search snippet (ETX).
pub const SNIPPET_MARK_END: char = '\u{3}';

/// One run in a list (`GET /api/runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    pub id: RunId,
    pub state: RunState,
    /// When the run was accepted.
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub created_at: DateTime<Utc>,
    /// When its first task started.
    #[serde(default, deserialize_with = "crate::time::deserialize_option")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    #[serde(default, deserialize_with = "crate::time::deserialize_option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub model_id: String,
    /// The prompt on one line, cut to [`crate::PROMPT_PREVIEW_CHARS`] characters.
    pub prompt_preview: String,
    /// Token usage once known.
    pub usage: Option<Usage>,
    /// Why it failed, crashed or was cancelled.
    pub error: Option<String>,
    /// Attempts after the first, over both tasks: how hard the run had to try.
    #[serde(default)]
    pub retries: u32,
    /// The batch the run is an item of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<BatchId>,
    /// Estimated cost in US dollars: the usage at the model catalog's prices; absent until
    /// usage is known, or for a model the catalog does not price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// For a search (`q=`): the passage of the prompt or response around the words found,
    /// each found word between [`SNIPPET_MARK_START`] and [`SNIPPET_MARK_END`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

/// One attempt of a task, with what a person debugging it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptView {
    /// 1-based attempt number.
    pub number: u32,
    /// `Running`, `AwaitingRetry` (failed, will be retried), `Completed`, `Failed` or `Cancelled`.
    pub state: TaskState,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub started_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "crate::time::deserialize_option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The error it failed with.
    pub error: Option<String>,
    /// Whether that error was worth retrying.
    pub retryable: Option<bool>,
    /// HTTP status of the Bedrock response, when one arrived.
    pub http_status: Option<u16>,
    /// The AWS request id (`x-amzn-RequestId`), when one arrived.
    pub request_id: Option<String>,
    /// Milliseconds from sending the request to the first response byte or event.
    pub first_byte_ms: Option<u64>,
    /// Milliseconds the attempt took in total.
    pub total_ms: Option<u64>,
    /// Milliseconds chosen to wait before the next attempt.
    pub retry_delay_ms: Option<u64>,
    /// When the next attempt starts, while waiting.
    #[serde(default, deserialize_with = "crate::time::deserialize_option")]
    pub retry_at: Option<DateTime<Utc>>,
}

impl AttemptView {
    /// An attempt that has just started in `state`, nothing known about its outcome yet.
    pub fn started(number: u32, state: TaskState, started_at: DateTime<Utc>) -> AttemptView {
        AttemptView {
            number,
            state,
            started_at,
            finished_at: None,
            error: None,
            retryable: None,
            http_status: None,
            request_id: None,
            first_byte_ms: None,
            total_ms: None,
            retry_delay_ms: None,
            retry_at: None,
        }
    }
}

/// One task of a run and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskView {
    pub name: TaskName,
    pub state: TaskState,
    /// How many attempts the retry policy allows in all.
    pub max_attempts: u32,
    /// The attempts so far, oldest first.
    pub attempts: Vec<AttemptView>,
    /// Why a task that ended without any attempt never ran ("not run: load_prompt_file failed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
}

/// A run in full (`GET /api/runs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDetail {
    pub id: RunId,
    pub state: RunState,
    /// When the run was accepted.
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub created_at: DateTime<Utc>,
    /// When its first task started.
    #[serde(default, deserialize_with = "crate::time::deserialize_option")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    #[serde(default, deserialize_with = "crate::time::deserialize_option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub prompt: String,
    pub model_id: String,
    /// The system prompt, if any.
    pub system: Option<String>,
    pub max_tokens: u32,
    /// The sampling temperature, if set.
    pub temperature: Option<f32>,
    /// The response text so far (complete once `Completed`), or null before the first delta.
    pub response: Option<String>,
    /// Why it failed, crashed or was cancelled.
    pub error: Option<String>,
    /// Token usage, once Bedrock reported it.
    pub usage: Option<Usage>,
    pub stop_reason: Option<StopReason>,
    /// Bedrock's own latency for the successful call, in milliseconds.
    pub latency_ms: Option<u64>,
    /// The sequence number of the run's latest event; `after_seq` resumes from here.
    pub last_seq: u64,
    /// The two tasks, in execution order.
    pub tasks: Vec<TaskView>,
    /// The run this one was made from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<RunId>,
    /// Runs made from this one, oldest first.
    #[serde(default)]
    pub replays: Vec<RunId>,
    /// The batch the run is an item of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<BatchId>,
    /// Estimated cost in US dollars: the usage at the model catalog's prices; absent until
    /// usage is known, or for a model the catalog does not price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// Which Bedrock the server talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BedrockBackend {
    /// The built-in emulator on a loopback port: no AWS call is made.
    Emulator,
    /// An explicit endpoint URL (`--bedrock-endpoint`).
    Endpoint,
    /// AWS Bedrock, with credentials from the usual AWS chain.
    Aws,
}

/// How the server reaches Bedrock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BedrockInfo {
    /// Emulator, explicit endpoint, or AWS.
    pub backend: BedrockBackend,
    /// The URL every Bedrock call goes to.
    pub endpoint: String,
    /// The AWS region used for signing.
    pub region: String,
    /// `converse` (streaming) or `invoke` (InvokeModel with the Anthropic Messages body).
    pub api: String,
    /// Where AWS credentials come from (`environment`, `profile`, `instance role`, ...); absent
    /// for the emulator, which takes fixed dummy credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
}

/// Defaults a new run gets, for the submit form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Defaults {
    pub model_id: String,
    pub max_tokens: u32,
    /// Retries of each task after its first attempt.
    pub retries: u32,
    /// Silence after which a response stream counts as stalled and the attempt fails, in ms.
    #[serde(default)]
    pub stream_idle_timeout_ms: u64,
}

/// Limits a client should respect before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiLimits {
    pub max_body_bytes: usize,
    /// Largest accepted prompt, in bytes.
    pub max_prompt_bytes: usize,
    /// Largest accepted `max_tokens`.
    pub max_tokens: u32,
}

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` while the server accepts runs.
    pub status: String,
    pub version: String,
    pub bedrock: BedrockInfo,
    pub defaults: Defaults,
    pub limits: ApiLimits,
    /// Where runs are stored: `sqlite` (one server) or `postgres` (a cluster of replicas).
    #[serde(default)]
    pub store: String,
    /// This replica, its lease and its peers, when several replicas share PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterHealth>,
}

/// A replica's view of its cluster, in `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterHealth {
    /// This replica's id.
    pub replica: String,
    /// Milliseconds left on this replica's lease; null once it is lost.
    pub lease_remaining_ms: Option<i64>,
    /// The lease expired before this replica could renew it: it executes nothing until restarted.
    pub lease_lost: bool,
    /// Every replica seen in the last minute, this one included.
    pub peers: Vec<PeerHealth>,
}

/// Another replica, as the database lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeerHealth {
    pub id: String,
    /// Where it serves (`127.0.0.1:8080`).
    pub address: String,
    /// Milliseconds left on its lease, by the database's clock; negative once expired.
    pub lease_remaining_ms: i64,
    /// Whether its lease is valid.
    pub alive: bool,
}

/// A failure the emulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `ThrottlingException`, HTTP 429.
    Throttle,
    /// `InternalServerException`, HTTP 500.
    #[serde(rename = "500")]
    Internal,
    /// `ServiceUnavailableException`, HTTP 503.
    #[serde(rename = "503")]
    Unavailable,
    /// The stream sends a little, then stalls forever.
    Stall,
    /// `ValidationException`, HTTP 400.
    Validation,
    /// The answer stops half-way: the stream ends without `messageStop`, a JSON body is cut.
    Cut,
    /// Half the answer streams, then a `throttlingException` frame ends the stream.
    #[serde(rename = "stream-throttle")]
    StreamThrottle,
    /// Half the answer streams, then a `modelStreamErrorException` frame ends the stream.
    #[serde(rename = "stream-model-error")]
    StreamModelError,
    /// Half the answer streams, then an `internalServerException` frame ends the stream.
    #[serde(rename = "stream-500")]
    StreamInternal,
}

impl FaultKind {
    /// Every kind, for pickers.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Throttle,
        FaultKind::Internal,
        FaultKind::Unavailable,
        FaultKind::Stall,
        FaultKind::Validation,
        FaultKind::Cut,
        FaultKind::StreamThrottle,
        FaultKind::StreamModelError,
        FaultKind::StreamInternal,
    ];

    /// The name used by flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Throttle => "throttle",
            FaultKind::Internal => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Stall => "stall",
            FaultKind::Validation => "validation",
            FaultKind::Cut => "cut",
            FaultKind::StreamThrottle => "stream-throttle",
            FaultKind::StreamModelError => "stream-model-error",
            FaultKind::StreamInternal => "stream-500",
        }
    }
}

impl FromStr for FaultKind {
    type Err = ParseStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| ParseStateError(s.to_owned()))
    }
}

/// Which emulator calls fail, and how (`PUT /api/emulator/faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    pub kind: FaultKind,
    /// Fail the next N calls.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 1_000_000))]
    pub fail_first: u32,
    /// Also fail every Nth call after those (0 = never).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 1_000_000))]
    pub every_nth: u32,
}

impl FaultPlan {
    /// The most calls a plan may name in `fail_first` or `every_nth`: far beyond any test,
    /// and small enough for every client's integers.
    pub const MAX_CALLS: u32 = 1_000_000;
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What is wrong, in words a person can act on.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_use_their_exact_wire_names() {
        for state in RunState::ALL {
            let json = serde_json::to_string(state).expect("state serializes");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(state.as_str().parse::<RunState>(), Ok(*state));
        }
        assert_eq!(serde_json::to_string(&TaskState::AwaitingRetry).ok().as_deref(), Some("\"AwaitingRetry\""));
        assert_eq!(serde_json::to_string(&TaskName::CallBedrock).ok().as_deref(), Some("\"call_bedrock\""));
    }

    #[test]
    fn only_pending_and_running_runs_are_live() {
        let live: Vec<_> = RunState::ALL.iter().filter(|s| !s.is_terminal()).collect();
        assert_eq!(live, [&RunState::Pending, &RunState::Running]);
    }

    #[test]
    fn submit_rejects_unknown_fields() {
        let err = serde_json::from_str::<SubmitRun>(r#"{"prompt":"hi","promt":"x"}"#);
        assert!(err.is_err());
    }

    #[test]
    fn unknown_stop_reasons_keep_their_name() {
        let reason: StopReason = serde_json::from_str("\"guardrail_intervened\"").expect("parses");
        assert_eq!(reason, StopReason::Other("guardrail_intervened".into()));
        let reason: StopReason = serde_json::from_str("\"max_tokens\"").expect("parses");
        assert_eq!(reason, StopReason::MaxTokens);
    }

    #[test]
    fn an_emulator_status_without_quota_fields_still_parses() {
        let status: EmulatorStatus =
            serde_json::from_str(r#"{"plan":null,"calls":7,"remaining_first":0}"#).expect("parses");
        assert_eq!((status.quota, status.throttled), (None, 0));
        let quota = Some(Quota { rpm: 2, tpm: 0 });
        let status = EmulatorStatus { quota, throttled: 1, ..status };
        let json = serde_json::to_string(&status).expect("serialises");
        assert_eq!(serde_json::from_str::<EmulatorStatus>(&json).ok(), Some(status));
    }

    #[test]
    fn fault_kinds_round_trip_through_their_flag_names() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.as_str().parse::<FaultKind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).ok(), Some(format!("\"{}\"", kind.as_str())));
        }
    }
}

/// `GET /api/emulator/faults`: the emulator's fault plan and how many calls it has served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmulatorStatus {
    /// The active fault plan, if any.
    pub plan: Option<FaultPlan>,
    /// Model calls the emulator has received since it started.
    pub calls: u64,
    /// Of the plan's `fail_first` calls, how many are still to fail; the `every_nth` part, if
    /// any, goes on after these are used up.
    #[serde(default)]
    pub remaining_first: u32,
    /// The per-model quota in force, if any (absent from servers that predate quotas).
    #[serde(default)]
    pub quota: Option<Quota>,
    /// Calls refused with a `ThrottlingException` because they would exceed the quota.
    #[serde(default)]
    pub throttled: u64,
}

/// The emulator's quota: what each model may take in any 60 seconds, as Bedrock's on-demand
/// quotas limit an account. 0 leaves that limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quota {
    /// Requests per minute.
    pub rpm: u32,
    /// Input plus output tokens per minute.
    pub tpm: u32,
}

impl Quota {
    /// Whether neither limit is set.
    pub fn is_unlimited(self) -> bool {
        self.rpm == 0 && self.tpm == 0
    }
}

/// One stored log line of a run (`GET /api/runs/{id}/logs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// The event sequence number of the line.
    pub seq: u64,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub ts: DateTime<Utc>,
    pub level: crate::LogLevel,
    /// The task it came from, if any.
    pub task: Option<TaskName>,
    /// The attempt it came from, if any.
    pub attempt: Option<u32>,
    /// The message with its structured fields.
    pub message: String,
}

impl TryFrom<&crate::Event> for LogEntry {
    type Error = ();

    /// The log line an event carries, if it is a `log` event.
    fn try_from(event: &crate::Event) -> Result<Self, Self::Error> {
        match &event.kind {
            crate::EventKind::Log { level, task, attempt, message } => Ok(LogEntry {
                seq: event.seq,
                ts: event.ts,
                level: *level,
                task: *task,
                attempt: *attempt,
                message: message.clone(),
            }),
            _ => Err(()),
        }
    }
}
