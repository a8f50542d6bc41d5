//! View state as pure reducers: each page's state, the [`Action`](run::RunAction)s that change
//! it, and `Reducible` impls with no side effects, so all of it is unit-tested natively.
//!
//! - [`run`]: one run's live picture (folded with `common`'s `RunDetail::apply`) and its logs.
//! - [`history`]: the recent-runs list, kept current by events from every run.
//! - [`form`]: the submit form, its validation and the idempotency key of a submission.

pub mod form;
pub mod history;
pub mod run;

/// Where a request-backed piece of the page stands; rendered by `match`, so a page can never
/// show data and a spinner at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load {
    /// The request is in flight.
    Loading,
    /// The data is here.
    Ready,
    /// The server has no such thing.
    NotFound,
    /// The request failed, with a message for people.
    Failed(String),
}

/// The server's `GET /api/health` answer, shared with every page through a context.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthState {
    /// Not answered yet.
    Loading,
    /// The server's health, defaults and limits.
    Ready(std::rc::Rc<common::Health>),
    /// The server could not be reached.
    Failed(String),
}

impl HealthState {
    /// The health answer, once it arrived.
    pub fn health(&self) -> Option<&common::Health> {
        match self {
            HealthState::Ready(health) => Some(health),
            _ => None,
        }
    }

    /// Whether the server runs on the built-in Bedrock emulator.
    pub fn is_emulator(&self) -> bool {
        self.health().is_some_and(|h| h.bedrock.backend == common::BedrockBackend::Emulator)
    }
}
