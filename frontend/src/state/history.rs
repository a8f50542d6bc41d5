//! A page of the history: [`RunSummary`]s for a [`HistoryQuery`], kept current by every run's
//! events.

use std::rc::Rc;

use common::{Event, EventKind, RunDetail, RunSummary};
use yew::Reducible;

use super::history_query::{Cursor, HistoryQuery};
use super::load::Load;

/// Runs per page of the history page: a screenful of compact rows.
pub const PAGE_SIZE: usize = 50;
/// Runs in the home page's short list of recent ones.
pub const RECENT: usize = 10;

/// One page of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub query: HistoryQuery,
    /// Most runs asked for; a full page means more may lie beyond it.
    pub page_size: usize,
    /// The runs, once the page arrived; a failure before that carries a message for people.
    pub listing: Load<Listing, String>,
    /// Which fetch is current; answers to older ones are dropped.
    pub generation: u32,
    /// Events seen while the current fetch is in flight. The page may have been read before or
    /// after each of them, so they are applied again on top of it (harmless, as applying is
    /// idempotent and terminal states never change), and none is lost.
    buffer: Option<Vec<Event>>,
}

/// The runs on screen and whether there are pages on either side.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// Newest first.
    pub runs: Vec<RunSummary>,
    /// Whether the server may have older runs than the last one listed.
    pub older: bool,
    /// Whether the server has newer runs than the first one listed.
    pub newer: bool,
}

/// Most events kept while a fetch is in flight; a busier server is resynced by the next fetch.
const MAX_BUFFERED: usize = 2_000;

impl History {
    pub fn new(query: HistoryQuery, page_size: usize) -> History {
        History { query, page_size, listing: Load::Loading, generation: 0, buffer: Some(Vec::new()) }
    }

    /// The listed runs; none until the page arrived.
    pub fn runs(&self) -> &[RunSummary] {
        self.listing.ready().map_or(&[], |listing| &listing.runs)
    }

    /// The next older page, when there may be one.
    pub fn older(&self) -> Option<HistoryQuery> {
        let listing = self.listing.ready().filter(|listing| listing.older)?;
        Some(self.query.at(Cursor::Before(listing.runs.last()?.id)))
    }

    /// The next newer page, when there is one; the newest page itself once within reach.
    pub fn newer(&self) -> Option<HistoryQuery> {
        let listing = self.listing.ready().filter(|listing| listing.newer)?;
        Some(self.query.at(listing.runs.first().map_or(Cursor::Newest, |run| Cursor::After(run.id))))
    }

    fn apply_event(&mut self, event: &Event) {
        // Before the page arrives there is nothing to update: it is read after the event.
        let query = &self.query;
        if let Some(listing) = self.listing.ready_mut() {
            listing.apply_event(event, query);
        }
    }
}

impl Listing {
    fn new(runs: Vec<RunSummary>, cursor: Cursor, page_size: usize) -> Listing {
        let full = runs.len() >= page_size;
        let (older, newer) = match cursor {
            Cursor::Newest => (full, false),
            Cursor::Before(_) => (full, true),
            Cursor::After(_) => (true, full),
        };
        Listing { runs, older, newer }
    }

