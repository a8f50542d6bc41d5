//! The verdict line on a finished run: what happened and the next step, the service's own
//! message beneath it, and the one action that fits (more tokens for an answer cut at the limit).

use yew::prelude::*;

use crate::state::verdict::{Tone, Verdict};

/// One line in plain words; a failure is announced, a cancellation or a note only shown.
/// `on_more_tokens` is "Run again with more tokens", when the verdict calls for it and the limit
/// allows it; `busy` disables it while an action is under way.
pub fn verdict_line(verdict: &Verdict, on_more_tokens: Option<Callback<MouseEvent>>, busy: bool) -> Html {
    let tone = verdict.tone.as_str();
    let role = if verdict.tone == Tone::Failure { "alert" } else { "status" };
    html! {
        <div class={ classes!("verdict", format!("verdict-{tone}")) } id="verdict" data-testid="verdict"
             data-tone={ tone } role={ role }>
            <p class="verdict-summary" data-testid="verdict-summary">
                { verdict.summary.clone() }
                if let (true, Some(onclick)) = (verdict.more_tokens, on_more_tokens) {
                    { " " }
                    <button type="button" id="rerun-more-tokens" data-testid="rerun-more-tokens" class="small"
                            disabled={ busy } {onclick}>{ "Run again with more tokens" }</button>
                }
            </p>
            if let Some(message) = &verdict.message {
                <p class="verdict-message" data-testid="verdict-message">{ message.clone() }</p>
            }
        </div>
    }
}
