//! The batch pages' pure logic: reading pasted prompts, naming an uploaded file's type, the
//! settings as query parameters, where a batch stands in a word, when its page fetches it again,
//! and the rate and ETA a batch page computes from what it sees.

use common::{BatchCounts, ItemState};

use super::history_query::encode;
use crate::api::Batch;

/// The prompts in pasted text: one per line, trimmed, blank lines skipped.
pub fn pasted_prompts(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect()
}

/// The `Content-Type` the server reads a batch file as, by the file's name: JSON Lines, CSV, or
/// one prompt per line for anything else.
pub fn file_content_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        "application/x-ndjson"
    } else if lower.ends_with(".csv") {
        "text/csv"
    } else {
        "text/plain"
    }
}

/// A batch's run settings and template, as the form gives them: `common::SubmitBatch` less its
/// prompts and rows, which never travel beside a file (and whose maps would bring B-tree code
/// into the Wasm only to be dropped).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchSettings {
    pub model_id: Option<String>,
    pub system: Option<String>,
    pub template: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// The query string that carries a file batch's settings and template (a file has no room for
/// them): the non-empty ones of `settings`, temperature written without float formatting code.
pub fn file_parameters(settings: &BatchSettings) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let mut text = |key, value: &Option<String>| {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((key, encode(value)));
        }
    };
    text("model_id", &settings.model_id);
    text("system", &settings.system);
    text("template", &settings.template);
    if let Some(max_tokens) = settings.max_tokens {
        pairs.push(("max_tokens", max_tokens.to_string()));
    }
    if let Some(t) = settings.temperature {
        pairs.push(("temperature", crate::format::temperature(t)));
    }
    pairs.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("&")
}

/// How many of the items are in `state`.
pub fn count(counts: &BatchCounts, state: ItemState) -> u64 {
    match state {
        ItemState::Queued => counts.queued,
        ItemState::Pending => counts.pending,
        ItemState::Running => counts.running,
        ItemState::Completed => counts.completed,
        ItemState::Failed => counts.failed,
        ItemState::Cancelled => counts.cancelled,
        ItemState::Crashed => counts.crashed,
    }
}

/// Items that ended without an answer, which "Retry failed" queues again.
pub fn retryable(counts: &BatchCounts) -> u64 {
    counts.failed + counts.crashed
}

/// Whether nothing more will happen to any item (until someone retries the failed ones).
pub fn is_done(batch: &Batch) -> bool {
    batch.counts.finished() >= batch.total
}

/// Where a batch stands, in a word or two, for the list.
pub fn status(batch: &Batch) -> &'static str {
    let counts = &batch.counts;
    match (is_done(batch), batch.cancelled) {
        (true, true) => "Cancelled",
        (true, false) if retryable(counts) > 0 => "Done, some failed",
        (true, false) => "Done",
        (false, true) => "Cancelling",
        (false, false) if counts.queued == batch.total => "Queued",
        (false, false) => "Running",
    }
}

/// How often a batch page looks whether it should fetch the batch again: at most this often,
/// however many of its runs' events arrive (a large batch sends hundreds a second).
pub const REFRESH_CHECK_MS: u32 = 500;
/// How long a page showing an unfinished batch waits without events before it fetches anyway:
/// items queued behind a quota change nothing the socket reports, and the items past the first
/// page have runs the page does not follow.
pub const FALLBACK_POLL_MS: f64 = 5_000.0;

/// Whether a batch page fetches again now: an event about its runs arrived (`dirty`), or the
/// batch is unfinished and the page has not fetched for [`FALLBACK_POLL_MS`].
pub fn refresh_due(dirty: bool, since_fetch_ms: f64, done: bool) -> bool {
    dirty || (!done && since_fetch_ms >= FALLBACK_POLL_MS)
}

/// How many completions per second a batch page has seen, and when the rest should be done,
/// from the first and the latest moment it counted finished items. Computed on the page, as the
/// server keeps no history of its pace.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// When the page first saw the batch, in ms, and how many items had finished then.
    first: Option<(f64, u64)>,
    /// The latest count and when it was seen.
    latest: Option<(f64, u64)>,
}

/// Below this much observed time a rate is noise: a page opened mid-batch sees a jump at once.
const MIN_SPAN_MS: f64 = 2_000.0;

impl Rate {
    /// Counts the batch's finished items as seen at `now_ms`.
    pub fn observe(self, now_ms: f64, counts: &BatchCounts) -> Rate {
        let seen = (now_ms, counts.finished());
        Rate { first: self.first.or(Some(seen)), latest: Some(seen) }
    }

    /// Items finished per second since the page first saw the batch; `None` until the page has
    /// watched long enough, or while nothing finished.
    pub fn per_second(&self) -> Option<f64> {
        let ((t0, n0), (t1, n1)) = (self.first?, self.latest?);
        let span = t1 - t0;
        (span >= MIN_SPAN_MS && n1 > n0).then(|| (n1 - n0) as f64 * 1_000.0 / span)
    }

    /// Milliseconds until the `remaining` items are done at that rate.
    pub fn eta_ms(&self, remaining: u64) -> Option<u64> {
        let rate = self.per_second()?;
        Some((remaining as f64 / rate * 1_000.0) as u64)
    }
}

