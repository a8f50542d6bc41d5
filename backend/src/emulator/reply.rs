//! The emulator's deterministic answer: the reply text, its stream chunks and its token counts.
//!
//! Nothing here is random or time-dependent, so a test can compute the exact response a run
//! must end with by calling [`reply_for`] on its prompt.

/// Why the emulated model stopped, named as the Converse API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The whole reply was produced.
    EndTurn,
    /// The reply was cut at the request's token limit.
    MaxTokens,
}

impl StopReason {
    /// The wire name, the same in Converse and in the Anthropic Messages body.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
        }
    }
}

/// Returns the emulator's full reply to `prompt`: it quotes the prompt verbatim and carries a Markdown list.
pub fn reply_for(prompt: &str) -> String {
    let words = prompt.split_whitespace().count();
    let chars = prompt.chars().count();
    format!(
        "You asked: \"{prompt}\"\n\n\
         This reply comes from the **built-in Bedrock emulator**, not from Claude. \
         It is derived from your prompt alone, so the same prompt always gets the same answer:\n\n\
         - your prompt has {words} words and {chars} characters\n\
         - no request left this machine\n\
         - the text streams in word-sized chunks, like a real model\n"
    )
}

/// Splits `text` into word-sized chunks (a word and the whitespace after it) that concatenate back to `text`.
pub(crate) fn chunks(text: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // A chunk ends where whitespace gives way to the next word, so leading whitespace stays
        // with the first chunk and nothing is ever dropped.
        let (mut seen_word, mut seen_space) = (false, false);
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                let space = c.is_whitespace();
                let boundary = seen_space && !space;
                seen_word |= !space;
                seen_space |= space && seen_word;
                boundary
            })
            .map_or(rest.len(), |(i, _)| i);
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// The emulator's deterministic token count of `text`: one token per chunk.
pub(crate) fn count_tokens(text: &str) -> u32 {
    u32::try_from(chunks(text).count()).unwrap_or(u32::MAX)
}

/// One emulated model answer: the text actually produced, chunked, with its usage and stop reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Completion {
    /// The produced text (the reply, possibly cut at the token limit).
    pub(crate) text: String,
    /// Byte offsets where each chunk of `text` ends; one output token per chunk.
    chunk_ends: Vec<usize>,
    /// Tokens of the prompt, the system prompt and earlier turns.
    pub(crate) input_tokens: u32,
    pub(crate) stop_reason: StopReason,
}

impl Completion {
    /// Answers `prompt` (the last user turn), counting `context_tokens` of input besides it,
    /// and stopping after `max_tokens` chunks.
    pub(crate) fn new(prompt: &str, context_tokens: u32, max_tokens: u32) -> Self {
        let mut text = reply_for(prompt);
        let limit = usize::try_from(max_tokens).unwrap_or(usize::MAX);
        let mut chunk_ends = Vec::new();
        let mut end = 0;
        let mut stop_reason = StopReason::EndTurn;
        for chunk in chunks(&text) {
            if chunk_ends.len() == limit {
                stop_reason = StopReason::MaxTokens;
                break;
            }
            end += chunk.len();
            chunk_ends.push(end);
        }
        text.truncate(end);
        Completion { text, chunk_ends, input_tokens: count_tokens(prompt).saturating_add(context_tokens), stop_reason }
    }

    /// The produced text in stream order; concatenated they equal [`Completion::text`].
    pub(crate) fn chunks(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.chunk_ends.iter().enumerate().map(|(i, &end)| {
            let start = i.checked_sub(1).and_then(|prev| self.chunk_ends.get(prev)).copied().unwrap_or(0);
            &self.text[start..end]
        })
    }

    /// Output tokens: the number of chunks produced.
    pub(crate) fn output_tokens(&self) -> u32 {
        u32::try_from(self.chunk_ends.len()).unwrap_or(u32::MAX)
    }

    /// Input plus output tokens, what a tokens-per-minute quota counts.
    pub(crate) fn total_tokens(&self) -> u32 {
        self.input_tokens.saturating_add(self.output_tokens())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_reply_quotes_the_prompt_verbatim_even_when_it_is_html() {
        let prompt = "<script>alert('x')</script> & **bold**";
        assert!(reply_for(prompt).contains(prompt));
        assert!(reply_for(prompt).contains("built-in Bedrock emulator"));
        assert!(reply_for(prompt).contains("\n- "));
    }

    #[test]
    fn the_reply_is_deterministic() {
        assert_eq!(reply_for("same"), reply_for("same"));
        assert_ne!(reply_for("one"), reply_for("two"));
    }

    #[test]
    fn chunks_are_words_with_their_trailing_whitespace() {
        assert_eq!(chunks("  hello big\n\nworld ").collect::<Vec<_>>(), ["  hello ", "big\n\n", "world "]);
        assert_eq!(chunks("").count(), 0);
    }

    #[test]
    fn a_reply_within_the_limit_ends_the_turn() {
        let completion = Completion::new("hi", 2, 10_000);
        assert_eq!(completion.text, reply_for("hi"));
        assert_eq!(completion.stop_reason, StopReason::EndTurn);
        assert_eq!(completion.input_tokens, 3);
        assert_eq!(completion.output_tokens(), count_tokens(&reply_for("hi")));
    }

    #[test]
    fn a_reply_over_the_limit_is_cut_at_max_tokens() {
        let completion = Completion::new("hi", 0, 3);
        assert_eq!(completion.stop_reason, StopReason::MaxTokens);
        assert_eq!(completion.output_tokens(), 3);
        assert_eq!(completion.chunks().collect::<Vec<_>>(), chunks(&reply_for("hi")).take(3).collect::<Vec<_>>());
        assert!(reply_for("hi").starts_with(&completion.text));
    }

    proptest! {
        #[test]
        fn chunks_concatenate_back_to_the_text(text in "\\PC{0,80}") {
            prop_assert_eq!(chunks(&text).collect::<String>(), text.as_str());
            prop_assert!(chunks(&text).all(|c| !c.is_empty()));
        }

        #[test]
        fn completion_chunks_concatenate_to_its_text(prompt in "\\PC{0,40}", max in 1u32..40) {
            let completion = Completion::new(&prompt, 0, max);
            prop_assert_eq!(completion.chunks().collect::<String>(), completion.text.as_str());
            prop_assert_eq!(completion.chunks().len() as u32, completion.output_tokens());
            prop_assert!(completion.output_tokens() <= max);
        }
    }
}
