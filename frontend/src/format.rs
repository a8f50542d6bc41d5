//! Pure text formatting for durations, countdowns, counts, stop reasons and temperatures.
//!
//! Nothing here reads a clock: callers pass "now" in, so every function is testable natively.

use chrono::{DateTime, Datelike, Utc};
use common::{LogEntry, StopReason, Usage};

/// Formats milliseconds for people: `850 ms`, `4.2 s`, `2 min 05 s`, `1 h 03 min`.
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => {
            // One decimal place, rounded half up, computed in integers so 59 950 ms is not "60.0 s".
            let tenths = (ms + 50) / 100;
            if tenths >= 600 { "1 min 00 s".into() } else { format!("{}.{} s", tenths / 10, tenths % 10) }
        }
        60_000..3_600_000 => {
            let secs = ms / 1_000;
            format!("{} min {:02} s", secs / 60, secs % 60)
        }
        _ => {
            let mins = ms / 60_000;
            format!("{} h {:02} min", mins / 60, mins % 60)
        }
    }
}

/// Milliseconds between two instants, or `None` if `end` is before `start`.
pub fn between_ms(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<u64> {
    u64::try_from((end - start).num_milliseconds()).ok()
}

/// A run's or attempt's duration: finished minus started, or still going at `now_ms`.
pub fn elapsed(start: DateTime<Utc>, end: Option<DateTime<Utc>>, now_ms: f64) -> Option<String> {
    let end_ms = end.map_or(now_ms, |end| end.timestamp_millis() as f64);
    let ms = end_ms - start.timestamp_millis() as f64;
    (ms >= 0.0).then(|| duration_ms(ms as u64))
}

/// Whole seconds left until `at`, rounded up so the countdown reaches 0 at the moment itself.
pub fn seconds_left(at: DateTime<Utc>, now_ms: f64) -> u64 {
    let left = at.timestamp_millis() as f64 - now_ms;
    if left <= 0.0 { 0 } else { (left / 1_000.0).ceil() as u64 }
}

/// The text of a retry countdown: `retrying in 3 s`, then `retrying now…`.
pub fn countdown(at: DateTime<Utc>, now_ms: f64) -> String {
    match seconds_left(at, now_ms) {
        0 => "retrying now…".into(),
        secs => format!("retrying in {secs} s"),
    }
}

/// A count of calls in words: `1 call`, `3 calls`.
pub fn calls(n: u64) -> String {
    if n == 1 { "1 call".into() } else { format!("{n} calls") }
}

/// An English ordinal: `2nd`, `3rd`, `11th`, `21st`.
pub fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Token usage as `12 in · 340 out`.
pub fn usage(usage: &Usage) -> String {
    format!("{} in · {} out", usage.input_tokens, usage.output_tokens)
}

/// An estimated cost in US dollars: cents and up to two decimals, smaller sums to four
/// significant-enough decimals, so a single cheap run does not read as $0.00.
pub fn dollars(usd: f64) -> String {
    // Whole numbers only: formatting a float with a precision would bring core's float
    // printer into the page.
    let ten_thousandths = (usd.max(0.0) * 10_000.0).round() as u64;
    let (whole, fraction) = (ten_thousandths / 10_000, ten_thousandths % 10_000);
    if usd >= 0.01 || ten_thousandths == 0 {
        let cents = (ten_thousandths + 50) / 100;
        format!("${}.{:02}", cents / 100, cents % 100)
    } else {
        format!("${whole}.{fraction:04}")
    }
}

/// The totals of a filtered history in one line.
pub fn totals(totals: &common::RunTotals) -> String {
    let runs = if totals.runs == 1 { "1 run".to_owned() } else { format!("{} runs", totals.runs) };
    let mut line = format!(
        "{runs} · {} tokens in · {} out · est. {}",
        totals.input_tokens,
        totals.output_tokens,
        dollars(totals.cost_usd)
    );
    if totals.unpriced_runs > 0 {
        line.push_str(&format!(" ({} not priced: model not in the catalog)", totals.unpriced_runs));
    }
    line
}

/// A stop reason in words.
pub fn stop_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::EndTurn => "end of turn".into(),
        StopReason::MaxTokens => "max tokens reached".into(),
        StopReason::StopSequence => "stop sequence".into(),
        StopReason::ContentFiltered => "content filtered".into(),
        StopReason::Other(name) => name.clone(),
    }
}

/// Parses a temperature (`0`, `0.7`, `.25`, `1.0`) in `0..=1` with up to three decimals.
///
/// Hand-rolled on purpose: `str::parse::<f32>` and float `Display` pull about 17 KB of
/// float-conversion code into the Wasm for one form field.
pub fn parse_temperature(text: &str) -> Option<f32> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || frac.len() > 3 {
        return None;
    }
    let whole: u32 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let scaled: u32 = format!("{frac:0<3}").parse().ok()?;
    let milli = whole.checked_mul(1_000)?.checked_add(scaled)?;
    (milli <= 1_000).then(|| milli as f32 / 1_000.0)
}

