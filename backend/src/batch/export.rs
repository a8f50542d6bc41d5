//! A batch's results as JSON Lines or CSV: per item its input, values, response, usage, state,
//! error and timings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::{BatchItem, ItemState, RunDetail, RunId, Usage};

use crate::run_export::{duration_ms, stop_reason_text};
use serde::Serialize;

/// One item and its run, once started.
#[derive(Debug, Clone)]
pub struct Row {
    pub item: BatchItem,
    pub run: Option<RunDetail>,
}

/// The CSV header, in the order [`csv_line`] writes the fields.
pub const CSV_HEADER: &str = "index,state,run_id,prompt,variables,response,input_tokens,output_tokens,stop_reason,\
                              error,created_at,started_at,finished_at,duration_ms\r\n";

#[derive(Serialize)]
struct JsonLine<'a> {
    index: u32,
    state: ItemState,
    run_id: Option<RunId>,
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variables: Option<&'a BTreeMap<String, String>>,
    response: Option<&'a str>,
    usage: Option<Usage>,
    stop_reason: Option<String>,
    error: Option<&'a str>,
    created_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
}

fn stop_reason(run: &RunDetail) -> Option<String> {
    run.stop_reason.as_ref().map(stop_reason_text)
}

/// The row as one line of JSON, with its newline.
pub fn json_line(row: &Row) -> String {
    let run = row.run.as_ref();
    let line = JsonLine {
        index: row.item.index,
        state: row.item.state,
        run_id: row.item.run_id,
        prompt: &row.item.prompt,
        variables: row.item.variables.as_ref(),
        response: run.and_then(|r| r.response.as_deref()),
        usage: run.and_then(|r| r.usage),
        stop_reason: run.and_then(stop_reason),
        error: run.and_then(|r| r.error.as_deref()),
        created_at: run.map(|r| r.created_at),
        started_at: run.and_then(|r| r.started_at),
        finished_at: run.and_then(|r| r.finished_at),
        duration_ms: run.and_then(duration_ms),
    };
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    text
}

/// The row as one CSV record (RFC 4180: quoted when needed, CRLF line ends).
pub fn csv_line(row: &Row) -> String {
    let run = row.run.as_ref();
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let variables = row.item.variables.as_ref().and_then(|v| serde_json::to_string(v).ok()).unwrap_or_default();
    let fields = [
        row.item.index.to_string(),
        row.item.state.as_str().to_owned(),
        row.item.run_id.map(|id| id.to_string()).unwrap_or_default(),
        row.item.prompt.clone(),
        variables,
        run.and_then(|r| r.response.clone()).unwrap_or_default(),
        number(run.and_then(|r| r.usage).map(|u| i64::from(u.input_tokens))),
        number(run.and_then(|r| r.usage).map(|u| i64::from(u.output_tokens))),
        run.and_then(stop_reason).unwrap_or_default(),
        run.and_then(|r| r.error.clone()).unwrap_or_default(),
        time(run.map(|r| r.created_at)),
        time(run.and_then(|r| r.started_at)),
        time(run.and_then(|r| r.finished_at)),
        number(run.and_then(duration_ms)),
    ];
    crate::csv::record(&fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(prompt: &str) -> Row {
        Row {
            item: BatchItem {
                index: 3,
                prompt: prompt.into(),
                variables: None,
                state: ItemState::Queued,
                run_id: None,
            },
            run: None,
        }
    }

    #[test]
    fn a_queued_item_exports_its_input_and_empty_results() {
        assert_eq!(csv_line(&queued("plain")), "3,Queued,,plain,,,,,,,,,,\r\n");
        assert_eq!(
            json_line(&queued("plain")),
            "{\"index\":3,\"state\":\"Queued\",\"run_id\":null,\"prompt\":\"plain\",\"response\":null,\
             \"usage\":null,\"stop_reason\":null,\"error\":null,\"created_at\":null,\"started_at\":null,\
             \"finished_at\":null,\"duration_ms\":null}\n"
        );
    }

    #[test]
    fn csv_fields_with_commas_quotes_or_line_breaks_are_quoted() {
        assert_eq!(csv_line(&queued("a, \"b\"\nc")), "3,Queued,,\"a, \"\"b\"\"\nc\",,,,,,,,,,\r\n");
        assert_eq!(CSV_HEADER.split(',').count(), 14, "one name per field");
    }
}
