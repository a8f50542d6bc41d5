//! The run page (`/runs/:id`): the run live, with its verdict, a progress strip that opens onto
//! its timeline, its response, facts, lineage and logs, and the ways to run its input again.
//!
//! The response comes right after the heading and the one-line progress strip, so that on a
//! phone the answer is above the fold; the facts follow it.

use std::cell::Cell;
use std::rc::Rc;
use std::str::FromStr;

use common::{RunId, SubmitRun, TaskName, TaskState};
use yew::prelude::*;

use super::not_found::not_found;
use crate::api::{self, StreamTarget};
use crate::components::{
    FaultPanel, LogPanel, ResponsePanel, RunProgress, connection_indicator, connection_notice, lineage, state_badge,
    verdict_line,
};
use crate::hooks::{Connection, StreamMessage, use_event_stream, use_now};
use crate::router::{Link, Route, use_navigate};
use crate::state::run::{RunAction, RunView};
use crate::state::{HealthState, Load, LoadError, replay, stall, verdict};
use crate::{browser, format};

/// A countdown needs whole seconds that never skip; a quarter second does that.
const COUNTDOWN_TICK_MS: u32 = 250;

/// Where a cancel or "run again" request stands.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Idle,
    Busy,
    Failed(String),
}

/// `/runs/:id`, with `id` as it appears in the URL; an id that is not a run id shows "not
/// found" without asking the server. Keyed by id so moving between runs starts a fresh page
/// (state, socket) for each.
pub fn run_page(id: &str) -> Html {
    match RunId::from_str(id) {
        Ok(id) => html! { <LiveRun key={ id.to_string() } { id } /> },
        Err(_) => not_found("That is not a run id."),
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
struct LiveRunProps {
    id: RunId,
}

/// A well-formed run id: fetches the run and its logs, follows its events, offers cancel and
/// "run again".
#[component]
fn LiveRun(props: &LiveRunProps) -> Html {
    let id = props.id;
    let page = use_reducer(RunView::default);
    let action = use_state(|| Action::Idle);
    // Guards "run again" and "cancel" against a second click before the re-render disables them.
    let in_flight = use_memo((), |_| Rc::new(Cell::new(false)));
    let attempt = use_state(|| 0u32);
    // Set by a click on Cancel: the button disappears with the run's end, and focus must not
    // fall back to the page with it.
    let refocus = use_memo((), |_| Rc::new(Cell::new(false)));
    let navigate = use_navigate();
    let health = use_context::<HealthState>().unwrap_or(HealthState::Loading);

    {
        let dispatcher = page.dispatcher();
        use_effect_with(*attempt, move |_| {
            let logs = dispatcher.clone();
            wasm_bindgen_futures::spawn_local(async move {
                dispatcher.dispatch(match api::run(id).await {
                    Ok(detail) => RunAction::Loaded(detail),
                    Err(error) => RunAction::LoadFailed(LoadError::from(error)),
                });
            });
            wasm_bindgen_futures::spawn_local(async move {
                // Without stored lines the panel still fills from live events; nothing to report.
                if let Ok(lines) = api::logs(id).await {
                    logs.dispatch(RunAction::LogsLoaded(lines));
                }
            });
        });
    }

    // The socket opens once the snapshot is here; see `RunView::stream_start` for where it starts.
    let target = page.detail().map(|_| StreamTarget::Run { id, after_seq: page.stream_start() });
    let on_message = {
        let (dispatcher, action) = (page.dispatcher(), action.clone());
        Callback::from(move |message: StreamMessage| match message {
            StreamMessage::Event(event) => dispatcher.dispatch(RunAction::Event(*event)),
            StreamMessage::Opened { resumed: true } => {
                // Back after a drop: an error from the outage is stale, and the snapshot is
                // read again in case the run moved on in ways the resumed stream starts after.
                action.set(Action::Idle);
                let dispatcher = dispatcher.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(detail) = api::run(id).await {
                        dispatcher.dispatch(RunAction::Loaded(detail));
                    }
                });
            }
            StreamMessage::Opened { resumed: false } => {}
        })
    };
    let connection = use_event_stream(target, on_message);
    // While the connection is lost, nothing here is known to be current: the clocks stop and
    // the actions that need the server wait.
    let offline = matches!(connection.state, Connection::Retrying { .. });

    let waiting = page.detail().is_some_and(|d| d.tasks.iter().any(|t| t.state == TaskState::AwaitingRetry));
    // A silent stream counts its seconds like a countdown does.
    let calling = page
        .detail()
        .is_some_and(|d| d.tasks.iter().any(|t| t.name == TaskName::CallBedrock && t.state == TaskState::Running));
    let live = page.detail().is_some_and(|d| !d.state.is_terminal());
    let now = use_now(live && !offline, if waiting || calling { COUNTDOWN_TICK_MS } else { 1_000 });
    let busy = *action == Action::Busy;
    {
        let refocus = (*refocus).clone();
        let ended = page.detail().is_some() && !live;
        // "Run again" replaces Cancel once the run is over; it is focusable once not busy.
        use_effect_with((ended, busy || offline), move |&(ended, disabled)| {
            if ended && !disabled && refocus.replace(false) {
                browser::focus("rerun");
            }
        });
    }

    let detail = match &page.run {
        Load::Ready(detail) => detail.clone(),
        Load::Failed(LoadError::NotFound) => return not_found("There is no run with this id."),
        Load::Failed(LoadError::Other(error)) => {
            let onretry = Callback::from(move |_: MouseEvent| attempt.set(*attempt + 1));
            return html! {
                <section class="panel error-state" data-testid="run-error-state" role="alert">
                    <h1>{ "Could not load this run" }</h1>
                    <p>{ error.clone() }</p>
                    <button type="button" onclick={ onretry }>{ "Try again" }</button>
                </section>
            };
        }
        Load::Loading => {
            return html! {
                <section class="panel loading" data-testid="run-loading" aria-busy="true">
                    <p>{ "Loading the run…" }</p>
                </section>
            };
        }
    };

    let oncancel = {
        let (action, in_flight, dispatcher) = (action.clone(), (*in_flight).clone(), page.dispatcher());
        let refocus = (*refocus).clone();
        Callback::from(move |_: MouseEvent| {
            if in_flight.replace(true) {
                return;
            }
            refocus.set(true);
            action.set(Action::Busy);
            let (action, in_flight, dispatcher) = (action.clone(), in_flight.clone(), dispatcher.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::cancel(id).await;
                in_flight.set(false);
                match result {
                    Ok(_) | Err(api::ApiError::Status { status: 409, .. }) => {
                        action.set(Action::Idle);
                        // The stream brings the new state; a snapshot covers a lagging socket.
                        if let Ok(detail) = api::run(id).await {
                            dispatcher.dispatch(RunAction::Loaded(detail));
                        }
                    }
                    Err(error) => action.set(Action::Failed(error.to_string())),
                }
            });
        })
    };
    // "Run again" and "run again with more tokens": a new run linked to this one.
    let resubmit = {
        let (action, in_flight) = (action.clone(), (*in_flight).clone());
        Callback::from(move |body: SubmitRun| {
            if in_flight.replace(true) {
                return;
            }
            action.set(Action::Busy);
            let (action, in_flight, navigate) = (action.clone(), in_flight.clone(), navigate.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::submit(&body, &browser::idempotency_key()).await;
                in_flight.set(false);
                match result {
                    Ok(run) => {
                        action.set(Action::Idle);
                        navigate.emit(Route::Run { id: run.id.to_string() });
                    }
                    Err(error) => action.set(Action::Failed(error.to_string())),
                }
            });
        })
    };
    let onrerun = resubmit.reform({
        let body = replay::same_input(&detail);
        move |_: MouseEvent| body.clone()
    });
    let limit = health.health().map(|h| h.limits.max_tokens);
    let on_more_tokens =
        replay::with_more_tokens(&detail, limit).map(|body| resubmit.reform(move |_: MouseEvent| body.clone()));
    let verdict = verdict::verdict(&detail);
    let timeout_ms = health.health().map_or(0, |h| h.defaults.stream_idle_timeout_ms);
    let stall = stall::stall_notice(&detail, &page.outputs, now, timeout_ms).map(AttrValue::from);
    let onlevel = {
        let dispatcher = page.dispatcher();
        Callback::from(move |level| dispatcher.dispatch(RunAction::SetMinLevel(level)))
    };
    let onquery = {
        let dispatcher = page.dispatcher();
        Callback::from(move |query| dispatcher.dispatch(RunAction::SetLogQuery(query)))
    };
    let finished = match (&verdict, detail.state.is_terminal()) {
        (_, false) => AttrValue::default(),
        (Some(verdict), true) => {
            format!("Run {}. {}", detail.state.as_str().to_ascii_lowercase(), verdict.summary).into()
        }
        (None, true) => format!("Run {}.", detail.state.as_str().to_ascii_lowercase()).into(),
    };

    let duration = detail.started_at.and_then(|start| format::elapsed(start, detail.finished_at, now));
    let short_id = format::short_id(&id.to_string());

    html! {
        <div class="run-page" data-run-id={ id.to_string() }>
            { connection_notice(&connection) }
            <section class="panel run-head" aria-labelledby="run-heading">
                <div class="run-title">
                    <h1 id="run-heading">{ "Run " }<code title={ id.to_string() }>{ short_id.clone() }</code></h1>
                    // Not a live region: the response panel announces the end of the run once.
                    { state_badge(detail.state.as_str(), Some("run-state"), Some("run-state")) }
                    { connection_indicator(connection.state) }
                </div>
                if let Some(verdict) = verdict {
                    { verdict_line(&verdict, on_more_tokens, busy || offline) }
                }
                <div class="form-actions">
                    if live {
                        <button type="button" id="cancel-run" data-testid="cancel-run" class="danger"
                                disabled={ busy || offline } onclick={ oncancel }>{ "Cancel run" }</button>
                    } else {
                        <button type="button" id="rerun" data-testid="rerun" class="primary"
                                disabled={ busy || offline } onclick={ onrerun }>{ "Run again" }</button>
                    }
                    <Link to={ Route::Edit { id: id.to_string() } } id="edit-run" classes="button">{ "Edit as a new run" }</Link>
                    if let Some(search) = compare_search(&detail) {
                        <Link to={ Route::Compare { search } } id="compare-run" classes="button">{ "Compare" }</Link>
                    }
                    if !live {
                        <a class="button" id="export-markdown" href={ format!("/api/runs/{id}/export?format=md") } download="">
                            { "Export Markdown" }
                        </a>
                        <a class="button" id="export-json" href={ format!("/api/runs/{id}/export") } download="">{ "JSON" }</a>
                    }
                    if let Action::Failed(error) = &*action {
                        <p class="form-error" data-testid="action-error" role="alert">{ error.clone() }</p>
                    }
                </div>
            </section>
            <RunProgress tasks={ detail.tasks.clone() } now={ now } />
            <ResponsePanel detail={ detail.clone() } outputs={ page.outputs.clone() } { stall } { finished } />
            <section class="panel run-about" aria-label="About this run">
                <dl class="run-facts">
                    <div>
                        <dt>{ "Created" }</dt>
                        <dd><time datetime={ format::rfc3339(detail.created_at) }>{ browser::local_time(detail.created_at) }</time></dd>
                    </div>
                    <div><dt>{ "Duration" }</dt><dd data-testid="run-duration">{ duration.unwrap_or_else(|| "—".into()) }</dd></div>
                    <div><dt>{ "Model" }</dt><dd><code>{ detail.model_id.clone() }</code></dd></div>
                    <div><dt>{ "Max tokens" }</dt><dd>{ detail.max_tokens }</dd></div>
                    if let Some(t) = detail.temperature {
                        <div><dt>{ "Temperature" }</dt><dd>{ format::temperature(t) }</dd></div>
                    }
                </dl>
                <details class="prompt-box" data-testid="run-prompt">
                    <summary>{ "Prompt" }</summary>
                    if let Some(system) = &detail.system {
                        <p class="muted">{ "System: " }{ system.clone() }</p>
                    }
                    <pre class="prompt-text">{ detail.prompt.clone() }</pre>
                </details>
                { lineage(detail.replay_of, &detail.replays) }
                if health.is_emulator() { <FaultPanel compact=true /> }
            </section>
            <LogPanel lines={ page.visible_logs().cloned().collect::<Vec<_>>() } empty={ page.empty_logs_note().map(AttrValue::from) }
                      min_level={ page.min_level } on_level={ onlevel } on_query={ onquery }
                      file_name={ format!("run-{short_id}-logs.txt") } />
        </div>
    }
}

/// The compare page's query for a run and its relatives: the run it was made from and it, or
/// it and its first replays; `None` for a run with neither.
fn compare_search(run: &common::RunDetail) -> Option<String> {
    let mut ids: Vec<String> = run.replay_of.into_iter().map(|id| id.to_string()).collect();
    ids.push(run.id.to_string());
    let room = crate::state::compare::MAX_RUNS - ids.len();
    ids.extend(run.replays.iter().take(room).map(ToString::to_string));
    (ids.len() > 1).then(|| format!("runs={}", ids.join(",")))
}
