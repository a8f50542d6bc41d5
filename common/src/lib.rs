//! The wire contract between the backend and the frontend.
//!
//! Everything that crosses HTTP or the WebSocket is defined here once, as serde types:
//! run and task states ([`RunState`], [`TaskState`]), the REST bodies ([`SubmitRun`],
//! [`RunSummary`], [`RunDetail`], [`Health`]), the live events ([`Event`]) and the error body
//! ([`ErrorBody`]). [`RunDetail::fold`] folds a run's events into its current picture; the backend uses
//! it to answer `GET /api/runs/{id}` and the frontend uses the same fold to render a run live,
//! so the two can never disagree about what an event means.

mod batch;
mod catalog;
mod event;
mod id;
mod run;
pub mod time;
mod view;

pub use batch::{BatchCounts, BatchItem, BatchSummary, ItemState, ModelPace, SubmitBatch};
pub use catalog::{Catalog, CatalogModel, CatalogSource, Lifecycle, LifecycleDates, PROFILE_PREFIXES, Price, Refusal};
pub use event::{AttemptOutcome, Event, EventKind, LogLevel};
pub use id::{BatchId, RunId};
pub use run::{
    ApiLimits, AttemptView, BedrockBackend, BedrockInfo, ClusterHealth, Defaults, EmulatorStatus, ErrorBody, FaultKind,
    FaultPlan, Health, LogEntry, ParseStateError, PeerHealth, Quota, ReplayRun, RunDetail, RunState, RunSummary,
    RunTotals, SNIPPET_MARK_END, SNIPPET_MARK_START, StopReason, SubmitRun, TaskName, TaskState, TaskView, Usage,
};

/// The words of a search (`GET /api/runs?q=`): runs of letters and digits, lower-cased;
/// everything else separates them, so no input is query syntax to either store, and the page
/// marks in a listed prompt the very words the server matched.
pub fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Length, in characters, of the prompt preview shown in run lists.
pub const PROMPT_PREVIEW_CHARS: usize = 120;

/// Returns the first [`PROMPT_PREVIEW_CHARS`] characters of a prompt on one line.
pub fn prompt_preview(prompt: &str) -> String {
    let mut preview: String = prompt
        .split_whitespace()
        .flat_map(|word| word.chars().chain(std::iter::once(' ')))
        .take(PROMPT_PREVIEW_CHARS)
        .collect();
    let trimmed_len = preview.trim_end().len();
    preview.truncate(trimmed_len);
    if prompt.split_whitespace().map(|w| w.chars().count() + 1).sum::<usize>() > PROMPT_PREVIEW_CHARS + 1 {
        preview.push('…');
    }
    preview
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_collapses_whitespace_and_marks_truncation() {
        assert_eq!(prompt_preview("  hello \n\n world "), "hello world");
        let long = "word ".repeat(100);
        let preview = prompt_preview(&long);
        assert!(preview.ends_with('…'));
        assert!(preview.chars().count() <= PROMPT_PREVIEW_CHARS + 1);
    }
}
