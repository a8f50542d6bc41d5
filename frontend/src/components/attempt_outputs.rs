//! Every `call_bedrock` attempt's output, under the response: what a cut-off attempt said stays
//! readable after its retry replaced it.

use common::{RunDetail, TaskName};
use yew::prelude::*;

use crate::state::outputs::AttemptOutputs;
use crate::state::partial;

/// A closed disclosure listing each attempt that wrote text, with what became of it; shown
/// only once there is more than the answer on screen (a second attempt, or a cut one).
pub fn attempt_output_list(detail: &RunDetail, outputs: &AttemptOutputs) -> Html {
    let attempts: Vec<(u32, &str)> = outputs.all().collect();
    let current = detail.current_attempt(TaskName::CallBedrock);
    let only_the_answer = attempts.len() == 1 && Some(attempts[0].0) == current;
    if attempts.is_empty() || only_the_answer {
        return Html::default();
    }
    html! {
        <details class="attempt-outputs" id="attempt-outputs" data-testid="attempt-outputs">
            <summary>{ format!("Output of each attempt ({})", attempts.len()) }</summary>
            <ol>
                { for attempts.into_iter().map(|(number, text)| html! {
                    <li data-testid="attempt-output" data-attempt={ number.to_string() }>
                        <p class="attempt-output-head">
                            <strong>{ format!("Attempt {number}") }</strong>
                            <span class="muted">{ format!(" · {}", partial::attempt_fate(detail, number)) }</span>
                        </p>
                        <pre class="attempt-output-text" data-testid="attempt-output-text">{ text.to_owned() }</pre>
                    </li>
                }) }
            </ol>
        </details>
    }
}
