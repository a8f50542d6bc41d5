//! Where a run came from and what was made from it: "Made from run …" and its replays.

use common::RunId;
use yew::prelude::*;

use crate::format;
use crate::router::{Link, Route};

fn run_link(id: RunId) -> Html {
    html! {
        <Link to={ Route::Run { id: id.to_string() } } classes="run-link">
            <code title={ id.to_string() }>{ format::short_id(&id.to_string()) }</code>
        </Link>
    }
}

/// Links both ways between a run and the run it was made from (`replay_of`) and those made
/// from it (`replays`, oldest first); nothing when there are none.
pub fn lineage(replay_of: Option<RunId>, replays: &[RunId]) -> Html {
    if replay_of.is_none() && replays.is_empty() {
        return Html::default();
    }
    let last = replays.len().saturating_sub(1);
    html! {
        <div class="lineage" data-testid="lineage">
            if let Some(source) = replay_of {
                <p id="replay-of" data-testid="replay-of">{ "Made from run " }{ run_link(source) }</p>
            }
            if !replays.is_empty() {
                <p id="replays" data-testid="replays">
                    { if replays.len() == 1 { "Run again as " } else { "Runs made from this one: " } }
                    { for replays.iter().enumerate().map(|(i, &id)| html! {
                        <>{ run_link(id) }{ if i < last { ", " } else { "" } }</>
                    }) }
                </p>
            }
        </div>
    }
}
