//! One run's page state: the run (folded live from its snapshot and events), each attempt's
//! output, its log lines and the log filters (level and text).

use std::rc::Rc;

use common::{Event, LogEntry, LogLevel, RunDetail, TaskName};
use yew::Reducible;

use super::load::{Load, LoadError};
use super::outputs::AttemptOutputs;

/// Everything the run page shows that comes from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    /// The run, folded from its REST snapshot and every event since.
    pub run: Load<RunDetail, LoadError>,
    /// Each `call_bedrock` attempt's text, from the events (the snapshot has only the last).
    pub outputs: AttemptOutputs,
    /// Log lines, by `seq`, without duplicates.
    pub logs: Vec<LogEntry>,
    /// Whether the stored log lines have arrived (live ones are added either way).
    pub logs_loaded: bool,
    /// Lines below this level are hidden.
    pub min_level: LogLevel,
    /// Only lines whose message holds this text (ASCII case ignored) are shown; empty shows all.
    pub log_query: String,
}

impl Default for RunView {
    fn default() -> Self {
        RunView {
            run: Load::Loading,
            outputs: AttemptOutputs::default(),
            logs: Vec::new(),
            logs_loaded: false,
            min_level: LogLevel::Trace,
            log_query: String::new(),
        }
    }
}

/// What can happen to a run page.
#[derive(Debug, Clone, PartialEq)]
pub enum RunAction {
    /// `GET /api/runs/{id}` answered.
    Loaded(RunDetail),
    /// `GET /api/runs/{id}` failed; ignored once the run is shown, as live events keep it current.
    LoadFailed(LoadError),
    /// `GET /api/runs/{id}/logs` answered.
    LogsLoaded(Vec<LogEntry>),
    /// An event of the run arrived over the WebSocket.
    Event(Event),
    /// The reader picked a minimum log level.
    SetMinLevel(LogLevel),
    /// The reader typed in the log search box.
    SetLogQuery(String),
}

impl RunView {
    /// The run, once it is here.
    pub fn detail(&self) -> Option<&RunDetail> {
        self.run.ready()
    }

    /// The log lines at or above the chosen level that match the search text.
    pub fn visible_logs(&self) -> impl Iterator<Item = &LogEntry> {
        // ASCII folding only: Unicode case tables would cost the Wasm more than log search is worth.
        let query = self.log_query.trim().to_ascii_lowercase();
        self.logs.iter().filter(move |line| {
            line.level >= self.min_level && (query.is_empty() || line.message.to_ascii_lowercase().contains(&query))
        })
    }

    /// Why no line is shown: still loading, none at all, none at the chosen level, or none
    /// matching the search; `None` while some are shown.
    pub fn empty_logs_note(&self) -> Option<String> {
        if self.visible_logs().next().is_some() {
            return None;
        }
        let query = self.log_query.trim();
        Some(if !query.is_empty() {
            format!("No lines match \u{201c}{query}\u{201d}.")
        } else if self.logs.is_empty() {
            if self.logs_loaded { "No log lines yet.".into() } else { "Loading log lines…".into() }
        } else {
            format!("No {} lines.", self.min_level.as_str())
        })
    }

    /// The seq a (re)connecting event stream should resume after.
    pub fn last_seq(&self) -> u64 {
        self.detail().map_or(0, |detail| detail.last_seq)
    }

    /// The seq the page's event stream starts after: from the start while the run is live or
    /// when `call_bedrock` was retried, since only the events hold each attempt's output and
    /// the last text's time; after the snapshot for a finished single-attempt run, whose whole
    /// answer the snapshot already has.
    pub fn stream_start(&self) -> u64 {
        match self.detail() {
            Some(detail) => {
                let attempts =
                    detail.tasks.iter().find(|t| t.name == TaskName::CallBedrock).map_or(0, |t| t.attempts.len());
                if detail.state.is_terminal() && attempts <= 1 { detail.last_seq } else { 0 }
            }
            None => 0,
        }
    }

    fn add_log(&mut self, entry: LogEntry) {
        // Lines nearly always arrive in order, so appending is the common case.
        match self.logs.last() {
            None => self.logs.push(entry),
            Some(last) if last.seq < entry.seq => self.logs.push(entry),
            Some(_) => {
                if let Err(at) = self.logs.binary_search_by_key(&entry.seq, |line| line.seq) {
                    self.logs.insert(at, entry);
                }
            }
        }
    }

