//! Where a run came from and what was made from it: "Made from run …" and its replays.

use common::RunId;
use yew::prelude::*;

use crate::format;
use crate::router::{Link, Route};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct LineageProps {
    /// The run this one was made from.
    pub replay_of: Option<RunId>,
    /// Runs made from this one, oldest first.
    pub replays: Vec<RunId>,
}

fn run_link(id: RunId) -> Html {
    html! {
        <Link to={ Route::Run { id: id.to_string() } } classes="run-link">
            <code title={ id.to_string() }>{ format::short_id(&id.to_string()) }</code>
        </Link>
    }
}

/// Links both ways between a run and the runs made from it; nothing when there are none.
#[component]
pub fn Lineage(props: &LineageProps) -> Html {
    if props.replay_of.is_none() && props.replays.is_empty() {
        return Html::default();
    }
    let last = props.replays.len().saturating_sub(1);
    html! {
        <div class="lineage" data-testid="lineage">
            if let Some(source) = props.replay_of {
                <p id="replay-of" data-testid="replay-of">{ "Made from run " }{ run_link(source) }</p>
            }
            if !props.replays.is_empty() {
                <p id="replays" data-testid="replays">
                    { if props.replays.len() == 1 { "Run again as " } else { "Runs made from this one: " } }
                    { for props.replays.iter().enumerate().map(|(i, &id)| html! {
                        <>{ run_link(id) }{ if i < last { ", " } else { "" } }</>
                    }) }
                </p>
            }
        </div>
    }
}
