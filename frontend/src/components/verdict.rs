//! The verdict line on a finished run: what happened and the next step, the service's own
//! message beneath it, and the one action that fits (more tokens for an answer cut at the limit).

use yew::prelude::*;

use crate::state::verdict::{Tone, Verdict};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct VerdictProps {
    pub verdict: Verdict,
    /// "Run again with more tokens", when the verdict calls for it and the limit allows it.
    #[prop_or_default]
    pub on_more_tokens: Option<Callback<MouseEvent>>,
    /// Whether an action is under way (the button is disabled meanwhile).
    #[prop_or_default]
    pub busy: bool,
}

/// One line in plain words; a failure is announced, a cancellation or a note only shown.
#[component]
pub fn VerdictLine(props: &VerdictProps) -> Html {
    let verdict = &props.verdict;
    let tone = verdict.tone.as_str();
    let role = if verdict.tone == Tone::Failure { "alert" } else { "status" };
    html! {
        <div class={ classes!("verdict", format!("verdict-{tone}")) } id="verdict" data-testid="verdict"
             data-tone={ tone } role={ role }>
            <p class="verdict-summary" data-testid="verdict-summary">
                { verdict.summary.clone() }
                if let (true, Some(onclick)) = (verdict.more_tokens, props.on_more_tokens.clone()) {
                    { " " }
                    <button type="button" id="rerun-more-tokens" data-testid="rerun-more-tokens" class="small"
                            disabled={ props.busy } {onclick}>{ "Run again with more tokens" }</button>
                }
            </p>
            if let Some(message) = &verdict.message {
                <p class="verdict-message" data-testid="verdict-message">{ message.clone() }</p>
            }
        </div>
    }
}
