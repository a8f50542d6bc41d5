//! Reading RFC 3339 timestamps off the wire. chrono's own parser handles every format it
//! knows, and weighs about 5 KB of the page's compressed Wasm; the wire only ever carries RFC
//! 3339, which this reads in a few dozen lines. Writing stays chrono's.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde::de::{Deserializer, Error};

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, as RFC 3339 has it (`t`, `z` and a space
/// separator accepted, a fraction of any length, beyond nanoseconds ignored).
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let number = |from: usize, len: usize| -> Option<u32> {
        let digits = bytes.get(from..from + len)?;
        digits.iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| bytes.get(i) == Some(&c);
    if !(at(4, b'-')
        && at(7, b'-')
        && matches!(bytes.get(10), Some(b'T' | b't' | b' '))
        && at(13, b':')
        && at(16, b':'))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(bytes[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match bytes.get(i)? {
        b'Z' | b'z' if i + 1 == bytes.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == bytes.len() && at(i + 3, b':') => {
            let secs = i64::from(number(i + 1, 2)? * 3600 + number(i + 4, 2)? * 60);
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    // A leap second (`:60`) reads as the last nanosecond of its minute, as chrono stores it.
    let (second, nanos) = if second == 60 { (59, nanos + 1_000_000_000) } else { (second, nanos) };
    let local = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?;
    Some(local.and_utc() - chrono::TimeDelta::seconds(offset_secs))
}

/// `YYYY-MM-DD`, a calendar date (chrono's `NaiveDate` parser would bring its whole format
/// machinery into the page).
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let number = |from: usize, len: usize| -> Option<u32> {
        let digits = bytes.get(from..from + len)?;
        digits.iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(number(0, 4)?).ok()?, number(5, 2)?, number(8, 2)?)
}

/// A calendar date as `YYYY-MM-DD`, without chrono's formatter.
pub fn date_text(date: NaiveDate) -> String {
    use chrono::Datelike;
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

/// For `#[serde(deserialize_with = …)]` on a `NaiveDate`.
pub fn deserialize_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_date(&text).ok_or_else(|| D::Error::custom(format_args!("`{text}` is not a date (YYYY-MM-DD)")))
}

/// For `#[serde(default, deserialize_with = …)]` on an `Option<NaiveDate>`.
pub fn deserialize_date_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<NaiveDate>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => parse_date(&text)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format_args!("`{text}` is not a date (YYYY-MM-DD)"))),
    }
}

/// For `#[serde(deserialize_with = …)]` on a `DateTime<Utc>`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_rfc3339(&text).ok_or_else(|| D::Error::custom(format_args!("`{text}` is not an RFC 3339 timestamp")))
}

/// For `#[serde(default, deserialize_with = …)]` on an `Option<DateTime<Utc>>`.
pub fn deserialize_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => parse_rfc3339(&text)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format_args!("`{text}` is not an RFC 3339 timestamp"))),
    }
}

#[cfg(test)]
mod tests {
    use chrono::SecondsFormat;

    use super::*;

    #[test]
    fn reads_what_chrono_writes_at_every_precision() {
        let at = DateTime::from_timestamp(1_764_682_077, 844_598_941).unwrap_or_default();
        for format in [SecondsFormat::Secs, SecondsFormat::Millis, SecondsFormat::Micros, SecondsFormat::Nanos] {
            for z in [true, false] {
                let text = at.to_rfc3339_opts(format, z);
                let expected: DateTime<Utc> = text.parse().unwrap_or_default();
                assert_eq!(parse_rfc3339(&text), Some(expected), "{text}");
            }
        }
        let json = serde_json::to_string(&at).unwrap_or_default();
        assert_eq!(parse_rfc3339(json.trim_matches('"')), Some(at), "serde's own form");
    }

    #[test]
    fn offsets_fractions_and_separators_follow_rfc_3339() {
        let utc = |text: &str| parse_rfc3339(text).map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true));
        assert_eq!(utc("2026-12-02T13:00:00+01:30").as_deref(), Some("2026-12-02T11:30:00.000000000Z"));
        assert_eq!(utc("2026-12-02t01:00:00-02:00").as_deref(), Some("2026-12-02T03:00:00.000000000Z"));
        assert_eq!(utc("2026-12-02 13:00:00.1z").as_deref(), Some("2026-12-02T13:00:00.100000000Z"));
        assert_eq!(utc("2026-12-02T13:00:00.1234567891234Z").as_deref(), Some("2026-12-02T13:00:00.123456789Z"));
    }

    #[test]
    fn dates_read_and_write_as_yyyy_mm_dd() {
        let date = parse_date("2026-02-28").expect("a date");
        assert_eq!(date, NaiveDate::from_ymd_opt(2026, 2, 28).expect("valid"));
        assert_eq!(date_text(date), "2026-02-28");
        for bad in ["2026-02-30", "2026-2-28", "2026/02/28", "2026-02-28T00:00:00Z", ""] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "2026-12-02",
            "2026-12-02T13:00:00",
            "2026-12-02T13:00:00.Z",
            "2026-13-02T13:00:00Z",
            "2026-02-30T13:00:00Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T13:00:00+0100",
            "2026-12-02T13:00:00Zjunk",
            "２０２６-12-02T13:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text:?}");
        }
    }
}
