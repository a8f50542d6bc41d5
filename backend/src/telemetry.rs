//! Logging: `tracing` to the terminal, and a layer that turns a run's log lines into its events.
//!
//! The flow runs each run inside a `run` span (fields `run_id`, `hub`) and each attempt inside
//! a `task` span (fields `task`, `attempt`). [`RunLogLayer`] sees every event; when one happens
//! inside a `run` span it becomes a `log` event of that run, tagged with the task and attempt of
//! the nearest `task` span, published through the run's [`Hub`] (stored and pushed live). So
//! there is one logging path: a `tracing::warn!` in the flow reaches the terminal, the store and
//! every browser watching the run.

use std::fmt::Write as _;
use std::sync::{Arc, Once, Weak};

use common::{EventKind, LogLevel, RunId, TaskName};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::events::Hub;

static INIT: Once = Once::new();

/// Directives appended to every terminal filter: at debug and trace the AWS SDK logs the
/// resolved identity (the access key id) and the request it signs, so its crates are capped at
/// `info` whatever `RUST_LOG` asks, and no credential reaches the terminal.
const CREDENTIAL_SAFE_DIRECTIVES: &str = "aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_sigv4=info,aws_runtime=info,aws_config=info,aws_credential_types=info";

/// Installs the process-wide subscriber once: terminal output filtered by `terminal_filter`
/// (an `EnvFilter` directive such as `info` or `backend=debug`; `None` keeps the terminal
/// silent, as tests do) and the run log layer. Later calls do nothing.
pub fn init(terminal_filter: Option<&str>) {
    INIT.call_once(|| {
        let terminal = terminal_filter.map(|directives| {
            let filter = EnvFilter::try_new(format!("{directives},{CREDENTIAL_SAFE_DIRECTIVES}"))
                .unwrap_or_else(|_| EnvFilter::new(format!("info,{CREDENTIAL_SAFE_DIRECTIVES}")));
            tracing_subscriber::fmt::layer().with_target(false).with_writer(std::io::stderr).with_filter(filter)
        });
        // A run's own lines at debug and above; other crates (the SDK, hyper) only when they warn.
        let run_lines = Targets::new().with_target("backend", Level::DEBUG).with_default(Level::WARN);
        let _ = tracing_subscriber::registry().with(terminal).with(RunLogLayer.with_filter(run_lines)).try_init();
    });
}

/// Routes log lines emitted inside a run's span to that run's events.
#[derive(Debug, Clone, Copy)]
pub struct RunLogLayer;

/// Stored on a `run` span.
struct RunTarget {
    run_id: RunId,
    hub: Weak<Hub>,
}

/// Stored on a `task` span.
struct TaskTarget {
    task: Option<TaskName>,
    attempt: Option<u32>,
}

#[derive(Default)]
struct SpanFields {
    run_id: Option<RunId>,
    hub: Option<u64>,
    task: Option<TaskName>,
    attempt: Option<u32>,
}

impl Visit for SpanFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "hub" => self.hub = Some(value),
            "attempt" => self.attempt = u32::try_from(value).ok(),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "task" {
            self.task = value.parse().ok();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "run_id" {
            self.run_id = format!("{value:?}").parse().ok();
        }
    }
}

/// Renders an event as `message key=value ...`.
#[derive(Default)]
struct MessageWriter {
    message: String,
    fields: String,
}

impl Visit for MessageWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

fn level_of(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

impl<S> Layer<S> for RunLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let name = attrs.metadata().name();
        if name != "run" && name != "task" {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        let mut extensions = span.extensions_mut();
        if name == "run" {
            if let (Some(run_id), Some(hub)) = (fields.run_id, fields.hub.and_then(Hub::find)) {
                extensions.insert(RunTarget { run_id, hub: Arc::downgrade(&hub) });
            }
        } else {
            extensions.insert(TaskTarget { task: fields.task, attempt: fields.attempt });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else { return };
        let mut task = None;
        let mut attempt = None;
        let mut target = None;
        for span in scope {
            let extensions = span.extensions();
            if let (None, Some(found)) = (task, extensions.get::<TaskTarget>()) {
                task = found.task;
                attempt = found.attempt;
            }
            if let Some(found) = extensions.get::<RunTarget>() {
                target = found.hub.upgrade().map(|hub| (found.run_id, hub));
                break;
            }
        }
        let Some((run_id, hub)) = target else { return };
        let mut writer = MessageWriter::default();
        event.record(&mut writer);
        writer.message.push_str(&writer.fields);
        hub.publish(
            run_id,
            EventKind::Log { level: level_of(event.metadata().level()), task, attempt, message: writer.message },
        );
    }
}
