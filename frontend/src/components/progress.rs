//! The run's progress: one line for all its tasks that opens onto the attempt chart and the
//! full task timeline. Closed on a narrow screen, so the answer stays above the fold; open on
//! a wide one, where the timeline sits beside the answer.

use common::TaskView;
use yew::prelude::*;

use super::attempt_chart::attempt_chart;
use super::timeline::task_timeline;
use crate::browser;
use crate::state::progress;

/// The width from which the run page lays the timeline beside the answer (as `style.css` does).
const WIDE: &str = "(min-width: 1100px)";

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ProgressProps {
    /// The run's tasks, in execution order.
    pub tasks: Vec<TaskView>,
    /// The current time in milliseconds, for countdowns and running bars.
    pub now: f64,
}

/// A disclosure whose summary is the one-line strip.
#[component]
pub fn RunProgress(props: &ProgressProps) -> Html {
    // Read once: after that the reader decides, and a re-render must not undo their choice.
    let open = *use_state(|| browser::media_matches(WIDE));
    html! {
        <details class="panel progress" id="progress" data-testid="progress" { open }>
            <summary id="progress-strip" data-testid="progress-strip">
                <span class="visually-hidden">{ "Tasks: " }</span>
                { progress::strip(&props.tasks, props.now) }
            </summary>
            { attempt_chart(&props.tasks, props.now) }
            { task_timeline(&props.tasks, props.now) }
        </details>
    }
}
