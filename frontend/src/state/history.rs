//! The recent-runs list: a page of [`RunSummary`]s kept current by every run's events.

use std::rc::Rc;

use common::{Event, EventKind, RunDetail, RunState, RunSummary};
use yew::Reducible;

use super::Load;

/// Runs fetched per page of the history.
pub const PAGE_SIZE: usize = 20;

/// The history list and its filter.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Whether the first page has loaded.
    pub load: Load,
    /// Runs, newest first.
    pub runs: Vec<RunSummary>,
    /// Only runs in this state are listed.
    pub filter: Option<RunState>,
    /// Whether the server may have older runs than the last one listed.
    pub has_more: bool,
    /// Whether an older page is being fetched.
    pub loading_more: bool,
}

impl Default for History {
    fn default() -> Self {
        History { load: Load::Loading, runs: Vec::new(), filter: None, has_more: false, loading_more: false }
    }
}

/// What can happen to the history list.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryAction {
    /// A first page was fetched for `filter` (answers for a filter no longer chosen are dropped).
    Loaded {
        /// The filter the request was made with.
        filter: Option<RunState>,
        /// The runs, newest first.
        runs: Vec<RunSummary>,
    },
    /// An older page arrived ("load more").
    MoreLoaded {
        /// The filter the request was made with.
        filter: Option<RunState>,
        /// The runs, newest first.
        runs: Vec<RunSummary>,
    },
    /// Fetching older runs started.
    LoadingMore,
    /// A fetch failed, with a message for people.
    Failed(String),
    /// The reader picked a state filter; the list reloads.
    SetFilter(Option<RunState>),
    /// An event of any run arrived.
    Event(Event),
}

impl History {
    /// The cursor for the next older page: the oldest run listed.
    pub fn cursor(&self) -> Option<common::RunId> {
        self.runs.last().map(|run| run.id)
    }

    fn matches(&self, state: RunState) -> bool {
        self.filter.is_none_or(|wanted| wanted == state)
    }

    fn insert_newest_first(&mut self, run: RunSummary) {
        if self.runs.iter().any(|have| have.id == run.id) {
            return;
        }
        let at = self.runs.iter().position(|have| have.created_at < run.created_at).unwrap_or(self.runs.len());
        // A run older than the whole loaded page belongs to a page not fetched yet.
        if at == self.runs.len() && self.has_more {
            return;
        }
        self.runs.insert(at, run);
    }

    fn apply_event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::RunCreated { .. } => {
                if self.load == Load::Ready
                    && self.matches(RunState::Pending)
                    && let Some(detail) = RunDetail::from_created(event)
                {
                    self.insert_newest_first(detail.summary());
                }
            }
            EventKind::RunState { state, error } => {
                let Some(index) = self.runs.iter().position(|run| run.id == event.run_id) else {
                    return;
                };
                let run = &mut self.runs[index];
                // Same rule as the run fold: a terminal state never changes.
                if run.state.is_terminal() {
                    return;
                }
                run.state = *state;
                if *state == RunState::Running {
                    run.started_at.get_or_insert(event.ts);
                }
                if state.is_terminal() {
                    run.finished_at = Some(event.ts);
                    run.error.clone_from(error);
                }
                if !self.matches(*state) {
                    self.runs.remove(index);
                }
            }
            EventKind::ModelResult { usage: Some(usage), .. } => {
                if let Some(run) = self.runs.iter_mut().find(|run| run.id == event.run_id) {
                    run.usage = Some(*usage);
                }
            }
            _ => {}
        }
    }
}

impl Reducible for History {
    type Action = HistoryAction;

