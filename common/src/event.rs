//! The live events of a run, pushed over the WebSocket and stored for replay.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{BatchId, RunId, RunState, StopReason, TaskName, TaskState, Usage};

/// One event of one run. On the wire: `{"type", "run_id", "seq", "ts", ...fields of the kind}`.
/// Read through [`WireEvent`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The run it belongs to.
    pub run_id: RunId,
    /// Position in the run's event sequence: from 1, no gaps.
    pub seq: u64,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Severity of a log line, named as `tracing` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Very fine detail.
    Trace,
    /// Detail for debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something went wrong but the run goes on.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [LogLevel; 5] = [LogLevel::Trace, LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// What an [`Event`] says happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The run was accepted (always `seq` 1); carries everything needed to render it.
    RunCreated {
        prompt: String,
        model_id: String,
        /// The system prompt, if any.
        system: Option<String>,
        max_tokens: u32,
        /// The sampling temperature, if set.
        temperature: Option<f32>,
        /// Attempts each task may make in all.
        max_attempts: u32,
        /// The run this one was made from, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replay_of: Option<RunId>,
        /// The batch the run is an item of, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_id: Option<BatchId>,
    },
    /// The run changed state.
    RunState {
        state: RunState,
        /// Why it failed, crashed or was cancelled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A task attempt started or ended.
    TaskState {
        task: TaskName,
        /// The attempt number, from 1; 0 for a task that ended without starting, whose
        /// `outcome.error` says why ("not run: …").
        attempt: u32,
        state: TaskState,
        /// How the attempt ended, when it ended.
        #[serde(flatten)]
        outcome: AttemptOutcome,
    },
    /// A log line of the run.
    Log {
        level: LogLevel,
        /// The task it came from, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<TaskName>,
        /// The attempt it came from, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        /// The message with its structured fields.
        message: String,
    },
    /// The next piece of the response text.
    Delta {
        /// The `call_bedrock` attempt producing it; a new attempt starts the response afresh.
        attempt: u32,
        /// The text to append.
        text: String,
    },
    /// Bedrock finished answering: usage, stop reason and its own latency.
    ModelResult {
        /// Token usage, unknown if the stream ended without it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_reason: Option<StopReason>,
        /// Bedrock's reported latency in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        latency_ms: Option<u64>,
    },
}

impl EventKind {
    /// Whether this is a run's terminal state: nothing of the run follows it.
    pub fn ends_run(&self) -> bool {
        matches!(self, EventKind::RunState { state, .. } if state.is_terminal())
    }
}

/// How a task attempt ended: what a person debugging it needs. Empty while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttemptOutcome {
    /// The error it failed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether that error is worth retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// HTTP status of the Bedrock response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Milliseconds to the first response byte or event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<u64>,
    /// Milliseconds the attempt took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
    /// Milliseconds until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_ms: Option<u64>,
    /// When the next attempt starts.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::time::deserialize_option")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// An [`Event`] as read off the wire: every field of every kind, flat. serde's derive for the
/// flattened, internally tagged [`EventKind`] buffers each event into an intermediate tree and
/// matches it again (twice, for the nested outcome); reading the fields straight is faster on
/// the server and about 15 KB less Wasm in the page.
#[derive(Deserialize)]
struct WireEvent {
    run_id: RunId,
    seq: u64,
    #[serde(deserialize_with = "crate::time::deserialize")]
    ts: DateTime<Utc>,
    #[serde(rename = "type")]
    kind: KindName,
    prompt: Option<String>,
    model_id: Option<String>,
    system: Option<String>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    max_attempts: Option<u32>,
    replay_of: Option<RunId>,
    batch_id: Option<BatchId>,
    /// A [`RunState`] or a [`TaskState`], by the kind.
    state: Option<String>,
    error: Option<String>,
    task: Option<TaskName>,
    attempt: Option<u32>,
    retryable: Option<bool>,
    http_status: Option<u16>,
    request_id: Option<String>,
    first_byte_ms: Option<u64>,
    total_ms: Option<u64>,
    retry_delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "crate::time::deserialize_option")]
    retry_at: Option<DateTime<Utc>>,
    level: Option<LogLevel>,
    message: Option<String>,
    text: Option<String>,
    usage: Option<Usage>,
    stop_reason: Option<StopReason>,
    latency_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindName {
    RunCreated,
    RunState,
    TaskState,
    Log,
    Delta,
    ModelResult,
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing field `{field}`"))
}

fn state<T: std::str::FromStr>(value: Option<String>) -> Result<T, String> {
    let text = required(value, "state")?;
    text.parse().map_err(|_| format!("unknown state `{text}`"))
}

impl TryFrom<WireEvent> for Event {
    type Error = String;

