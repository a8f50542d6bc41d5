//! The server's `GET /api/health` answer, fetched once by the app and shared with every page
//! through a context.

use std::rc::Rc;

use common::BedrockBackend;
use yew::Callback;

use crate::api::Health;

/// What the app knows about the server: which Bedrock answers, the form defaults, the limits.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthState {
    /// Not answered yet.
    Loading,
    /// The answer; behind an `Rc` because every context consumer clones the state on each render.
    Ready(Rc<Health>),
    /// The server could not be reached, with a message for people.
    Failed(String),
}

/// Asks the app to read `/api/health` again, e.g. once the server is back after a lost
/// connection; shared through a context beside the [`HealthState`].
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReload(pub Callback<()>);

impl HealthState {
    /// The health answer, once it arrived.
    pub fn health(&self) -> Option<&Health> {
        match self {
            HealthState::Ready(health) => Some(health),
            HealthState::Loading | HealthState::Failed(_) => None,
        }
    }

    /// Whether the server runs on the built-in Bedrock emulator (the fault panel is shown then).
    pub fn is_emulator(&self) -> bool {
        self.health().is_some_and(|h| h.bedrock.backend == BedrockBackend::Emulator)
    }
}
