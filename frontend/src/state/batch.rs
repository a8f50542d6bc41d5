//! The batch pages' pure logic: reading pasted prompts, naming an uploaded file's type, the
//! settings as query parameters, and the rate and ETA a batch page computes from what it sees.

use common::{BatchCounts, SubmitBatch};

use super::history_query::encode;

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

/// The query string that carries a file batch's settings and template (a file has no room for
/// them): the non-empty ones of `settings`, temperature written without float formatting code.
pub fn file_parameters(settings: &SubmitBatch) -> String {
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
        let settings = SubmitBatch {
            model_id: Some("m:1".into()),
            system: Some("be brief & kind".into()),
            template: Some("Hi {{name}}".into()),
            max_tokens: Some(64),
            temperature: Some(0.25),
            ..SubmitBatch::default()
        };
        assert_eq!(
            file_parameters(&settings),
            "model_id=m:1&system=be%20brief%20%26%20kind&template=Hi%20%7B%7Bname%7D%7D&max_tokens=64&temperature=0.25"
        );
        assert_eq!(file_parameters(&SubmitBatch { system: Some(String::new()), ..SubmitBatch::default() }), "");
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
