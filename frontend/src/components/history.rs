//! The history: a page of runs as a compact table, newest first, updated live from every run's
//! events. In full (the history page) with its filters and paging, which live in the URL; short
//! (the home page) as the latest few runs.

use common::{RunState, RunSummary, RunTotals};
use yew::prelude::*;

use super::badge::state_badge;
use super::connection::connection_indicator;
use crate::api::{self, StreamTarget};
use crate::browser::{self, target_value};
use crate::format;
use crate::hooks::{LiveConnection, StreamMessage, use_event_stream, use_now};
use crate::router::{Link, Navigate, Route, use_navigate};
use crate::state::Load;
use crate::state::history::{History, HistoryAction};
use crate::state::history_query::{
    Cursor, HistoryFilter, HistoryQuery, day_text, highlight, parse_day, snippet_pieces,
};
use crate::state::models::CatalogState;
use crate::state::{HealthState, models};

/// Running rows show a growing duration, and ages move on; a second is precise enough.
const LIST_TICK_MS: u32 = 1_000;
/// The reason a run failed, as far as one table row shows it.
const REASON_CHARS: usize = 90;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct HistoryPanelProps {
    pub query: HistoryQuery,
    pub page_size: usize,
    /// The history page's filters and paging, rather than the home page's short list.
    #[prop_or_default]
    pub full: bool,
    /// Told whenever the live connection's state changes, for a page that shows a notice and
    /// holds back actions while it is lost (the panel owns the page's only socket).
    #[prop_or_default]
    pub on_connection: Option<Callback<LiveConnection>>,
}

