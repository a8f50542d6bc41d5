//! What a run on the built-in emulator must end with, worked out from the emulator's documented
//! rules rather than by the server's own fold, so a test comparing against these fails when the
//! fold, the store or the stream gets the answer wrong in the same way everywhere.
//!
//! The emulator answers a prompt with [`reply_for`], streamed in word-sized chunks (a word and
//! the whitespace after it), and counts one token per chunk: input tokens are the prompt's
//! chunks (no system prompt is sent unless the run has one), output tokens the reply's.

use backend::emulator::reply_for;
use common::{Event, EventKind, Usage};

/// The emulator's token count of `text`: one per word-sized chunk, which for text holding at
/// least one word is its number of whitespace-separated words. Counted here, not with the
/// emulator's chunker, so a chunking bug shows.
pub fn tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap()
}

/// The usage a completed run of `prompt` (no system prompt, default token limit) reports.
pub fn usage_for(prompt: &str) -> Usage {
    Usage { input_tokens: tokens(prompt), output_tokens: tokens(&reply_for(prompt)) }
}

/// The response text spelled by a run's raw `delta` events of its last `call_bedrock` attempt,
/// read straight off the events (not through `RunDetail::fold`).
pub fn streamed_text(events: &[Event]) -> String {
    let last_attempt = events
        .iter()
        .filter_map(|e| if let EventKind::Delta { attempt, .. } = e.kind { Some(attempt) } else { None })
        .max();
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Delta { attempt, text } if Some(*attempt) == last_attempt => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The usage carried by a run's `model_result` event, read straight off the events.
pub fn reported_usage(events: &[Event]) -> Option<Usage> {
    events.iter().rev().find_map(|e| match &e.kind {
        EventKind::ModelResult { usage, .. } => *usage,
        _ => None,
    })
}