/// A rate for people, without float formatting code: `3.4/s`, or `12/min` when slow.
pub fn rate_text(per_second: f64) -> String {
    if per_second >= 1.0 {
        let tenths = (per_second * 10.0 + 0.5) as u64;
        format!("{}.{}/s", tenths / 10, tenths % 10)
    } else {
        format!("{}/min", (per_second * 60.0 + 0.5) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(n: u64) -> BatchCounts {
        BatchCounts { completed: n, ..BatchCounts::default() }
    }

    #[test]
    fn pasted_text_gives_one_prompt_per_non_blank_line() {
        assert_eq!(pasted_prompts("  one \n\n two\r\n   \nthree"), ["one", "two", "three"]);
        assert!(pasted_prompts(" \n\t\n").is_empty());
    }

    #[test]
    fn a_file_is_sent_as_what_its_name_says() {
        assert_eq!(file_content_type("prompts.jsonl"), "application/x-ndjson");
        assert_eq!(file_content_type("Rows.CSV"), "text/csv");
        assert_eq!(file_content_type("list.txt"), "text/plain");
        assert_eq!(file_content_type("no-extension"), "text/plain");
    }

    #[test]
    fn a_files_settings_travel_in_the_query_string_encoded() {
        let settings = BatchSettings {
            model_id: Some("m:1".into()),
            system: Some("be brief & kind".into()),
            template: Some("Hi {{name}}".into()),
            max_tokens: Some(64),
            temperature: Some(0.25),
        };
        assert_eq!(
            file_parameters(&settings),
            "model_id=m:1&system=be%20brief%20%26%20kind&template=Hi%20%7B%7Bname%7D%7D&max_tokens=64&temperature=0.25"
        );
        assert_eq!(file_parameters(&BatchSettings { system: Some(String::new()), ..BatchSettings::default() }), "");
    }

    fn batch(total: u64, counts: BatchCounts, cancelled: bool) -> Batch {
        Batch {
            id: common::BatchId(uuid::Uuid::nil()),
            created_at: chrono::DateTime::UNIX_EPOCH,
            model_id: "m".into(),
            total,
            counts,
            cancelled,
            pace: common::ModelPace::default(),
        }
    }

    #[test]
    fn counts_are_read_by_state() {
        let counts =
            BatchCounts { queued: 1, pending: 2, running: 3, completed: 4, failed: 5, cancelled: 6, crashed: 7 };
        let read: Vec<u64> = ItemState::ALL.iter().map(|state| count(&counts, *state)).collect();
        assert_eq!(read, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(retryable(&counts), 12, "failed and crashed items are retried");
    }

    #[test]
    fn a_batch_reads_as_queued_running_done_or_cancelled() {
        let queued = BatchCounts { queued: 3, ..BatchCounts::default() };
        assert_eq!(status(&batch(3, queued, false)), "Queued");
        let running = BatchCounts { queued: 1, running: 1, completed: 1, ..BatchCounts::default() };
        assert_eq!(status(&batch(3, running.clone(), false)), "Running");
        assert_eq!(status(&batch(3, running, true)), "Cancelling", "in-flight items still end");
        assert_eq!(status(&batch(3, finished(3), false)), "Done");
        let failed = BatchCounts { completed: 2, crashed: 1, ..BatchCounts::default() };
        assert_eq!(status(&batch(3, failed, false)), "Done, some failed");
        let cancelled = BatchCounts { completed: 1, cancelled: 2, ..BatchCounts::default() };
        assert_eq!(status(&batch(3, cancelled, true)), "Cancelled");
        assert!(is_done(&batch(3, finished(3), false)));
        assert!(!is_done(&batch(3, finished(2), false)));
    }

    #[test]
    fn a_batch_page_fetches_on_its_runs_events_or_after_a_quiet_spell_while_unfinished() {
        assert!(refresh_due(true, 0.0, false), "an event about one of its runs");
        assert!(refresh_due(true, 0.0, true), "a retry can wake a finished batch");
        assert!(!refresh_due(false, 4_999.0, false));
        assert!(refresh_due(false, FALLBACK_POLL_MS, false), "the fallback poll");
        assert!(!refresh_due(false, 60_000.0, true), "a finished batch is not polled");
    }

    #[test]
    fn rate_and_eta_come_from_completions_over_the_time_watched() {
        let rate = Rate::default().observe(0.0, &finished(10));
        assert_eq!(rate.per_second(), None, "one sighting is no rate");
        let rate = rate.observe(1_000.0, &finished(12));
        assert_eq!(rate.per_second(), None, "too short a span to tell");
        let rate = rate.observe(4_000.0, &finished(18));
        assert_eq!(rate.per_second(), Some(2.0), "8 more in 4 s");
        assert_eq!(rate.eta_ms(30), Some(15_000));
        assert_eq!(Rate::default().observe(0.0, &finished(3)).observe(9_000.0, &finished(3)).eta_ms(5), None);
    }

    #[test]
    fn rates_read_per_second_or_per_minute() {
        assert_eq!(rate_text(3.44), "3.4/s");
        assert_eq!(rate_text(1.0), "1.0/s");
        assert_eq!(rate_text(0.2), "12/min");
    }
}