#[component]
pub fn HistoryPanel(props: &HistoryPanelProps) -> Html {
    let history = {
        let (query, page_size) = (props.query.clone(), props.page_size);
        use_reducer(move || History::new(query, page_size))
    };

    // The page's query for the list; the totals and the export take the same (they ignore its
    // size and cursor).
    let parameters = history.query.api_parameters(history.page_size, browser::utc_offset_min);
    {
        let dispatcher = history.dispatcher();
        let parameters = parameters.clone();
        use_effect_with(history.generation, move |&generation| {
            wasm_bindgen_futures::spawn_local(async move {
                dispatcher.dispatch(match api::runs(&parameters).await {
                    Ok(runs) => HistoryAction::Loaded { generation, runs },
                    Err(error) => HistoryAction::Failed(error.to_string()),
                });
            });
        });
    }

    // What the whole filtered history used and cost, read again whenever the page is, and as
    // runs end (their usage is known then).
    let totals = use_state(|| None::<RunTotals>);
    {
        let totals = totals.clone();
        let parameters = parameters.clone();
        let ended = match &history.listing {
            Load::Ready(listing) => listing.runs.iter().filter(|r| r.state.is_terminal()).count(),
            _ => 0,
        };
        use_effect_with((props.full, history.generation, ended), move |&(full, _, _)| {
            if full {
                wasm_bindgen_futures::spawn_local(async move {
                    totals.set(api::run_totals(&parameters).await.ok());
                });
            }
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
    {
        let (on_connection, connection) = (props.on_connection.clone(), connection.clone());
        use_effect_with(connection.state, move |_| {
            if let Some(on_connection) = on_connection {
                on_connection.emit(connection);
            }
        });
    }
    let now = use_now(true, LIST_TICK_MS);
    let navigate = use_navigate();
    let health = use_context::<HealthState>().unwrap_or(HealthState::Loading);
    let catalog = use_context::<CatalogState>().unwrap_or_default();
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
            <p class="empty-state" id="history-empty" data-testid="history-empty">{ empty_text(&history.query) }</p>
        },
        Load::Ready(listing) => html! {
            <table class="history-table" id="history-list" data-testid="history-list">
                <thead>
                    <tr>
                        <th scope="col">{ "State" }</th>
                        <th scope="col">{ "Prompt" }</th>
                        <th scope="col">{ "Model" }</th>
                        <th scope="col" class="num">{ "Retries" }</th>
                        <th scope="col">{ "Created" }</th>
                        <th scope="col" class="num">{ "Took" }</th>
                        <th scope="col" class="num">{ "Tokens" }</th>
                    </tr>
                </thead>
                <tbody>{ for listing.runs.iter().map(|run| history_row(run, now, history.query.filter.text.as_deref())) }</tbody>
            </table>
        },
    };

    let (heading, heading_text) = if props.full { ("h1", "History") } else { ("h2", "Recent runs") };
    html! {
        <section class="panel history" id="history" aria-labelledby="history-heading">
            <div class="panel-head">
                <@{ heading } id="history-heading">{ heading_text }</@>
                { connection_indicator(connection.state) }
            </div>
            if props.full { { filter_bar(&history.query, &navigate, &health, &catalog) } }
            if let (true, Some(totals)) = (props.full, totals.as_ref()) {
                <p class="history-totals" id="history-totals" data-testid="history-totals">
                    { format::totals(totals) }
                    { " · export " }
                    <a id="export-ndjson" href={ format!("/api/runs/export?{}", parameters) } download="">{ "JSON Lines" }</a>
                    { " · " }
                    <a id="export-csv" href={ format!("/api/runs/export?format=csv&{}", parameters) } download="">{ "CSV" }</a>
                </p>
            }
            { body }
            if props.full {
                { pager(history.newer(), history.older()) }
            } else {
                <p class="all-runs"><Link to={ Route::History { query: HistoryQuery::default() } } id="all-runs">
                    { "All runs, with filters →" }
                </Link></p>
            }
        </section>
    }
}

fn empty_text(query: &HistoryQuery) -> String {
    let filter = &query.filter;
    if query.cursor != Cursor::Newest {
        return "No runs on this page.".to_owned();
    }
    if filter == &HistoryFilter::default() {
        return "No runs yet. Write a prompt to start the first one.".to_owned();
    }
    match filter.state {
        Some(state) => format!("No {} runs match these filters.", state.as_str().to_ascii_lowercase()),
        None => "No runs match these filters.".to_owned(),
    }
}

/// One row: state, prompt (the link to the run) with why it failed and its batch, model, retries, age, time
/// taken, tokens.
fn history_row(run: &RunSummary, now: f64, search: Option<&str>) -> Html {
    let duration = run.started_at.and_then(|start| format::elapsed(start, run.finished_at, now));
    let tokens = run.usage.map(|usage| (usage.input_tokens + usage.output_tokens).to_string());
    let preview = if run.prompt_preview.is_empty() { "(empty prompt)".to_owned() } else { run.prompt_preview.clone() };
    let reason = run.error.as_deref().filter(|_| run.state != RunState::Completed).map(|error| {
        let line = error.lines().next().unwrap_or_default();
        let short: String = line.chars().take(REASON_CHARS).collect();
        if short.len() < line.len() { format!("{short}…") } else { short }
    });
    html! {
        <tr key={ run.id.to_string() } class="history-row" data-testid="history-row"
            data-run-id={ run.id.to_string() } data-state={ run.state.as_str() }>
            <td>{ state_badge(run.state.as_str(), None, None) }</td>
            <td class="prompt-cell">
                <Link to={ Route::Run { id: run.id.to_string() } } classes="row-link">
                    <span class="preview" data-testid="history-preview">
                        { for highlight(&preview, search).into_iter().map(|(text, hit)| if hit {
                            html! { <mark>{ text }</mark> }
                        } else {
                            html! { { text } }
                        }) }
                    </span>
                </Link>
                if let Some(snippet) = &run.snippet {
                    <span class="snippet" data-testid="history-snippet">
                        { for snippet_pieces(snippet).into_iter().map(|(text, hit)| if hit {
                            html! { <mark>{ text }</mark> }
                        } else {
                            html! { { text } }
                        }) }
                    </span>
                }
                if let Some(reason) = reason {
                    <span class="reason" data-testid="history-reason" title={ run.error.clone() }>{ reason }</span>
                }
                if let Some(batch) = run.batch_id {
                    <Link to={ Route::Batch { id: batch.to_string() } } classes="batch-link">{ "batch" }</Link>
                }
            </td>
            <td class="model" title={ run.model_id.clone() } data-label="Model">{ short_model(&run.model_id) }</td>
            <td class="num" data-testid="history-retries" data-label="Retries">
                { if run.retries == 0 { String::new() } else { run.retries.to_string() } }
            </td>
            <td data-label="Created">
                <time datetime={ format::rfc3339(run.created_at) } title={ browser::local_time(run.created_at) }
                      data-testid="history-created">{ format::ago(run.created_at, now) }</time>
            </td>
            <td class="num" data-testid="history-duration" data-label="Took">{ duration.unwrap_or_default() }</td>
            <td class="num" data-testid="history-tokens" data-label="Tokens">{ tokens.unwrap_or_default() }</td>
        </tr>
    }
}

/// A model id without its provider prefix and version suffix, which every row repeats:
/// `us.anthropic.claude-3-haiku-20240307-v1:0` reads `us.claude-3-haiku-20240307`.
fn short_model(id: &str) -> String {
    let id = id.replace("anthropic.", "");
    match id.rsplit_once("-v") {
        Some((name, version)) if version.contains(':') => name.to_owned(),
        _ => id,
    }
}

/// The history's filters; each change is a new URL (so "back" undoes it) at the newest page.
/// Plain functions rather than components, here and for the pager: each component type costs
/// the Wasm its own copy of Yew's lifecycle code.
fn filter_bar(query: &HistoryQuery, navigate: &Navigate, health: &HealthState, catalog: &CatalogState) -> Html {
    let filter = query.filter.clone();
    let set = |change: fn(&mut HistoryFilter, &str)| {
        let (navigate, filter) = (navigate.clone(), filter.clone());
        Callback::from(move |event: Event| {
            let mut next = filter.clone();
            change(&mut next, target_value(&event).trim());
            if next != filter {
                navigate.emit(Route::History { query: HistoryQuery { filter: next, cursor: Cursor::Newest } });
            }
        })
    };
    let onstate = set(|filter, value| filter.state = value.parse().ok());
    let ontext = set(|filter, value| filter.text = Some(value.to_owned()).filter(|t| !t.is_empty()));
    let onmodel = set(|filter, value| filter.model = Some(value.to_owned()).filter(|m| !m.is_empty()));
    let onsince = set(|filter, value| filter.since = parse_day(value));
    let onuntil = set(|filter, value| filter.until = parse_day(value));
    let day = |day: Option<chrono::NaiveDate>| day.map(day_text).unwrap_or_default();
    let filtered = filter != HistoryFilter::default();

    html! {
        <form class="filter-bar" role="search" aria-label="Filter runs" onsubmit={ Callback::from(|e: SubmitEvent| e.prevent_default()) }>
            <label>{ "Search" }
                <input id="history-search" data-testid="history-search" type="search" placeholder="words in prompts or responses"
                       value={ filter.text.clone().unwrap_or_default() } onchange={ ontext } />
            </label>
            <label>{ "State" }
                <select id="history-state-filter" data-testid="history-state-filter" onchange={ onstate }>
                    <option value="" selected={ filter.state.is_none() }>{ "All" }</option>
                    { for RunState::ALL.iter().map(|state| html! {
                        <option value={ state.as_str() } selected={ filter.state == Some(*state) }>
                            { state.as_str() }
                        </option>
                    }) }
                </select>
            </label>
            <label>{ "Model" }
                <input id="history-model-filter" data-testid="history-model-filter" type="text" list="history-models"
                       placeholder="any model" value={ filter.model.clone().unwrap_or_default() } onchange={ onmodel } />
            </label>
            <datalist id="history-models">
                { for models::suggestions(health.health().map(|h| h.defaults.model_id.as_str()), catalog).into_iter().map(|id| html! {
                    <option value={ id } />
                }) }
            </datalist>
            <label>{ "From" }
                <input id="history-since" data-testid="history-since" type="date" value={ day(filter.since) } onchange={ onsince } />
            </label>
            <label>{ "To" }
                <input id="history-until" data-testid="history-until" type="date" value={ day(filter.until) } onchange={ onuntil } />
            </label>
            if filtered {
                <Link to={ Route::History { query: HistoryQuery::default() } } id="history-clear" classes="clear-filters">
                    { "Clear filters" }
                </Link>
            }
        </form>
    }
}

/// Links to the neighbouring pages: real links, so each page has a URL of its own.
fn pager(newer: Option<HistoryQuery>, older: Option<HistoryQuery>) -> Html {
    if newer.is_none() && older.is_none() {
        return html! {};
    }
    html! {
        <nav class="pager" aria-label="History pages">
            if let Some(query) = newer {
                <Link to={ Route::History { query } } id="history-newer" classes="button">{ "← Newer" }</Link>
            }
            if let Some(query) = older {
                <Link to={ Route::History { query } } id="history-older" classes="button">{ "Older →" }</Link>
            }
        </nav>
    }
}

#[cfg(test)]
mod tests {
    use super::short_model;

    #[test]
    fn model_ids_lose_the_provider_and_version_every_row_repeats() {
        assert_eq!(short_model("us.anthropic.claude-3-haiku-20240307-v1:0"), "us.claude-3-haiku-20240307");
        assert_eq!(short_model("anthropic.claude-3-sonnet-20240229-v1:0"), "claude-3-sonnet-20240229");
        assert_eq!(short_model("my-custom-model"), "my-custom-model");
        assert_eq!(short_model("anthropic.claude-v2"), "claude-v2");
    }
}
