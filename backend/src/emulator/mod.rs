//! The built-in Bedrock Runtime emulator: the real REST-JSON and event-stream protocol, offline.
//!
//! The backend points the real `aws-sdk-bedrockruntime` client at this server (an endpoint
//! override), so the code path that talks to AWS is exactly the one exercised offline and in tests.
//!
//! A tour, one module per role:
//! - `router`: the four routes (`POST /model/{modelId}/converse`, `/converse-stream`, `/invoke`,
//!   `/invoke-with-response-stream`), each call taken through the roles below in order.
//! - `request`: what was asked. Model ids and bodies are validated as Bedrock validates them and
//!   reduced to a prompt.
//! - `body`: which bytes go back. Whole JSON bodies, event-stream frames and their headers.
//! - `pacing`: when they go. Latency, one chunk per interval, stalls, and the shutdown that ends them.
//! - `error`: [`BedrockError`], a failed call sent with Bedrock's status, `x-amzn-ErrorType` header and `{"message"}` body.
//! - `eventstream`: the binary `application/vnd.amazon.eventstream` framing, encoded byte-exact.
//! - `reply`: the deterministic answer to a prompt ([`reply_for`]), its chunks and token counts.
//! - [`faults`]: which calls fail (throttling, 500s, 503s, validation errors, cut answers, stalls,
//!   exceptions in the middle of a stream) under a [`FaultPlan`] that can be replaced while the
//!   emulator runs ([`Emulator::set_faults`]).
//! - `quota`: which calls are over the per-model requests- and tokens-per-minute [`Quota`] and
//!   are refused with a `ThrottlingException`, after the fault plan has had its say.
//!
//! Pacing: every answer waits [`EmulatorConfig::latency`] before its headers and
//! [`EmulatorConfig::body_latency`] after them, then streams one chunk every `1 / tokens_per_sec`
//! seconds (non-streaming answers wait as long as streaming them would take before their headers).
//! `tokens_per_sec = 0` sends everything at once without any timer.

mod body;
mod error;
mod eventstream;
pub mod faults;
mod pacing;
mod quota;
mod reply;
mod request;
mod router;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::{EmulatorStatus, FaultPlan, Quota};

pub use error::BedrockError;
pub use reply::reply_for;

use faults::Faults;
use pacing::Pace;
use quota::Quotas;
use router::Shared;

/// Default streaming pace: about what Claude Sonnet streams, slow enough to watch in the UI.
pub const DEFAULT_TOKENS_PER_SEC: u32 = 40;

/// How the emulator behaves: pacing, the initial fault plan and the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// Delay before the response headers of every answer (default 0).
    pub latency: Duration,
    /// Delay between the headers and the body's first byte (default 0).
    pub body_latency: Duration,
    /// Stream chunks per second; 0 sends the whole answer at once (default [`DEFAULT_TOKENS_PER_SEC`]).
    pub tokens_per_sec: u32,
    /// The fault plan in force from the first call (default none).
    pub faults: Option<FaultPlan>,
    /// Requests and tokens each model may use per minute (default 0 for both: no quota).
    pub quota: Quota,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            latency: Duration::ZERO,
            body_latency: Duration::ZERO,
            tokens_per_sec: DEFAULT_TOKENS_PER_SEC,
            faults: None,
            quota: Quota::default(),
        }
    }
}

impl EmulatorConfig {
    /// Unpaced, no latency, no faults: the fastest configuration, for tests and benchmarks.
    pub fn unpaced() -> Self {
        EmulatorConfig { tokens_per_sec: 0, ..Self::default() }
    }
}

/// A running-or-ready emulator; clones share the same state (fault plan, call count).
#[derive(Clone, Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl Emulator {
    /// Creates an emulator; nothing listens until [`Emulator::serve`] or the [`Emulator::router`] is served.
    pub fn new(config: EmulatorConfig) -> Self {
        let EmulatorConfig { latency, body_latency, tokens_per_sec, faults, quota } = config;
        let pace = Pace::new(latency, body_latency, tokens_per_sec);
        Emulator { shared: Arc::new(Shared { faults: Faults::new(faults), quotas: Quotas::new(quota), pace }) }
    }

    /// The Bedrock Runtime routes with this emulator's state applied, ready to serve or nest.
    pub fn router(&self) -> axum::Router {
        router::router(Arc::clone(&self.shared))
    }

    /// Replaces the fault plan; a new plan's "first N calls" count from the next call.
    pub fn set_faults(&self, plan: Option<FaultPlan>) {
        self.shared.faults.set(plan);
    }

    /// The fault plan and quota in force, the model calls received and those the quota refused.
    pub fn status(&self) -> EmulatorStatus {
        let Shared { faults, quotas, .. } = &*self.shared;
        EmulatorStatus { quota: quotas.quota(), throttled: quotas.throttled(), ..faults.status() }
    }

    /// Response bodies still being streamed (paced or stalled); 0 once every client is gone.
    pub fn open_streams(&self) -> usize {
        self.shared.pace.open_bodies()
    }

    /// Serves on `listener` until `shutdown` resolves; stalled and paced streams are ended then,
    /// so the graceful shutdown cannot hang on a client that never hangs up.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let shared = Arc::clone(&self.shared);
        let signal = async move {
            shutdown.await;
            shared.pace.shut_down();
        };
        axum::serve(crate::net::without_nagle(listener), self.router()).with_graceful_shutdown(signal).await
    }
}

#[cfg(test)]
mod tests;