    fn try_from(wire: WireEvent) -> Result<Event, String> {
        let kind = match wire.kind {
            KindName::RunCreated => EventKind::RunCreated {
                prompt: required(wire.prompt, "prompt")?,
                model_id: required(wire.model_id, "model_id")?,
                system: wire.system,
                max_tokens: required(wire.max_tokens, "max_tokens")?,
                temperature: wire.temperature,
                max_attempts: required(wire.max_attempts, "max_attempts")?,
                replay_of: wire.replay_of,
                batch_id: wire.batch_id,
            },
            KindName::RunState => EventKind::RunState { state: state(wire.state)?, error: wire.error },
            KindName::TaskState => EventKind::TaskState {
                task: required(wire.task, "task")?,
                attempt: required(wire.attempt, "attempt")?,
                state: state(wire.state)?,
                outcome: AttemptOutcome {
                    error: wire.error,
                    retryable: wire.retryable,
                    http_status: wire.http_status,
                    request_id: wire.request_id,
                    first_byte_ms: wire.first_byte_ms,
                    total_ms: wire.total_ms,
                    retry_delay_ms: wire.retry_delay_ms,
                    retry_at: wire.retry_at,
                },
            },
            KindName::Log => EventKind::Log {
                level: required(wire.level, "level")?,
                task: wire.task,
                attempt: wire.attempt,
                message: required(wire.message, "message")?,
            },
            KindName::Delta => {
                EventKind::Delta { attempt: required(wire.attempt, "attempt")?, text: required(wire.text, "text")? }
            }
            KindName::ModelResult => {
                EventKind::ModelResult { usage: wire.usage, stop_reason: wire.stop_reason, latency_ms: wire.latency_ms }
            }
        };
        Ok(Event { run_id: wire.run_id, seq: wire.seq, ts: wire.ts, kind })
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        Event::try_from(WireEvent::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl Event {
    /// The event's JSON text, as sent on the WebSocket.
    pub fn to_json(&self) -> String {
        // Serializing these plain data types cannot fail: no maps with non-string keys, no I/O.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn event(kind: EventKind) -> Event {
        Event { run_id: RunId(Uuid::nil()), seq: 3, ts: DateTime::UNIX_EPOCH, kind }
    }

    #[test]
    fn events_are_flat_objects_tagged_by_type() {
        let json: serde_json::Value =
            serde_json::from_str(&event(EventKind::Delta { attempt: 1, text: "hi".into() }).to_json())
                .expect("valid json");
        assert_eq!(json["type"], "delta");
        assert_eq!(json["seq"], 3);
        assert_eq!(json["text"], "hi");
        assert_eq!(json["run_id"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(json["ts"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn every_kind_round_trips() {
        let kinds = [
            EventKind::RunState { state: RunState::Failed, error: Some("boom".into()) },
            EventKind::TaskState {
                task: TaskName::CallBedrock,
                attempt: 2,
                state: TaskState::AwaitingRetry,
                outcome: AttemptOutcome {
                    error: Some("throttled".into()),
                    retryable: Some(true),
                    http_status: Some(429),
                    request_id: Some("req-1".into()),
                    first_byte_ms: Some(12),
                    total_ms: Some(34),
                    retry_delay_ms: Some(5_000),
                    retry_at: DateTime::from_timestamp(1_700_000_005, 250_000_000),
                },
            },
            EventKind::TaskState {
                task: TaskName::LoadPromptFile,
                attempt: 0,
                state: TaskState::Cancelled,
                outcome: AttemptOutcome { error: Some("not run: cancelled".into()), ..Default::default() },
            },
            EventKind::RunCreated {
                prompt: "p".into(),
                model_id: "m".into(),
                system: Some("s".into()),
                max_tokens: 7,
                temperature: Some(0.25),
                max_attempts: 3,
                replay_of: Some(RunId(Uuid::from_u128(9))),
                batch_id: Some(BatchId(Uuid::from_u128(10))),
            },
            EventKind::RunCreated {
                prompt: String::new(),
                model_id: "m".into(),
                system: None,
                max_tokens: 1,
                temperature: None,
                max_attempts: 1,
                replay_of: None,
                batch_id: None,
            },
            EventKind::Delta { attempt: 2, text: "more".into() },
            EventKind::ModelResult { usage: None, stop_reason: None, latency_ms: None },
            EventKind::Log {
                level: LogLevel::Warn,
                task: Some(TaskName::LoadPromptFile),
                attempt: Some(1),
                message: "m".into(),
            },
            EventKind::ModelResult {
                usage: Some(Usage { input_tokens: 3, output_tokens: 4 }),
                stop_reason: Some(StopReason::EndTurn),
                latency_ms: Some(5),
            },
        ];
        for kind in kinds {
            let original = event(kind);
            let back: Event = serde_json::from_str(&original.to_json()).expect("round trip");
            assert_eq!(back, original);
        }
    }

    #[test]
    fn an_event_missing_a_field_of_its_kind_or_of_an_unknown_kind_is_refused_by_name() {
        let head = r#""run_id":"00000000-0000-0000-0000-000000000000","seq":1,"ts":"2026-12-01T00:00:00Z""#;
        for (body, names) in [
            (r#""type":"delta","attempt":1"#, "`text`"),
            (r#""type":"run_state","state":"Sleeping""#, "`Sleeping`"),
            (r#""type":"task_state","task":"call_bedrock","state":"Running""#, "`attempt`"),
            (r#""type":"gossip""#, "gossip"),
        ] {
            let error = serde_json::from_str::<Event>(&format!("{{{head},{body}}}")).expect_err(body);
            assert!(error.to_string().contains(names), "{body}: {error}");
        }
    }

    #[test]
    fn task_state_events_name_task_attempt_and_state() {
        let json: serde_json::Value = serde_json::from_str(
            &event(EventKind::TaskState {
                task: TaskName::CallBedrock,
                attempt: 1,
                state: TaskState::Running,
                outcome: AttemptOutcome::default(),
            })
            .to_json(),
        )
        .expect("valid json");
        assert_eq!(json["type"], "task_state");
        assert_eq!(json["task"], "call_bedrock");
        assert_eq!(json["attempt"], 1);
        assert_eq!(json["state"], "Running");
    }
}
