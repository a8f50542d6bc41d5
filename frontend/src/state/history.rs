//! The recent-runs list: a page of [`RunSummary`]s kept current by every run's events.

use std::rc::Rc;

use common::{Event, EventKind, RunDetail, RunId, RunState, RunSummary};
use yew::Reducible;

use super::load::Load;

/// Runs fetched per page of the history.
pub const PAGE_SIZE: usize = 20;

/// The history list and its filter.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The runs, once a first page arrived; a failure before that carries a message for people.
    pub listing: Load<Listing, String>,
    /// Only runs in this state are listed.
    pub filter: Option<RunState>,
    /// Which first-page fetch is current; answers to older ones are dropped.
    pub generation: u32,
    /// Events seen while the current first-page fetch is in flight. The page may have been read
    /// before or after each of them, so they are applied again on top of it (harmless, as
    /// applying is idempotent and terminal states never change), and none is lost.
    buffer: Option<Vec<Event>>,
}

/// The runs on screen and what paging knows about older ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// Newest first.
    pub runs: Vec<RunSummary>,
    /// Whether the server may have older runs than the last one listed.
    pub has_more: bool,
    /// Whether an older page is being fetched.
    pub loading_more: bool,
}

/// Most events kept while a fetch is in flight; a busier server is resynced by the next fetch.
const MAX_BUFFERED: usize = 2_000;

impl Default for History {
    fn default() -> Self {
        History { listing: Load::Loading, filter: None, generation: 0, buffer: Some(Vec::new()) }
    }
}

/// What can happen to the history list.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryAction {
    /// Fetch the first page again (after a reconnect, or on "Try again").
    Refresh,
    /// A first page arrived for fetch `generation`. An older fetch's answer is shown only while
    /// nothing is, and one for another filter never.
    Loaded {
        /// The [`History::generation`] the request was made for.
        generation: u32,
        /// The filter the request was made with.
        filter: Option<RunState>,
        /// Newest first.
        runs: Vec<RunSummary>,
    },
    /// An older page arrived ("load more").
    MoreLoaded {
        /// The filter the request was made with.
        filter: Option<RunState>,
        /// Newest first.
        runs: Vec<RunSummary>,
    },
    /// Fetching older runs started.
    LoadingMore,
    /// A fetch failed, with a message for people.
    Failed(String),
    /// The reader picked a state filter; the list reloads.
    SetFilter(Option<RunState>),
    /// An event of any run arrived.
    Event(Box<Event>),
}

impl History {
    /// The listed runs; none until a first page arrived.
    pub fn runs(&self) -> &[RunSummary] {
        self.listing.ready().map_or(&[], |listing| &listing.runs)
    }

    /// The cursor for the next older page: the oldest run listed.
    pub fn cursor(&self) -> Option<RunId> {
        self.runs().last().map(|run| run.id)
    }

    fn apply_event(&mut self, event: &Event) {
        // Before a first page there is nothing to update: that page is read after the event.
        let filter = self.filter;
        if let Some(listing) = self.listing.ready_mut() {
            listing.apply_event(event, filter);
        }
    }
}

