//! The history: recent runs, newest first, updated live from every run's events.

use common::{RunState, RunSummary};
use yew::prelude::*;

use super::badge::StateBadge;
use super::connection::ConnectionIndicator;
use crate::api::{self, StreamTarget};
use crate::browser::{self, target_value};
use crate::format;
use crate::hooks::{StreamMessage, use_event_stream, use_now};
use crate::router::{Link, Route};
use crate::state::Load;
use crate::state::history::{History, HistoryAction, PAGE_SIZE};

/// Running rows show a growing duration; a second is precise enough for a list.
const LIST_TICK_MS: u32 = 1_000;

/// The recent-runs list with its state filter and "load more".
#[component]
pub fn HistoryPanel() -> Html {
    let history = use_reducer(History::default);

    {
        let dispatcher = history.dispatcher();
        let filter = history.filter;
        use_effect_with(history.generation, move |&generation| {
            wasm_bindgen_futures::spawn_local(async move {
                dispatcher.dispatch(match api::runs(PAGE_SIZE, filter, None).await {
                    Ok(runs) => HistoryAction::Loaded { generation, filter, runs },
                    Err(error) => HistoryAction::Failed(error.to_string()),
                });
            });
        });
    }

    let on_message = {
        let dispatcher = history.dispatcher();
        Callback::from(move |message: StreamMessage| match message {
            // Events sent before the socket (re)opened are not replayed for the list: fetching
            // it again once the socket is open is the resync (events meanwhile are buffered).
            StreamMessage::Opened { .. } => dispatcher.dispatch(HistoryAction::Refresh),
            StreamMessage::Event(event) => dispatcher.dispatch(HistoryAction::Event(event)),
        })
    };
    let connection = use_event_stream(Some(StreamTarget::AllRuns), on_message);
    let any_running = history.runs().iter().any(|run| !run.state.is_terminal());
    let now = use_now(any_running, LIST_TICK_MS);

    let onfilter = {
        let dispatcher = history.dispatcher();
        Callback::from(move |event: Event| {
            let filter = target_value(&event).parse::<RunState>().ok();
            dispatcher.dispatch(HistoryAction::SetFilter(filter));
        })
    };
    let onmore = {
        let dispatcher = history.dispatcher();
        let (filter, cursor) = (history.filter, history.cursor());
        Callback::from(move |_: MouseEvent| {
            let dispatcher = dispatcher.clone();
            dispatcher.dispatch(HistoryAction::LoadingMore);
            wasm_bindgen_futures::spawn_local(async move {
                dispatcher.dispatch(match api::runs(PAGE_SIZE, filter, cursor).await {
                    Ok(runs) => HistoryAction::MoreLoaded { filter, runs },
                    Err(error) => HistoryAction::Failed(error.to_string()),
                });
            });
        })
    };
    let onretry = {
        let dispatcher = history.dispatcher();
        Callback::from(move |_: MouseEvent| dispatcher.dispatch(HistoryAction::Refresh))
    };

    let body = match &history.listing {
        Load::Loading => html! {
            <p class="loading" data-testid="history-loading" aria-busy="true">{ "Loading runs…" }</p>
        },
        Load::Failed(error) => html! {
            <div class="error-state" data-testid="history-error" role="alert">
                <p>{ "Could not load the history: " }{ error.clone() }</p>
                <button type="button" onclick={ onretry }>{ "Try again" }</button>
            </div>
        },
        Load::Ready(listing) if listing.runs.is_empty() => html! {
            <p class="empty-state" id="history-empty" data-testid="history-empty">
                { match history.filter {
                    None => "No runs yet. Write a prompt to start the first one.".to_owned(),
                    Some(state) => format!("No {} runs.", state.as_str().to_lowercase()),
                } }
            </p>
        },
        Load::Ready(listing) => html! {
            <ol class="history-list" id="history-list" data-testid="history-list">
                { for listing.runs.iter().map(|run| history_row(run, now)) }
            </ol>
        },
    };
    // "Load more" shows only under a listed page that may have older runs; `Some(busy)` then.
    let more = history.listing.ready().filter(|listing| listing.has_more).map(|listing| listing.loading_more);

    html! {
        <section class="panel history" id="history" aria-labelledby="history-heading">
            <div class="panel-head">
                <h2 id="history-heading">{ "History" }</h2>
                <ConnectionIndicator connection={ connection.state } />
            </div>
            <div class="filter-row">
                <label for="history-state-filter">{ "State" }</label>
                <select id="history-state-filter" data-testid="history-state-filter" onchange={ onfilter }>
                    <option value="" selected={ history.filter.is_none() }>{ "All" }</option>
                    { for RunState::ALL.iter().map(|state| html! {
                        <option value={ state.as_str() } selected={ history.filter == Some(*state) }>
                            { state.as_str() }
                        </option>
                    }) }
                </select>
            </div>
            { body }
            if let Some(loading_more) = more {
                <button type="button" class="load-more" id="load-more" data-testid="load-more"
                        disabled={ loading_more } onclick={ onmore }>
                    { if loading_more { "Loading…" } else { "Load older runs" } }
                </button>
            }
        </section>
    }
}

/// One row: badge, preview, local time, duration, tokens; the whole row links to the run.
fn history_row(run: &RunSummary, now: f64) -> Html {
    let duration = run.started_at.and_then(|start| format::elapsed(start, run.finished_at, now));
    let tokens = run.usage.map(|usage| format!("{} tokens", usage.input_tokens + usage.output_tokens));
    let preview = if run.prompt_preview.is_empty() { "(empty prompt)".to_owned() } else { run.prompt_preview.clone() };
    html! {
        <li key={ run.id.to_string() } class="history-row" data-testid="history-row"
            data-run-id={ run.id.to_string() } data-state={ run.state.as_str() }>
            <Link to={ Route::Run { id: run.id.to_string() } } classes="row-link">
                <StateBadge state={ run.state.as_str() } />
                <span class="preview" data-testid="history-preview">{ preview }</span>
                <span class="row-meta">
                    <time datetime={ run.created_at.to_rfc3339() } data-testid="history-created">
                        { browser::local_time(run.created_at) }
                    </time>
                    <span data-testid="history-duration">{ duration.unwrap_or_else(|| "—".into()) }</span>
                    if let Some(tokens) = tokens { <span data-testid="history-tokens">{ tokens }</span> }
                </span>
            </Link>
        </li>
    }
}
