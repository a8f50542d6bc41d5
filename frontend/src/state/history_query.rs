//! What the history page shows, as its URL says it (`/history?state=Failed&model=…&before=…`),
//! so a filter and a page survive a reload, a shared link and the back button.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use common::{RunId, RunState, RunSummary};

/// The filters of the history, as the reader set them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub state: Option<RunState>,
    /// A model id, matched exactly.
    pub model: Option<String>,
    /// Runs created on or after this day, in the reader's time zone.
    pub since: Option<NaiveDate>,
    /// Runs created on or before this day, in the reader's time zone.
    pub until: Option<NaiveDate>,
    /// Words the prompt or the response holds, all of them (the server's full-text search).
    pub text: Option<String>,
}

/// Which page of the filtered history: the newest, or the one next to a run of another page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cursor {
    #[default]
    Newest,
    /// The runs just older than this one.
    Before(RunId),
    /// The runs just newer than this one.
    After(RunId),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub filter: HistoryFilter,
    pub cursor: Cursor,
}

impl HistoryQuery {
    /// Reads a URL's query string (with or without its `?`); what it cannot read is left out,
    /// as a hand-edited URL should still show a history.
    pub fn from_search(search: &str) -> HistoryQuery {
        let mut query = HistoryQuery::default();
        for pair in search.trim_start_matches('?').split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let filter = &mut query.filter;
            match key {
                "state" => filter.state = value.parse().ok(),
                "model" => filter.model = Some(value.to_owned()),
                "q" => filter.text = Some(value.to_owned()),
                "since" => filter.since = parse_day(value),
                "until" => filter.until = parse_day(value),
                "before" => query.cursor = value.parse().map_or(query.cursor, Cursor::Before),
                "after" => query.cursor = value.parse().map_or(query.cursor, Cursor::After),
                _ => {}
            }
        }
        query
    }

    /// The query string for the page's URL, `""` for the unfiltered newest page.
    pub fn to_search(&self) -> String {
        let mut pairs = self.filter_pairs();
        match self.cursor {
            Cursor::Newest => {}
            Cursor::Before(id) => pairs.push(("before", id.to_string())),
            Cursor::After(id) => pairs.push(("after", id.to_string())),
        }
        join(&pairs)
    }

    /// The same filter on another page.
    pub fn at(&self, cursor: Cursor) -> HistoryQuery {
        HistoryQuery { filter: self.filter.clone(), cursor }
    }

    /// The `/api/runs` parameters for this page. Days become instants at the reader's
    /// midnights, by `utc_offset_min`, the reader's offset from UTC at a given instant.
    pub fn api_parameters(&self, limit: usize, utc_offset_min: impl Fn(DateTime<Utc>) -> i64) -> String {
        let mut pairs = vec![("limit", limit.to_string())];
        let filter = &self.filter;
        if let Some(state) = filter.state {
            pairs.push(("state", state.as_str().to_owned()));
        }
        if let Some(model) = &filter.model {
            pairs.push(("model", model.clone()));
        }
        if let Some(text) = &filter.text {
            pairs.push(("q", text.clone()));
        }
        if let Some(since) = filter.since.and_then(|day| local_midnight(day, &utc_offset_min)) {
            pairs.push(("since", crate::format::rfc3339(since)));
        }
        if let Some(until) =
            filter.until.and_then(|day| day.succ_opt()).and_then(|day| local_midnight(day, &utc_offset_min))
        {
            pairs.push(("until", crate::format::rfc3339(until)));
        }
        match self.cursor {
            Cursor::Newest => {}
            Cursor::Before(id) => pairs.push(("before", id.to_string())),
            Cursor::After(id) => pairs.push(("after", id.to_string())),
        }
        join(&pairs)
    }

    /// Whether a run created just now belongs at the top of this page: only the newest page
    /// takes new runs, and only when the filter admits them.
    pub fn takes_new(&self, run: &RunSummary) -> bool {
        let filter = &self.filter;
        // Whether a new run holds the words searched for, only the server can say.
        self.cursor == Cursor::Newest
            && filter.until.is_none()
            && filter.text.is_none()
            && filter.state.is_none_or(|state| state == run.state)
            && filter.model.as_ref().is_none_or(|model| model == &run.model_id)
    }

    /// Whether a state change keeps a listed run on the page.
    pub fn keeps(&self, state: RunState) -> bool {
        self.filter.state.is_none_or(|wanted| wanted == state)
    }

    fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        let filter = &self.filter;
        let mut pairs = Vec::new();
        if let Some(state) = filter.state {
            pairs.push(("state", state.as_str().to_owned()));
        }
        if let Some(model) = &filter.model {
            pairs.push(("model", model.clone()));
        }
        if let Some(text) = &filter.text {
            pairs.push(("q", text.clone()));
        }
        if let Some(since) = filter.since {
            pairs.push(("since", day_text(since)));
        }
        if let Some(until) = filter.until {
            pairs.push(("until", day_text(until)));
        }
        pairs
    }
}

