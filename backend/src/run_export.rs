//! Runs as files: one run as Markdown (its JSON is the detail itself), and the history as JSON
//! Lines or CSV, one line per run with its settings, prompt, response, usage, cost and timings.

use chrono::{DateTime, SecondsFormat, Utc};
use common::{BatchId, RunDetail, RunId, RunState, StopReason, Usage};
use serde::Serialize;

/// The CSV header, in the order [`csv_line`] writes the fields.
pub const CSV_HEADER: &str = "id,state,model_id,system,max_tokens,temperature,prompt,response,input_tokens,\
                              output_tokens,cost_usd,stop_reason,error,retries,created_at,started_at,\
                              finished_at,duration_ms,replay_of,batch_id\r\n";

#[derive(Serialize)]
struct JsonLine<'a> {
    id: RunId,
    state: RunState,
    model_id: &'a str,
    system: Option<&'a str>,
    max_tokens: u32,
    temperature: Option<f32>,
    prompt: &'a str,
    response: Option<&'a str>,
    usage: Option<Usage>,
    cost_usd: Option<f64>,
    stop_reason: Option<&'a StopReason>,
    error: Option<&'a str>,
    retries: u32,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    replay_of: Option<RunId>,
    batch_id: Option<BatchId>,
}

/// How long the run took from its first task to its end.
pub(crate) fn duration_ms(run: &RunDetail) -> Option<i64> {
    Some((run.finished_at? - run.started_at?).num_milliseconds())
}

/// A stop reason by its wire name (`end_turn`).
pub(crate) fn stop_reason_text(reason: &StopReason) -> String {
    serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The run as one line of JSON, with its newline.
pub fn json_line(run: &RunDetail) -> String {
    let line = JsonLine {
        id: run.id,
        state: run.state,
        model_id: &run.model_id,
        system: run.system.as_deref(),
        max_tokens: run.max_tokens,
        temperature: run.temperature,
        prompt: &run.prompt,
        response: run.response.as_deref(),
        usage: run.usage,
        cost_usd: run.cost_usd,
        stop_reason: run.stop_reason.as_ref(),
        error: run.error.as_deref(),
        retries: run.summary().retries,
        created_at: run.created_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        duration_ms: duration_ms(run),
        replay_of: run.replay_of,
        batch_id: run.batch_id,
    };
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    text
}

/// The run as one CSV record.
pub fn csv_line(run: &RunDetail) -> String {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)).unwrap_or_default();
    let text = |value: Option<String>| value.unwrap_or_default();
    crate::csv::record(&[
        run.id.to_string(),
        run.state.as_str().to_owned(),
        run.model_id.clone(),
        text(run.system.clone()),
        run.max_tokens.to_string(),
        text(run.temperature.map(|t| t.to_string())),
        run.prompt.clone(),
        text(run.response.clone()),
        text(run.usage.map(|u| u.input_tokens.to_string())),
        text(run.usage.map(|u| u.output_tokens.to_string())),
        text(run.cost_usd.map(|c| c.to_string())),
        text(run.stop_reason.as_ref().map(stop_reason_text)),
        text(run.error.clone()),
        run.summary().retries.to_string(),
        time(Some(run.created_at)),
        time(run.started_at),
        time(run.finished_at),
        text(duration_ms(run).map(|ms| ms.to_string())),
        text(run.replay_of.map(|id| id.to_string())),
        text(run.batch_id.map(|id| id.to_string())),
    ])
}

/// The run as a Markdown document: its facts in a table, then the system prompt, the prompt
/// (fenced, as written) and the response (Markdown, as the model wrote it).
pub fn markdown(run: &RunDetail) -> String {
    let mut facts = vec![("State", run.state.as_str().to_owned()), ("Model", format!("`{}`", run.model_id))];
    facts.push(("Max tokens", run.max_tokens.to_string()));
    if let Some(temperature) = run.temperature {
        facts.push(("Temperature", temperature.to_string()));
    }
    facts.push(("Created", run.created_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
    if let Some(finished) = run.finished_at {
        facts.push(("Finished", finished.to_rfc3339_opts(SecondsFormat::Millis, true)));
    }
    if let Some(ms) = duration_ms(run) {
        facts.push(("Took", format!("{ms} ms")));
    }
    if let Some(usage) = run.usage {
        facts.push(("Tokens", format!("{} in, {} out", usage.input_tokens, usage.output_tokens)));
    }
    if let Some(cost) = run.cost_usd {
        facts.push(("Estimated cost", format!("${cost:.6}")));
    }
    if let Some(reason) = &run.stop_reason {
        facts.push(("Stop reason", stop_reason_text(reason)));
    }
    if let Some(original) = run.replay_of {
        facts.push(("Replay of", format!("`{original}`")));
    }
    let mut doc = format!("# Run {}\n\n| | |\n| --- | --- |\n", run.id);
    for (name, value) in facts {
        doc.push_str(&format!("| {name} | {} |\n", value.replace('|', "\\|")));
    }
    if let Some(system) = &run.system {
        doc.push_str(&format!("\n## System prompt\n\n{}\n", fenced(system)));
    }
    doc.push_str(&format!("\n## Prompt\n\n{}\n", fenced(&run.prompt)));
    if let Some(response) = &run.response {
        doc.push_str(&format!("\n## Response\n\n{}\n", response.trim_end()));
    }
    if let Some(error) = &run.error {
        doc.push_str(&format!("\n## Error\n\n{}\n", fenced(error)));
    }
    doc
}

/// The text in a code fence longer than any run of backticks inside it, so nothing in the
/// text can close it.
fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{}\n{fence}", text.trim_end_matches('\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_longer_than_any_backtick_run_in_the_text() {
        assert_eq!(fenced("plain"), "```text\nplain\n```");
        assert_eq!(fenced("has ```` four"), "`````text\nhas ```` four\n`````");
    }

    #[test]
    fn the_csv_header_names_every_field() {
        assert_eq!(CSV_HEADER.trim_end().split(',').count(), 20);
    }
}