    fn apply_event(&mut self, event: &Event, query: &HistoryQuery) {
        match &event.kind {
            EventKind::RunCreated { .. } => {
                let Some(run) = RunDetail::from_created(event).map(|detail| detail.summary()) else { return };
                if query.takes_new(&run) && !self.runs.iter().any(|have| have.id == run.id) {
                    let at = self.runs.iter().position(|have| have.created_at < run.created_at);
                    self.runs.insert(at.unwrap_or(self.runs.len()), run);
                }
            }
            EventKind::RunState { state, error } => {
                let Some(index) = self.runs.iter().position(|run| run.id == event.run_id) else {
                    return;
                };
                if self.runs[index].apply_run_state(*state, error, event.ts) && !query.keeps(*state) {
                    self.runs.remove(index);
                }
            }
            EventKind::TaskState { attempt, .. } => {
                if let Some(run) = self.runs.iter_mut().find(|run| run.id == event.run_id) {
                    // Exact while one task retries, as runs do; the next fetch counts both.
                    run.retries = run.retries.max(attempt.saturating_sub(1));
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

/// What can happen to a page of the history.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryAction {
    /// Fetch the page again (after a reconnect, or on "Try again").
    Refresh,
    /// The page arrived for fetch `generation`. An older fetch's answer is shown only while
    /// nothing is.
    Loaded {
        /// The [`History::generation`] the request was made for.
        generation: u32,
        /// Newest first.
        runs: Vec<RunSummary>,
    },
    /// A fetch failed, with a message for people.
    Failed(String),
    /// An event of any run arrived.
    Event(Box<Event>),
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
            HistoryAction::Loaded { generation, runs } => {
                let current = generation == next.generation;
                if !current && next.listing.ready().is_some() {
                    return self;
                }
                next.listing = Load::Ready(Listing::new(runs, next.query.cursor, next.page_size));
                // A newer fetch is still coming when this one is not current: keep the buffer for it.
                let events = if current { next.buffer.take() } else { next.buffer.clone() };
                for event in events.unwrap_or_default() {
                    next.apply_event(&event);
                }
            }
            HistoryAction::Failed(message) => {
                next.buffer = None;
                // A failed refresh keeps the list it has.
                if next.listing.ready().is_none() {
                    next.listing = Load::Failed(message);
                }
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
    use common::{RunId, RunState};

    use crate::state::history_query::HistoryFilter;

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
            retries: 0,
            batch_id: None,
            cost_usd: None,
            snippet: None,
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
                batch_id: None,
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

    #[test]
    fn new_runs_appear_on_top_and_update_live() {
        let history = reduce(
            History::new(HistoryQuery::default(), 20),
            [
                HistoryAction::Loaded { generation: 0, runs: vec![summary(2, RunState::Completed)] },
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
    fn a_filtered_list_drops_runs_that_leave_the_state_and_takes_only_matching_new_ones() {
        let running = HistoryQuery {
            filter: HistoryFilter { state: Some(RunState::Running), ..Default::default() },
            cursor: Cursor::Newest,
        };
        let history = reduce(
            History::new(running, 20),
            [
                HistoryAction::Loaded {
                    generation: 0,
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
        // The new run is pending, not running; run 3 failed.
        assert_eq!(ids(&history), [id(2)]);
    }

    #[test]
    fn events_seen_while_fetching_are_applied_on_top_of_the_page() {
        let history = reduce(
            History::new(HistoryQuery::default(), 20),
            [
                HistoryAction::Event(Box::new(created(8))),
                HistoryAction::Event(Box::new(ev(
                    2,
                    3,
                    9,
                    EventKind::RunState { state: RunState::Completed, error: None },
                ))),
                // The page was read before both events: run 8 missing, run 2 still running.
                HistoryAction::Loaded { generation: 0, runs: vec![summary(2, RunState::Running)] },
                HistoryAction::Refresh,
                HistoryAction::Loaded { generation: 0, runs: vec![] },
            ],
        );
        assert_eq!(ids(&history), [id(8), id(2)]);
        assert_eq!(history.runs()[1].state, RunState::Completed);
        assert_eq!(history.generation, 1);
    }

    #[test]
    fn an_outdated_first_page_shows_until_the_current_one_arrives() {
        let history = reduce(
            History::new(HistoryQuery::default(), 20),
            [
                HistoryAction::Refresh,
                HistoryAction::Event(Box::new(created(8))),
                HistoryAction::Loaded { generation: 0, runs: vec![summary(2, RunState::Running)] },
            ],
        );
        assert_eq!(ids(&history), [id(8), id(2)]);
        let history =
            reduce(history, [HistoryAction::Loaded { generation: 1, runs: vec![summary(8, RunState::Pending)] }]);
        assert_eq!(ids(&history), [id(8)]);
    }

    #[test]
    fn terminal_rows_never_change_state() {
        let history = reduce(
            History::new(HistoryQuery::default(), 20),
            [
                HistoryAction::Loaded { generation: 0, runs: vec![summary(1, RunState::Cancelled)] },
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

    fn page(cursor: Cursor, runs: impl IntoIterator<Item = u128>) -> History {
        let runs = runs.into_iter().map(|n| summary(n, RunState::Completed)).collect();
        reduce(History::new(HistoryQuery::default().at(cursor), 3), [HistoryAction::Loaded { generation: 0, runs }])
    }

    #[test]
    fn a_full_newest_page_links_to_older_runs_only() {
        let newest = page(Cursor::Newest, [9, 8, 7]);
        assert_eq!(newest.older(), Some(HistoryQuery::default().at(Cursor::Before(id(7)))));
        assert_eq!(newest.newer(), None);
        assert_eq!(page(Cursor::Newest, [9, 8]).older(), None, "a short page is the last");
    }

    #[test]
    fn an_older_page_links_both_ways_and_ignores_new_runs() {
        let older = reduce(page(Cursor::Before(id(7)), [6, 5, 4]), [HistoryAction::Event(Box::new(created(20)))]);
        assert_eq!(ids(&older), [id(6), id(5), id(4)]);
        assert_eq!(older.older(), Some(HistoryQuery::default().at(Cursor::Before(id(4)))));
        assert_eq!(older.newer(), Some(HistoryQuery::default().at(Cursor::After(id(6)))));
    }

    #[test]
    fn a_newer_page_short_of_full_reaches_the_top() {
        let back = page(Cursor::After(id(6)), [8, 7]);
        assert_eq!(back.newer(), None);
        assert_eq!(back.older(), Some(HistoryQuery::default().at(Cursor::Before(id(7)))));
        assert_eq!(
            page(Cursor::After(id(3)), [6, 5, 4]).newer(),
            Some(HistoryQuery::default().at(Cursor::After(id(6))))
        );
    }

    #[test]
    fn a_listed_run_counts_its_retries_live() {
        let retried = |attempt| {
            HistoryAction::Event(Box::new(ev(
                9,
                u64::from(attempt) + 3,
                10,
                EventKind::TaskState {
                    task: common::TaskName::CallBedrock,
                    attempt,
                    state: common::TaskState::Running,
                    outcome: Default::default(),
                },
            )))
        };
        let history = reduce(page(Cursor::Newest, [9]), [retried(1), retried(3), retried(2)]);
        assert_eq!(history.runs()[0].retries, 2);
    }

    #[test]
    fn a_failed_refresh_keeps_the_list() {
        let history = reduce(
            History::new(HistoryQuery::default(), 20),
            [
                HistoryAction::Loaded { generation: 0, runs: vec![summary(1, RunState::Completed)] },
                HistoryAction::Failed("offline".into()),
            ],
        );
        assert_eq!(ids(&history), [id(1)]);
        let empty = reduce(History::new(HistoryQuery::default(), 20), [HistoryAction::Failed("offline".into())]);
        assert_eq!(empty.listing, Load::Failed("offline".into()));
    }
}