/// A `YYYY-MM-DD` day, as date inputs and URLs write it. By hand: chrono's `FromStr` brings
/// its whole format parser into the Wasm.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    let mut parts = text.splitn(3, '-');
    let mut next = |width: usize| parts.next().filter(|p| p.len() == width && p.bytes().all(|b| b.is_ascii_digit()));
    let (year, month, day) = (next(4)?.parse().ok()?, next(2)?.parse().ok()?, next(2)?.parse().ok()?);
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The day as [`parse_day`] reads it.
pub fn day_text(day: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day())
}

/// The instant a day starts where the reader is.
fn local_midnight(day: NaiveDate, utc_offset_min: impl Fn(DateTime<Utc>) -> i64) -> Option<DateTime<Utc>> {
    let as_if_utc = day.and_hms_opt(0, 0, 0)?.and_utc();
    // The offset in force near that midnight; a DST change at midnight itself is off by its hour.
    Some(as_if_utc - chrono::Duration::minutes(utc_offset_min(as_if_utc)))
}

fn join(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(key, value)| format!("{key}={}", encode(value))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes everything but the characters URLs never need escaped.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => out.push(char::from(byte)),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Undoes [`encode`] and a form's `+` for a space; a malformed escape stays as it is.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A search snippet from the server cut into pieces, each marked whether it is a word found
/// (the server puts those between [`common::SNIPPET_MARK_START`] and [`common::SNIPPET_MARK_END`]).
pub fn snippet_pieces(snippet: &str) -> Vec<(String, bool)> {
    let mut pieces = Vec::new();
    for (n, part) in snippet.split(common::SNIPPET_MARK_START).enumerate() {
        match part.split_once(common::SNIPPET_MARK_END) {
            Some((found, after)) if n > 0 => {
                pieces.push((found.to_owned(), true));
                pieces.push((after.to_owned(), false));
            }
            _ => pieces.push((part.to_owned(), false)),
        }
    }
    pieces.retain(|(text, _)| !text.is_empty());
    pieces
}

/// `text` cut into pieces, each marked whether it is one of the words searched for (letters
/// and digits, any case, as the server matches them), so the page can highlight the matches.
pub fn highlight(text: &str, search: Option<&str>) -> Vec<(String, bool)> {
    let words = search.map(common::search_words).unwrap_or_default();
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut push = |piece: &str, hit: bool| match pieces.last_mut() {
        Some((last, last_hit)) if *last_hit == hit => last.push_str(piece),
        _ => pieces.push((piece.to_owned(), hit)),
    };
    let mut rest = text;
    while !rest.is_empty() {
        let word_len = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
        if word_len == 0 {
            let gap = rest.find(char::is_alphanumeric).unwrap_or(rest.len());
            push(&rest[..gap], false);
            rest = &rest[gap..];
        } else {
            let word = &rest[..word_len];
            push(word, words.contains(&word.to_lowercase()));
            rest = &rest[word_len..];
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn id(n: u128) -> RunId {
        RunId(Uuid::from_u128(n))
    }

    fn day(text: &str) -> NaiveDate {
        parse_day(text).unwrap_or_default()
    }

    #[test]
    fn a_snippet_is_cut_at_its_marks() {
        assert_eq!(
            snippet_pieces("…the \u{2}built\u{3}-in \u{2}emulator\u{3}"),
            [
                ("…the ".to_owned(), false),
                ("built".to_owned(), true),
                ("-in ".to_owned(), false),
                ("emulator".to_owned(), true)
            ]
        );
        assert_eq!(snippet_pieces("no marks"), [("no marks".to_owned(), false)]);
    }

    #[test]
    fn the_words_searched_for_are_marked_in_any_case_and_nothing_else() {
        let pieces = highlight("Report: the reports' REPORT", Some("report"));
        let marked: Vec<_> = pieces.iter().filter(|(_, hit)| *hit).map(|(text, _)| text.as_str()).collect();
        assert_eq!(marked, ["Report", "REPORT"], "whole words only");
        assert_eq!(pieces.iter().map(|(t, _)| t.as_str()).collect::<String>(), "Report: the reports' REPORT");
        assert_eq!(highlight("plain", None), [("plain".to_owned(), false)]);
    }

    #[test]
    fn days_read_and_write_as_iso_dates_and_nothing_else() {
        assert_eq!(parse_day("2026-02-28").map(day_text).as_deref(), Some("2026-02-28"));
        assert_eq!(parse_day("0999-01-05").map(day_text).as_deref(), Some("0999-01-05"));
        for bad in ["2026-02-30", "2026-2-28", "26-02-28", "2026-02-28x", "2026-02", "", "+2026-02-28", "2026-13-01"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_filtered_page_survives_the_round_trip_through_its_url() {
        let query = HistoryQuery {
            filter: HistoryFilter {
                state: Some(RunState::Failed),
                model: Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0".into()),
                since: Some(day("2026-11-01")),
                until: Some(day("2026-11-30")),
                text: Some("q3 report & more".into()),
            },
            cursor: Cursor::Before(id(7)),
        };
        let search = query.to_search();
        assert_eq!(
            search,
            "state=Failed&model=us.anthropic.claude-sonnet-4-5-20250929-v1:0&q=q3%20report%20%26%20more\
             &since=2026-11-01&until=2026-11-30&before=00000000-0000-0000-0000-000000000007"
        );
        assert_eq!(HistoryQuery::from_search(&format!("?{search}")), query);
    }

    #[test]
    fn the_unfiltered_newest_page_has_an_empty_query() {
        assert_eq!(HistoryQuery::default().to_search(), "");
        assert_eq!(HistoryQuery::from_search(""), HistoryQuery::default());
    }

    #[test]
    fn what_a_hand_edited_url_gets_wrong_is_left_out() {
        let query = HistoryQuery::from_search("?state=Bogus&since=yesterday&before=nope&model=%20&x=1&model");
        assert_eq!(query, HistoryQuery::default());
    }

    #[test]
    fn escapes_are_undone_and_unsafe_characters_escaped() {
        let query = HistoryQuery::from_search("model=my%20model%26co+x&state=Completed");
        assert_eq!(query.filter.model.as_deref(), Some("my model&co x"));
        assert_eq!(query.to_search(), "state=Completed&model=my%20model%26co%20x");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn days_are_sent_as_the_readers_midnights_and_until_includes_its_whole_day() {
        let query = HistoryQuery {
            filter: HistoryFilter {
                since: Some(day("2026-12-01")),
                until: Some(day("2026-12-01")),
                ..Default::default()
            },
            cursor: Cursor::After(id(1)),
        };
        // Berlin in winter: UTC+1, so its midnight is 23:00 UTC the day before.
        assert_eq!(
            query.api_parameters(50, |_| 60),
            "limit=50&since=2026-11-30T23:00:00.000Z&until=2026-12-01T23:00:00.000Z\
             &after=00000000-0000-0000-0000-000000000001"
        );
    }

    #[test]
    fn only_the_newest_page_of_a_matching_open_ended_filter_takes_new_runs() {
        let run = RunSummary {
            id: id(9),
            state: RunState::Pending,
            created_at: DateTime::default(),
            started_at: None,
            finished_at: None,
            model_id: "m".into(),
            prompt_preview: String::new(),
            usage: None,
            error: None,
            retries: 0,
            batch_id: None,
            cost_usd: None,
            snippet: None,
        };
        assert!(HistoryQuery::default().takes_new(&run));
        assert!(!HistoryQuery::default().at(Cursor::Before(id(1))).takes_new(&run));
        let filtered = |filter: HistoryFilter| HistoryQuery { filter, cursor: Cursor::Newest };
        assert!(filtered(HistoryFilter { model: Some("m".into()), ..Default::default() }).takes_new(&run));
        assert!(!filtered(HistoryFilter { model: Some("n".into()), ..Default::default() }).takes_new(&run));
        assert!(!filtered(HistoryFilter { state: Some(RunState::Failed), ..Default::default() }).takes_new(&run));
        assert!(!filtered(HistoryFilter { until: Some(day("2026-01-01")), ..Default::default() }).takes_new(&run));
    }
}