impl Listing {
    fn new(runs: Vec<RunSummary>) -> Listing {
        Listing { has_more: runs.len() >= PAGE_SIZE, runs, loading_more: false }
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

    fn apply_event(&mut self, event: &Event, filter: Option<RunState>) {
        let listed = |state: RunState| filter.is_none_or(|wanted| wanted == state);
        match &event.kind {
            EventKind::RunCreated { .. } => {
                if listed(RunState::Pending)
                    && let Some(detail) = RunDetail::from_created(event)
                {
                    self.insert_newest_first(detail.summary());
                }
            }
            EventKind::RunState { state, error } => {
                let Some(index) = self.runs.iter().position(|run| run.id == event.run_id) else {
                    return;
                };
                if !self.runs[index].apply_run_state(*state, error, event.ts) {
                    return;
                }
                if !listed(*state) {
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
            HistoryAction::Refresh => {
                next.generation = next.generation.wrapping_add(1);
                next.buffer.get_or_insert_with(Vec::new);
            }
            HistoryAction::Loaded { generation, filter, runs } => {
                let current = generation == next.generation;
                if filter != next.filter || (!current && next.listing.ready().is_some()) {
                    return self;
                }
                next.listing = Load::Ready(Listing::new(runs));
                // A newer fetch is still coming when this one is not current: keep the buffer for it.
                let events = if current { next.buffer.take() } else { next.buffer.clone() };
                for event in events.unwrap_or_default() {
                    next.apply_event(&event);
                }
            }
            HistoryAction::MoreLoaded { filter, runs } => {
                let Some(listing) = next.listing.ready_mut().filter(|_| filter == self.filter) else {
                    return self;
                };
                listing.has_more = runs.len() >= PAGE_SIZE;
                listing.loading_more = false;
                for run in runs {
                    if !listing.runs.iter().any(|have| have.id == run.id) {
                        listing.runs.push(run);
                    }
                }
            }
            HistoryAction::LoadingMore => {
                if let Some(listing) = next.listing.ready_mut() {
                    listing.loading_more = true;
                }
            }
            HistoryAction::Failed(message) => {
                next.buffer = None;
                match next.listing.ready_mut() {
                    // A failed refresh or "load more" keeps the list it has.
                    Some(listing) => listing.loading_more = false,
                    None => next.listing = Load::Failed(message),
                }
            }
            HistoryAction::SetFilter(filter) => {
                if filter == next.filter {
                    return self;
                }
                next = History { filter, generation: next.generation.wrapping_add(1), ..History::default() };
            }
            HistoryAction::Event(event) => {
                next.apply_event(&event);
                if let Some(buffer) = &mut next.buffer
                    && buffer.len() < MAX_BUFFERED
                {
                    buffer.push(*event);
                }
            }
        }
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use common::Usage;
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
                replay_of: None,
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
        history.runs().iter().map(|r| r.id).collect()
    }

    fn listing(history: &History) -> &Listing {
        history.listing.ready().unwrap_or_else(|| panic!("no first page: {:?}", history.listing))
    }

    #[test]
    fn new_runs_appear_on_top_and_update_live() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::Loaded { generation: 0, filter: None, runs: vec![summary(2, RunState::Completed)] },
                HistoryAction::Event(Box::new(created(5))),
                HistoryAction::Event(Box::new(created(5))),
                HistoryAction::Event(Box::new(ev(
                    5,
                    2,
                    6,
                    EventKind::RunState { state: RunState::Running, error: None },
                ))),
                HistoryAction::Event(Box::new(ev(
                    5,
                    9,
                    7,
                    EventKind::ModelResult {
                        usage: Some(Usage { input_tokens: 1, output_tokens: 2 }),
                        stop_reason: None,
                        latency_ms: None,
                    },
                ))),
                HistoryAction::Event(Box::new(ev(
                    5,
                    10,
                    8,
                    EventKind::RunState { state: RunState::Completed, error: None },
                ))),
            ],
        );
        assert_eq!(ids(&history), [id(5), id(2)]);
        let run = &history.runs()[0];
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
                HistoryAction::Loaded { generation: 0, filter: None, runs: vec![summary(9, RunState::Completed)] },
                HistoryAction::Loaded {
                    generation: 1,
                    filter: Some(RunState::Running),
                    runs: vec![summary(3, RunState::Running), summary(2, RunState::Running)],
                },
                HistoryAction::Event(Box::new(created(7))),
                HistoryAction::Event(Box::new(ev(
                    3,
                    5,
                    9,
                    EventKind::RunState { state: RunState::Failed, error: None },
                ))),
            ],
        );
        // The stale unfiltered answer was ignored, the new pending run is not "Running" yet.
        assert_eq!(ids(&history), [id(2)]);
    }

    #[test]
    fn events_seen_while_fetching_are_applied_on_top_of_the_page() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::Event(Box::new(created(8))),
                HistoryAction::Event(Box::new(ev(
                    2,
                    3,
                    9,
                    EventKind::RunState { state: RunState::Completed, error: None },
                ))),
                // The page was read before both events: run 8 missing, run 2 still running.
                HistoryAction::Loaded { generation: 0, filter: None, runs: vec![summary(2, RunState::Running)] },
                HistoryAction::Refresh,
                HistoryAction::Loaded { generation: 0, filter: None, runs: vec![] },
            ],
        );
        assert_eq!(ids(&history), [id(8), id(2)]);
        assert_eq!(history.runs()[1].state, RunState::Completed);
        assert_eq!(history.generation, 1);
    }

    #[test]
    fn an_outdated_first_page_shows_until_the_current_one_arrives() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::Refresh,
                HistoryAction::Event(Box::new(created(8))),
                HistoryAction::Loaded { generation: 0, filter: None, runs: vec![summary(2, RunState::Running)] },
            ],
        );
        assert_eq!(ids(&history), [id(8), id(2)]);
        let history = reduce(
            history,
            [HistoryAction::Loaded { generation: 1, filter: None, runs: vec![summary(8, RunState::Pending)] }],
        );
        assert_eq!(ids(&history), [id(8)]);
    }

    #[test]
    fn terminal_rows_never_change_state() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::Loaded { generation: 0, filter: None, runs: vec![summary(1, RunState::Cancelled)] },
                HistoryAction::Event(Box::new(ev(
                    1,
                    4,
                    2,
                    EventKind::RunState { state: RunState::Completed, error: None },
                ))),
            ],
        );
        assert_eq!(history.runs()[0].state, RunState::Cancelled);
    }

    #[test]
    fn paging_appends_older_runs_once() {
        let page: Vec<RunSummary> =
            (0..PAGE_SIZE as u128).rev().map(|n| summary(n + 100, RunState::Completed)).collect();
        let history = reduce(
            History::default(),
            [
                HistoryAction::Loaded { generation: 0, filter: None, runs: page },
                HistoryAction::LoadingMore,
                HistoryAction::MoreLoaded {
                    filter: None,
                    runs: vec![summary(100, RunState::Completed), summary(50, RunState::Completed)],
                },
            ],
        );
        let listing = listing(&history);
        assert_eq!(listing.runs.len(), PAGE_SIZE + 1);
        assert_eq!(history.cursor(), Some(id(50)));
        assert!(!listing.has_more);
        assert!(!listing.loading_more);
    }

    #[test]
    fn a_failed_refresh_keeps_the_list() {
        let history = reduce(
            History::default(),
            [
                HistoryAction::Loaded { generation: 0, filter: None, runs: vec![summary(1, RunState::Completed)] },
                HistoryAction::Failed("offline".into()),
            ],
        );
        assert_eq!(ids(&history), [id(1)]);
        let empty = reduce(History::default(), [HistoryAction::Failed("offline".into())]);
        assert_eq!(empty.listing, Load::Failed("offline".into()));
    }
}