    fn apply_event(&mut self, event: &Event) {
        if self.detail().is_none_or(|detail| detail.id == event.run_id) {
            self.outputs.apply(event);
        }
        match &mut self.run {
            Load::Ready(detail) => detail.apply(event),
            // A stream that starts from seq 0 can build the run from its first event.
            Load::Loading | Load::Failed(_) => {
                if let Some(detail) = RunDetail::from_created(event) {
                    self.run = Load::Ready(detail);
                }
            }
        }
        if let Ok(entry) = LogEntry::try_from(event)
            && self.detail().is_some_and(|detail| detail.id == event.run_id)
        {
            self.add_log(entry);
        }
    }
}

impl Reducible for RunView {
    type Action = RunAction;

    fn reduce(self: Rc<Self>, action: RunAction) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            RunAction::Loaded(detail) => {
                // A snapshot older than what live events already built would move the page back.
                if next.detail().is_none_or(|have| detail.last_seq >= have.last_seq) {
                    next.run = Load::Ready(detail);
                }
            }
            RunAction::LoadFailed(error) => {
                if next.detail().is_none() {
                    next.run = Load::Failed(error);
                }
            }
            RunAction::LogsLoaded(lines) => {
                next.logs_loaded = true;
                for line in lines {
                    next.add_log(line);
                }
            }
            RunAction::Event(event) => next.apply_event(&event),
            RunAction::SetMinLevel(level) => next.min_level = level,
            RunAction::SetLogQuery(query) => next.log_query = query,
        }
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use common::{AttemptOutcome, EventKind, RunId, RunState, TaskName, TaskState};
    use uuid::Uuid;

    use super::*;

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event { run_id: RunId(Uuid::nil()), seq, ts: DateTime::UNIX_EPOCH, kind }
    }

    fn created() -> Event {
        ev(
            1,
            EventKind::RunCreated {
                prompt: "hi".into(),
                model_id: "m".into(),
                system: None,
                max_tokens: 10,
                temperature: None,
                max_attempts: 3,
                replay_of: None,
                batch_id: None,
            },
        )
    }

    fn log(seq: u64, level: LogLevel) -> Event {
        ev(seq, EventKind::Log { level, task: None, attempt: None, message: format!("line {seq}") })
    }

    fn reduce(state: RunView, actions: impl IntoIterator<Item = RunAction>) -> RunView {
        let mut state = Rc::new(state);
        for action in actions {
            state = state.reduce(action);
        }
        (*state).clone()
    }

    fn loaded_at(seq: u64) -> RunDetail {
        let mut detail = RunDetail::from_created(&created()).unwrap_or_else(|| panic!("created event"));
        detail.last_seq = seq;
        detail
    }

    #[test]
    fn events_after_the_snapshot_update_the_run_and_older_ones_are_ignored() {
        let state = reduce(
            RunView::default(),
            [
                RunAction::Loaded(loaded_at(1)),
                RunAction::Event(ev(2, EventKind::RunState { state: RunState::Running, error: None })),
                RunAction::Event(ev(
                    3,
                    EventKind::TaskState {
                        task: TaskName::CallBedrock,
                        attempt: 1,
                        state: TaskState::Running,
                        outcome: AttemptOutcome::default(),
                    },
                )),
                RunAction::Event(ev(4, EventKind::Delta { attempt: 1, text: "Hel".into() })),
                RunAction::Event(ev(4, EventKind::Delta { attempt: 1, text: "Hel".into() })),
                RunAction::Event(ev(5, EventKind::Delta { attempt: 1, text: "lo".into() })),
            ],
        );
        let detail = state.detail().unwrap_or_else(|| panic!("loaded"));
        assert_eq!(detail.state, RunState::Running);
        assert_eq!(detail.response.as_deref(), Some("Hello"));
        assert_eq!(state.last_seq(), 5);
    }

    #[test]
    fn a_stale_snapshot_does_not_rewind_the_live_run() {
        let state = reduce(
            RunView::default(),
            [
                RunAction::Event(created()),
                RunAction::Event(ev(2, EventKind::RunState { state: RunState::Running, error: None })),
                RunAction::Loaded(loaded_at(1)),
            ],
        );
        assert_eq!(state.last_seq(), 2);
        assert_eq!(state.detail().map(|d| d.state), Some(RunState::Running));
    }

    #[test]
    fn log_lines_merge_from_rest_and_stream_without_duplicates() {
        let stored = |seq: u64| LogEntry {
            seq,
            ts: DateTime::UNIX_EPOCH,
            level: LogLevel::Info,
            task: None,
            attempt: None,
            message: format!("line {seq}"),
        };
        let state = reduce(
            RunView::default(),
            [
                RunAction::Loaded(loaded_at(1)),
                RunAction::Event(log(3, LogLevel::Info)),
                RunAction::LogsLoaded(vec![stored(2), stored(3)]),
                RunAction::Event(log(4, LogLevel::Warn)),
                RunAction::Event(log(3, LogLevel::Info)),
            ],
        );
        let seqs: Vec<u64> = state.logs.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
        assert!(state.logs_loaded);
    }

    #[test]
    fn the_level_filter_hides_quieter_lines() {
        let state = reduce(
            RunView::default(),
            [
                RunAction::Loaded(loaded_at(1)),
                RunAction::Event(log(2, LogLevel::Debug)),
                RunAction::Event(log(3, LogLevel::Info)),
                RunAction::Event(log(4, LogLevel::Error)),
                RunAction::SetMinLevel(LogLevel::Info),
            ],
        );
        let shown: Vec<u64> = state.visible_logs().map(|l| l.seq).collect();
        assert_eq!(shown, [3, 4]);
    }

    #[test]
    fn the_search_keeps_lines_whose_message_holds_the_text_in_any_case() {
        let state = reduce(
            RunView::default(),
            [
                RunAction::Loaded(loaded_at(1)),
                RunAction::Event(log(2, LogLevel::Info)),
                RunAction::Event(log(13, LogLevel::Info)),
                RunAction::SetLogQuery(" LINE 1".into()),
            ],
        );
        let shown: Vec<u64> = state.visible_logs().map(|l| l.seq).collect();
        assert_eq!(shown, [13]);
        assert_eq!(state.empty_logs_note(), None);
    }

    #[test]
    fn an_empty_log_list_says_which_filter_left_it_empty() {
        let loading = reduce(RunView::default(), [RunAction::Loaded(loaded_at(1))]);
        assert_eq!(loading.empty_logs_note().as_deref(), Some("Loading log lines…"));
        let none = reduce(loading, [RunAction::LogsLoaded(vec![])]);
        assert_eq!(none.empty_logs_note().as_deref(), Some("No log lines yet."));
        let quiet = reduce(none, [RunAction::Event(log(2, LogLevel::Info)), RunAction::SetMinLevel(LogLevel::Warn)]);
        assert_eq!(quiet.empty_logs_note().as_deref(), Some("No WARN lines."));
        let unmatched = reduce(quiet, [RunAction::SetMinLevel(LogLevel::Trace), RunAction::SetLogQuery("zzz".into())]);
        assert_eq!(unmatched.empty_logs_note().as_deref(), Some("No lines match \u{201c}zzz\u{201d}."));
    }

    #[test]
    fn a_404_is_remembered_but_never_hides_a_run_we_have() {
        let missing = reduce(RunView::default(), [RunAction::LoadFailed(LoadError::NotFound)]);
        assert_eq!(missing.run, Load::Failed(LoadError::NotFound));
        let kept = reduce(
            RunView::default(),
            [RunAction::Loaded(loaded_at(1)), RunAction::LoadFailed(LoadError::Other("net".into()))],
        );
        assert_eq!(kept.run, Load::Ready(loaded_at(1)));
    }

    #[test]
    fn a_failed_load_gives_way_to_the_run_from_a_retry_or_the_stream() {
        let failed = RunAction::LoadFailed(LoadError::Other("offline".into()));
        let retried = reduce(RunView::default(), [failed.clone(), RunAction::Loaded(loaded_at(3))]);
        assert_eq!(retried.last_seq(), 3);
        let streamed = reduce(RunView::default(), [failed, RunAction::Event(created())]);
        assert_eq!(streamed.detail().map(|d| d.prompt.as_str()), Some("hi"));
    }

    #[test]
    fn a_live_or_retried_run_streams_from_the_start_and_a_plain_finished_one_after_its_snapshot() {
        assert_eq!(RunView::default().stream_start(), 0);
        let live = reduce(RunView::default(), [RunAction::Loaded(loaded_at(7))]);
        assert_eq!(live.stream_start(), 0);
        let mut finished = loaded_at(9);
        finished.state = RunState::Completed;
        let done = reduce(RunView::default(), [RunAction::Loaded(finished.clone())]);
        assert_eq!(done.stream_start(), 9);
        let start = |number| common::AttemptView::started(number, TaskState::Completed, DateTime::UNIX_EPOCH);
        finished.tasks[1].attempts = vec![start(1), start(2)];
        let retried = reduce(RunView::default(), [RunAction::Loaded(finished)]);
        assert_eq!(retried.stream_start(), 0);
    }

    #[test]
    fn deltas_replayed_over_a_snapshot_still_fill_each_attempts_output() {
        let state = reduce(
            RunView::default(),
            [
                RunAction::Loaded(loaded_at(5)),
                RunAction::Event(ev(2, EventKind::Delta { attempt: 1, text: "cut".into() })),
                RunAction::Event(ev(6, EventKind::Delta { attempt: 2, text: "whole".into() })),
            ],
        );
        assert_eq!(state.outputs.text(1), Some("cut"));
        assert_eq!(state.outputs.text(2), Some("whole"));
    }
}
