//! What each `call_bedrock` attempt wrote, kept apart from the run's response.
//!
//! The shared fold (`RunDetail::apply`) keeps only the current attempt's text: a retry starts
//! the answer afresh. A person still wants to read what a cut-off attempt said, and to know
//! when the stream last produced anything, so the page collects every `delta` by its attempt
//! here, from the run's events.

use chrono::{DateTime, Utc};
use common::{Event, EventKind};

/// Every attempt's text, in attempt order, and when the latest text arrived.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttemptOutputs {
    /// `(attempt, text)`, ascending by attempt; only attempts that produced text.
    texts: Vec<(u32, String)>,
    /// The highest `seq` applied, so a replay that overlaps live delivery adds nothing twice.
    last_seq: u64,
    /// The attempt and server time of the latest delta.
    last_delta: Option<(u32, DateTime<Utc>)>,
}

impl AttemptOutputs {
    /// Takes the run's next event (events must come in `seq` order; older ones are ignored).
    pub fn apply(&mut self, event: &Event) {
        if event.seq <= self.last_seq {
            return;
        }
        self.last_seq = event.seq;
        let EventKind::Delta { attempt, text } = &event.kind else { return };
        self.last_delta = Some((*attempt, event.ts));
        match self.texts.binary_search_by_key(attempt, |(number, _)| *number) {
            Ok(at) => self.texts[at].1.push_str(text),
            Err(at) => self.texts.insert(at, (*attempt, text.clone())),
        }
    }

    /// What attempt `number` wrote, if anything.
    pub fn text(&self, number: u32) -> Option<&str> {
        self.texts.iter().find(|(n, _)| *n == number).map(|(_, text)| text.as_str())
    }

    /// Every attempt that wrote something, oldest first.
    pub fn all(&self) -> impl Iterator<Item = (u32, &str)> {
        self.texts.iter().map(|(n, text)| (*n, text.as_str()))
    }

    /// The attempt and server time of the latest text.
    pub fn last_delta(&self) -> Option<(u32, DateTime<Utc>)> {
        self.last_delta
    }
}

#[cfg(test)]
mod tests {
    use common::RunId;
    use uuid::Uuid;

    use super::*;

    fn delta(seq: u64, attempt: u32, text: &str) -> Event {
        let ts = DateTime::from_timestamp_millis(i64::try_from(seq).unwrap_or(0) * 1_000).unwrap_or_default();
        Event { run_id: RunId(Uuid::nil()), seq, ts, kind: EventKind::Delta { attempt, text: text.into() } }
    }

    #[test]
    fn each_attempt_keeps_its_own_text_and_replays_add_nothing() {
        let mut outputs = AttemptOutputs::default();
        let events = [delta(3, 1, "Hal"), delta(4, 1, "f an"), delta(7, 2, "Whole"), delta(8, 2, " answer")];
        for event in events.iter().chain(events.iter()) {
            outputs.apply(event);
        }
        assert_eq!(outputs.text(1), Some("Half an"));
        assert_eq!(outputs.text(2), Some("Whole answer"));
        assert_eq!(outputs.text(3), None);
        assert_eq!(outputs.all().map(|(n, _)| n).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(outputs.last_delta().map(|(n, ts)| (n, ts.timestamp())), Some((2, 8)));
    }
}
