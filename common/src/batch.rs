//! Batches: many prompts with one set of settings, each item an ordinary run, started by the
//! server's scheduler at the pace the model's quota allows.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{BatchId, RunId, RunState};

/// `POST /api/batches`: either `prompts`, or a `template` with `{{name}}` placeholders and the
/// `rows` of values to fill it with; the settings apply to every item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// One map of placeholder names to values per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<BTreeMap<String, String>>>,
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

/// Where one item of a batch stands: `Queued` until the scheduler starts its run, then its
/// run's state; `Cancelled` also for an item cancelled before it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ItemState {
    Queued,
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Crashed,
}

impl ItemState {
    pub const ALL: [ItemState; 7] = [
        ItemState::Queued,
        ItemState::Pending,
        ItemState::Running,
        ItemState::Completed,
        ItemState::Failed,
        ItemState::Cancelled,
        ItemState::Crashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Queued => "Queued",
            ItemState::Pending => "Pending",
            ItemState::Running => "Running",
            ItemState::Completed => "Completed",
            ItemState::Failed => "Failed",
            ItemState::Cancelled => "Cancelled",
            ItemState::Crashed => "Crashed",
        }
    }

    /// Whether nothing more will happen to the item.
    pub fn is_final(self) -> bool {
        matches!(self, ItemState::Completed | ItemState::Failed | ItemState::Cancelled | ItemState::Crashed)
    }
}

impl From<RunState> for ItemState {
    fn from(state: RunState) -> ItemState {
        match state {
            RunState::Pending => ItemState::Pending,
            RunState::Running => ItemState::Running,
            RunState::Completed => ItemState::Completed,
            RunState::Failed => ItemState::Failed,
            RunState::Cancelled => ItemState::Cancelled,
            RunState::Crashed => ItemState::Crashed,
        }
    }
}

impl FromStr for ItemState {
    type Err = crate::ParseStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ItemState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| crate::ParseStateError(s.to_owned()))
    }
}

/// How many items of a batch are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchCounts {
    pub queued: u64,
    pub pending: u64,
    pub running: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub crashed: u64,
}

impl BatchCounts {
    pub fn add(&mut self, state: ItemState, n: u64) {
        let slot = match state {
            ItemState::Queued => &mut self.queued,
            ItemState::Pending => &mut self.pending,
            ItemState::Running => &mut self.running,
            ItemState::Completed => &mut self.completed,
            ItemState::Failed => &mut self.failed,
            ItemState::Cancelled => &mut self.cancelled,
            ItemState::Crashed => &mut self.crashed,
        };
        *slot += n;
    }

    /// Items nothing more will happen to.
    pub fn finished(&self) -> u64 {
        self.completed + self.failed + self.cancelled + self.crashed
    }

    pub fn total(&self) -> u64 {
        self.finished() + self.queued + self.pending + self.running
    }
}

/// A batch as listed and as its page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchSummary {
    pub id: BatchId,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub created_at: DateTime<Utc>,
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub max_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Items in all.
    pub total: u64,
    pub counts: BatchCounts,
    /// Whether someone cancelled it: its queued items never start.
    pub cancelled: bool,
}

/// One item of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchItem {
    /// 0-based position in the submitted list.
    pub index: u32,
    pub prompt: String,
    /// The template's values for this item, when the batch came from a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<BTreeMap<String, String>>,
    pub state: ItemState,
    /// Its run, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
}

/// How a model's batch calls are paced now, on the server that answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelPace {
    /// Calls it may have in flight: the adaptive limit.
    pub limit: usize,
    /// Batch runs of it in flight.
    pub in_flight: usize,
    /// Throttled attempts seen since the server started.
    pub throttles: u64,
    /// Call attempts a minute may start, learnt from the first throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
}
