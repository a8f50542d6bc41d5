//! The attempts of a run and the waits between them as bars on one time axis, as schedulers'
//! run views draw them; each bar says in words what it shows.

use common::TaskView;
use yew::prelude::*;

use crate::format;
use crate::state::progress::{self, Bar};

/// One row of bars per task, under a common axis from the first attempt's start; nothing
/// before any attempt started. A running attempt's bar ends at `now` (ms).
pub fn attempt_chart(tasks: &[TaskView], now: f64) -> Html {
    let Some(chart) = progress::chart(tasks, now) else { return Html::default() };
    html! {
        <figure class="chart" id="attempt-chart" data-testid="attempt-chart">
            { for chart.rows.into_iter().map(|(name, bars)| html! {
                <div class="chart-row">
                    <span class="chart-name">{ name }</span>
                    <ol class="chart-track" aria-label={ name }>{ for bars.into_iter().map(bar) }</ol>
                </div>
            }) }
            <figcaption class="chart-axis muted">
                <span>{ "0" }</span>
                <span class="visually-hidden">{ " to " }</span>
                <span>{ format::duration_ms(chart.span_ms) }</span>
            </figcaption>
        </figure>
    }
}

fn bar(bar: Bar) -> Html {
    let kind = bar.state.map_or("wait", |state| state.as_str());
    let style = format!("left:{};width:{}", progress::percent(bar.start), progress::percent(bar.width));
    html! {
        <li class={ format!("bar bar-{}", kind.to_ascii_lowercase()) } data-testid="chart-bar" data-kind={ kind }
            style={ style } title={ bar.label.clone() }>
            <span class="visually-hidden">{ bar.label }</span>
        </li>
    }
}