/// Shows a temperature with up to three decimals and no float formatting code: `0.7`.
pub fn temperature(value: f32) -> String {
    let milli = (value.clamp(0.0, 1.0) * 1_000.0 + 0.5) as u32;
    let frac = format!("{:03}", milli % 1_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { format!("{}", milli / 1_000) } else { format!("{}.{frac}", milli / 1_000) }
}

/// `value` as JSON with `"temperature": t` added when there is one; `value` must serialize to an
/// object that does not have that field. Every float the page sends goes through here: serde_json
/// writes floats with an algorithm whose table of powers of ten is about 10 KB of Wasm, and
/// [`temperature`] writes the three decimals a temperature has without it.
pub fn json_with_temperature(value: &impl serde::Serialize, temperature: Option<f32>) -> String {
    // Serializing plain structs of strings and integers cannot fail; `{}` keeps this total.
    let mut json = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    if let (Some(t), Some(b'}')) = (temperature, json.as_bytes().last()) {
        json.pop();
        if json.len() > 1 {
            json.push(',');
        }
        json.push_str(&format!("\"temperature\":{}}}", self::temperature(t)));
    }
    json
}

/// A log line's time of day to the millisecond, `14:05:09.042`, at `offset_min` minutes east
/// of UTC (the reader's zone, which the browser knows).
pub fn clock_ms(at: DateTime<Utc>, offset_min: i64) -> String {
    let ms = (at.timestamp_millis() + offset_min * 60_000).rem_euclid(86_400_000);
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1_000 % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", ms % 1_000)
}

/// An instant in UTC to the millisecond, `2026-11-23T14:05:09.042Z`, for `<time datetime>`,
/// files and query parameters. By hand: chrono's `to_rfc3339` brings its formatting machinery
/// into the Wasm.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    let ms = at.timestamp_millis().rem_euclid(86_400_000);
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1_000 % 60);
    format!("{:04}-{:02}-{:02}T{h:02}:{m:02}:{s:02}.{:03}Z", at.year(), at.month(), at.day(), ms % 1_000)
}

/// Log lines as a text file, one a line, with UTC times to the millisecond:
/// `2026-11-23T14:05:09.042Z INFO call_bedrock #1 message`.
pub fn log_file(lines: &[LogEntry]) -> String {
    let mut out = String::new();
    for line in lines {
        let source = line.task.map_or("flow", |t| t.as_str());
        let attempt = line.attempt.map(|a| format!(" #{a}")).unwrap_or_default();
        let ts = rfc3339(line.ts);
        out.push_str(&format!("{ts} {} {source}{attempt} {}\n", line.level.as_str(), line.message));
    }
    out
}