    fn reduce(self: Rc<Self>, action: HistoryAction) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            HistoryAction::Loaded { filter, runs } => {
                if filter != next.filter {
                    return self;
                }
                next.has_more = runs.len() >= PAGE_SIZE;
                next.runs = runs;
                next.load = Load::Ready;
                next.loading_more = false;
            }
            HistoryAction::MoreLoaded { filter, runs } => {
                if filter != next.filter {
                    return self;
                }
                next.has_more = runs.len() >= PAGE_SIZE;
                next.loading_more = false;
                for run in runs {
                    if !next.runs.iter().any(|have| have.id == run.id) {
                        next.runs.push(run);
                    }
                }
            }
            HistoryAction::LoadingMore => next.loading_more = true,
            HistoryAction::Failed(message) => {
                next.loading_more = false;
                // A failed refresh keeps the list it has; only an empty page shows the error.
                if next.load != Load::Ready {
                    next.load = Load::Failed(message);
                }
            }
            HistoryAction::SetFilter(filter) => {
                if filter == next.filter {
                    return self;
                }
                next = History { filter, ..History::default() };
            }
            HistoryAction::Event(event) => next.apply_event(&event),
        }
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use common::{RunId, Usage};
    use uuid::Uuid;

    use super::*;

    fn id(n: u128) -> RunId {
        RunId(Uuid::from_u128(n))
    }

    fn ts(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap_or_default()
    }

    fn summary(n: u128, state: RunState) -> RunSummary {
        RunSummary {
            id: id(n),
            state,
            created_at: ts(n as i64),
            started_at: None,
            finished_at: None,
            model_id: "m".into(),
            prompt_preview: format!("prompt {n}"),
            usage: None,
            error: None,
        }
    }

    fn ev(n: u128, seq: u64, secs: i64, kind: EventKind) -> Event {
        Event { run_id: id(n), seq, ts: ts(secs), kind }
    }

    fn created(n: u128) -> Event {
        ev(
            n,
            1,
            n as i64,
            EventKind::RunCreated {
                prompt: format!("prompt   {n}"),
                model_id: "m".into(),
                system: None,
                max_tokens: 1,
                temperature: None,
                max_attempts: 1,
            },
        )
    }

    fn reduce(state: History, actions: impl IntoIterator<Item = HistoryAction>) -> History {
        let mut state = Rc::new(state);
        for action in actions {
            state = state.reduce(action);
        }
        (*state).clone()
    }

    fn ids(history: &History) -> Vec<RunId> {
        history.runs.iter().map(|r| r.id).collect()
    }

    #[test]
    fn new_runs_appear_on_top_and_update_live() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::Loaded { filter: None, runs: vec![summary(2, RunState::Completed)] },
                HistoryAction::Event(created(5)),
                HistoryAction::Event(created(5)),
                HistoryAction::Event(ev(5, 2, 6, EventKind::RunState { state: RunState::Running, error: None })),
                HistoryAction::Event(ev(
                    5,
                    9,
                    7,
                    EventKind::ModelResult {
                        usage: Some(Usage { input_tokens: 1, output_tokens: 2 }),
                        stop_reason: None,
                        latency_ms: None,
                    },
                )),
                HistoryAction::Event(ev(5, 10, 8, EventKind::RunState { state: RunState::Completed, error: None })),
            ],
        );
        assert_eq!(ids(&history), [id(5), id(2)]);
        let run = &history.runs[0];
        assert_eq!(run.state, RunState::Completed);
        assert_eq!(run.prompt_preview, "prompt 5");
        assert_eq!(run.started_at, Some(ts(6)));
        assert_eq!(run.finished_at, Some(ts(8)));
        assert_eq!(run.usage.map(|u| u.output_tokens), Some(2));
    }

    #[test]
    fn a_filtered_list_drops_runs_that_leave_the_state() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::SetFilter(Some(RunState::Running)),
                HistoryAction::Loaded { filter: None, runs: vec![summary(9, RunState::Completed)] },
                HistoryAction::Loaded {
                    filter: Some(RunState::Running),
                    runs: vec![summary(3, RunState::Running), summary(2, RunState::Running)],
                },
                HistoryAction::Event(created(7)),
                HistoryAction::Event(ev(3, 5, 9, EventKind::RunState { state: RunState::Failed, error: None })),
            ],
        );
        // The stale unfiltered answer was ignored, the new pending run is not "Running" yet.
        assert_eq!(ids(&history), [id(2)]);
    }

    #[test]
    fn terminal_rows_never_change_state() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::Loaded { filter: None, runs: vec![summary(1, RunState::Cancelled)] },
                HistoryAction::Event(ev(1, 4, 2, EventKind::RunState { state: RunState::Completed, error: None })),
            ],
        );
        assert_eq!(history.runs[0].state, RunState::Cancelled);
    }

    #[test]
    fn paging_appends_older_runs_once() {
        let page: Vec<RunSummary> = (0..PAGE_SIZE as u128).rev().map(|n| summary(n + 100, RunState::Completed)).collect();
        let history = reduce(
            History::default(),
            [
                HistoryAction::Loaded { filter: None, runs: page },
                HistoryAction::LoadingMore,
                HistoryAction::MoreLoaded {
                    filter: None,
                    runs: vec![summary(100, RunState::Completed), summary(50, RunState::Completed)],
                },
            ],
        );
        assert_eq!(history.runs.len(), PAGE_SIZE + 1);
        assert_eq!(history.cursor(), Some(id(50)));
        assert!(!history.has_more);
        assert!(!history.loading_more);
    }

    #[test]
    fn a_failed_refresh_keeps_the_list() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::Loaded { filter: None, runs: vec![summary(1, RunState::Completed)] },
                HistoryAction::Failed("offline".into()),
            ],
        );
        assert_eq!(history.load, Load::Ready);
        let empty = reduce(History::default(), [HistoryAction::Failed("offline".into())]);
        assert_eq!(empty.load, Load::Failed("offline".into()));
    }
}