/// The first eight characters of a run id: enough to tell runs apart on one page.
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// How long ago `at` was, coarsely, as a list wants it: `just now`, `5 min ago`, `3 h ago`,
/// `2 days ago`; a month or more reads as the date.
pub fn ago(at: DateTime<Utc>, now_ms: f64) -> String {
    let secs = ((now_ms - at.timestamp_millis() as f64) / 1_000.0).max(0.0) as u64;
    match secs {
        0..45 => "just now".into(),
        45..3_600 => format!("{} min ago", (secs + 30) / 60),
        3_600..86_400 => format!("{} h ago", secs / 3_600),
        86_400..172_800 => "yesterday".into(),
        172_800..2_592_000 => format!("{} days ago", secs / 86_400),
        // Not `DateTime::format`: its formatting machinery costs the Wasm kilobytes.
        _ => format!("{}-{:02}-{:02}", at.year(), at.month(), at.day()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration_ms(0), "0 ms");
        assert_eq!(duration_ms(999), "999 ms");
        assert_eq!(duration_ms(1_000), "1.0 s");
        assert_eq!(duration_ms(4_249), "4.2 s");
        assert_eq!(duration_ms(59_960), "1 min 00 s");
        assert_eq!(duration_ms(125_000), "2 min 05 s");
        assert_eq!(duration_ms(3_780_000), "1 h 03 min");
    }

    #[test]
    fn elapsed_uses_now_while_running() {
        assert_eq!(elapsed(at(1_000), Some(at(3_500)), 0.0).as_deref(), Some("2.5 s"));
        assert_eq!(elapsed(at(1_000), None, 1_300.0).as_deref(), Some("300 ms"));
        assert_eq!(elapsed(at(1_000), None, 500.0), None);
        assert_eq!(between_ms(at(10), at(25)), Some(15));
        assert_eq!(between_ms(at(25), at(10)), None);
    }

    #[test]
    fn counts_and_ordinals_read_as_english() {
        assert_eq!(calls(1), "1 call");
        assert_eq!(calls(0), "0 calls");
        assert_eq!(calls(2), "2 calls");
        let ordinals: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 103, 111].into_iter().map(ordinal).collect();
        assert_eq!(ordinals, ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "103rd", "111th"]);
    }

    #[test]
    fn countdown_rounds_up_and_stops_at_zero() {
        assert_eq!(countdown(at(10_000), 7_001.0), "retrying in 3 s");
        assert_eq!(countdown(at(10_000), 9_999.0), "retrying in 1 s");
        assert_eq!(countdown(at(10_000), 10_000.0), "retrying now…");
        assert_eq!(countdown(at(10_000), 12_000.0), "retrying now…");
    }

    #[test]
    fn temperatures_parse_and_print_without_float_formatting() {
        assert_eq!(parse_temperature("0.7"), Some(0.7));
        assert_eq!(parse_temperature(".25"), Some(0.25));
        assert_eq!(parse_temperature("1"), Some(1.0));
        assert_eq!(parse_temperature("1.0"), Some(1.0));
        for bad in ["", ".", "1.5", "2", "-0.1", "0.1234", "abc", "0,5", "1e-1"] {
            assert_eq!(parse_temperature(bad), None, "{bad:?}");
        }
        assert_eq!(temperature(0.7), "0.7");
        assert_eq!(temperature(1.0), "1");
        assert_eq!(temperature(0.125), "0.125");
        assert_eq!(temperature(0.0), "0");
    }

    #[test]
    fn a_temperature_is_added_to_json_as_a_number() {
        #[derive(serde::Serialize)]
        struct Body {
            #[serde(skip_serializing_if = "Option::is_none")]
            prompt: Option<&'static str>,
        }
        let with = |prompt, t| json_with_temperature(&Body { prompt }, t);
        assert_eq!(with(Some("hi"), Some(0.7)), r#"{"prompt":"hi","temperature":0.7}"#);
        assert_eq!(with(None, Some(1.0)), r#"{"temperature":1}"#);
        assert_eq!(with(Some("hi"), None), r#"{"prompt":"hi"}"#);
    }

    #[test]
    fn log_times_show_milliseconds_in_the_readers_zone() {
        assert_eq!(clock_ms(at(42), 0), "00:00:00.042");
        assert_eq!(clock_ms(at(3_723_004), 60), "02:02:03.004");
        assert_eq!(clock_ms(at(1_000), -60), "23:00:01.000", "west of UTC wraps to the day before");
    }

    #[test]
    fn instants_print_as_rfc3339_in_utc_to_the_millisecond() {
        assert_eq!(rfc3339(at(1_042)), "1970-01-01T00:00:01.042Z");
        assert_eq!(rfc3339(at(1_764_591_000_000)), "2025-12-01T12:10:00.000Z");
        assert_eq!(rfc3339(at(-1)), "1969-12-31T23:59:59.999Z", "before the epoch counts back from midnight");
        for ms in [0, 1_042, 951_782_400_123, 1_764_591_000_000] {
            assert_eq!(rfc3339(at(ms)), at(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
    }

    #[test]
    fn a_log_file_has_one_line_per_entry_with_utc_millisecond_times() {
        let line = |seq, task, attempt, message: &str| LogEntry {
            seq,
            ts: at(1_042),
            level: common::LogLevel::Warn,
            task,
            attempt,
            message: message.into(),
        };
        let file =
            log_file(&[line(1, None, None, "start"), line(2, Some(common::TaskName::CallBedrock), Some(2), "slow")]);
        assert_eq!(
            file,
            "1970-01-01T00:00:01.042Z WARN flow start\n1970-01-01T00:00:01.042Z WARN call_bedrock #2 slow\n"
        );
    }

    #[test]
    fn costs_read_in_cents_and_small_ones_to_a_hundredth_of_a_cent() {
        assert_eq!(dollars(12.345), "$12.35");
        assert_eq!(dollars(0.01), "$0.01");
        assert_eq!(dollars(0.0), "$0.00");
        assert_eq!(dollars(0.00886), "$0.0089");
    }

    #[test]
    fn usage_and_stop_reasons_read_well() {
        assert_eq!(usage(&Usage { input_tokens: 12, output_tokens: 340 }), "12 in · 340 out");
        assert_eq!(stop_reason(&StopReason::MaxTokens), "max tokens reached");
        assert_eq!(stop_reason(&StopReason::Other("guardrail".into())), "guardrail");
    }

    #[test]
    fn ages_read_coarsely_and_turn_into_dates_after_a_month() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let later = |secs: f64| (1_700_000_000.0 + secs) * 1_000.0;
        assert_eq!(ago(at, later(-5.0)), "just now", "a clock slightly behind is not the future");
        assert_eq!(ago(at, later(44.0)), "just now");
        assert_eq!(ago(at, later(45.0)), "1 min ago");
        assert_eq!(ago(at, later(150.0)), "3 min ago", "rounded to the nearest minute");
        assert_eq!(ago(at, later(7_300.0)), "2 h ago");
        assert_eq!(ago(at, later(90_000.0)), "yesterday");
        assert_eq!(ago(at, later(5.0 * 86_400.0)), "5 days ago");
        assert_eq!(ago(at, later(40.0 * 86_400.0)), "2023-11-14");
    }
}
