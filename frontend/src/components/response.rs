//! The response panel: the streamed answer as safe Markdown, its copy buttons (the whole answer
//! and each code block) and its facts, what is partial about it, a stalled stream's silence,
//! each attempt's output, and the polite announcement that the run is over.

use common::{RunDetail, RunState, StopReason};
use gloo_timers::callback::Timeout;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use super::attempt_outputs::attempt_output_list;
use crate::state::models::{CatalogState, Notice};
use crate::state::outputs::AttemptOutputs;
use crate::state::partial;
use crate::{browser, format, markdown};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ResponseProps {
    /// The run: its response so far, state, usage, latency and stop reason.
    pub detail: RunDetail,
    /// Each attempt's text, for the partial-answer notes and the per-attempt list.
    pub outputs: AttemptOutputs,
    /// "No tokens for 18 s · stall timeout at 30 s", while the stream is silent.
    #[prop_or_default]
    pub stall: Option<AttrValue>,
    /// "Run completed." once the run is over, for screen readers; empty while it runs.
    #[prop_or_default]
    pub finished: AttrValue,
}

/// How long "Copied" shows before the button reads "Copy" again.
const COPIED_FOR_MS: u32 = 2_000;

/// What the copy button last did.
#[derive(Debug, Clone, PartialEq)]
enum Copy {
    Idle,
    Copied,
    Failed(String),
}

/// Shows the answer while it streams and the model's facts once it is done.
#[component]
pub fn ResponsePanel(props: &ResponseProps) -> Html {
    let catalog = use_context::<CatalogState>().unwrap_or_default();
    let text = props.detail.response.clone().unwrap_or_default();
    // Re-parsing only when the text changed keeps timer re-renders cheap.
    let rendered = use_memo(text.clone(), |text| markdown::to_html(text));
    let copy = use_state(|| Copy::Idle);
    let state = props.detail.state;
    let busy = !state.is_terminal();
    // The cursor means "more is coming from this attempt": not through a retry's countdown.
    let streaming = partial::is_streaming(&props.detail);
    let note = partial::response_note(&props.detail, &props.outputs);

    {
        let copy = copy.clone();
        use_effect_with((*copy).clone(), move |shown| {
            // Dropping the timeout cancels it, so a newer click restarts the two seconds.
            let reset = (*shown == Copy::Copied).then(|| Timeout::new(COPIED_FOR_MS, move || copy.set(Copy::Idle)));
            move || drop(reset)
        });
    }

    let oncopy = {
        let (copy, text) = (copy.clone(), text.clone());
        Callback::from(move |_: MouseEvent| {
            let (copy, text) = (copy.clone(), text.clone());
            wasm_bindgen_futures::spawn_local(async move {
                copy.set(match browser::copy_text(&text).await {
                    Ok(()) => Copy::Copied,
                    Err(error) => Copy::Failed(error),
                });
            });
        })
    };

    let oncode = Callback::from(|event: MouseEvent| {
        let button = event.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok());
        let Some(button) = button.and_then(|b| b.closest(".copy-code").ok().flatten()) else { return };
        let code = button.previous_element_sibling().and_then(|pre| pre.text_content()).unwrap_or_default();
        wasm_bindgen_futures::spawn_local(async move {
            let copied = browser::copy_text(&code).await.is_ok();
            // The label's own text node is changed in place: Yew keeps owning it, and leaves it
            // alone while the rendered label stays the same.
            let Some(label) = button.first_child() else { return };
            label.set_node_value(Some(if copied { "Copied" } else { "Copy failed" }));
            Timeout::new(COPIED_FOR_MS, move || label.set_node_value(Some(markdown::COPY_CODE))).forget();
        });
    });

    let body = if text.is_empty() {
        let message = match state {
            RunState::Pending | RunState::Running => "Waiting for the model…",
            _ => "No response.",
        };
        html! { <p class="muted" data-testid="response-empty">{ message }</p> }
    } else {
        (*rendered).clone()
    };

    let detail = &props.detail;
    let truncated = detail.stop_reason == Some(StopReason::MaxTokens);
    let done = state.is_terminal();

    html! {
        <section class="panel response" aria-labelledby="response-heading">
            <div class="panel-head">
                <h2 id="response-heading">{ "Response" }</h2>
                <button type="button" id="copy-response" data-testid="copy-response" class="small"
                        disabled={ text.is_empty() } onclick={ oncopy }>
                    { if *copy == Copy::Copied { "Copied" } else { "Copy" } }
                </button>
                <span class="visually-hidden" aria-live="polite">
                    { match &*copy { Copy::Copied => "Response copied.".to_owned(), Copy::Failed(e) => e.clone(), Copy::Idle => String::new() } }
                </span>
            </div>
            if let Some(notice) = Notice::for_model(&catalog, &detail.model_id).filter(|n| *n != Notice::Unknown) {
                <p class="note model-notice" id="run-model-notice" data-testid="run-model-notice" role="note">
                    { notice.text() }
                </p>
            }
            if let Copy::Failed(error) = &*copy {
                <p class="form-error" data-testid="copy-error">{ error.clone() }</p>
            }
            <div id="response" data-testid="response" class={ classes!("markdown", (streaming && !text.is_empty()).then_some("streaming")) }
                 aria-busy={ busy.to_string() } data-streaming={ streaming.to_string() } onclick={ oncode }>
                { body }
            </div>
            // Always present, so screen readers know the region before its text changes.
            <p class="visually-hidden" id="response-status" data-testid="response-status" role="status"
               aria-live="polite" aria-atomic="true">{ props.finished.clone() }</p>
            if let Some(stall) = &props.stall {
                <p class="stall" id="stall-indicator" data-testid="stall-indicator" role="timer">{ stall.clone() }</p>
            }
            if truncated {
                <p class="note warn" id="truncated-note" data-testid="truncated-note" role="note">
                    { format!("Truncated: the answer reached the max tokens limit ({}).", detail.max_tokens) }
                </p>
            }
            if let Some(note) = note {
                <p class="note partial" id="partial-note" data-testid="partial-note">{ note }</p>
            }
            { attempt_output_list(detail, &props.outputs) }
            if done && (detail.usage.is_some() || detail.stop_reason.is_some() || detail.latency_ms.is_some()) {
                <dl class="facts" id="response-meta" data-testid="response-meta">
                    if let Some(usage) = detail.usage {
                        <dt>{ "Tokens" }</dt><dd data-testid="usage">{ format::usage(&usage) }</dd>
                    }
                    if let Some(cost) = detail.usage.and_then(|usage| catalog.cost(&detail.model_id, usage)) {
                        <dt>{ "Est. cost" }</dt><dd id="run-cost" data-testid="run-cost">{ format::dollars(cost) }</dd>
                    }
                    if let Some(ms) = detail.latency_ms {
                        <dt>{ "Latency" }</dt><dd data-testid="latency">{ format::duration_ms(ms) }</dd>
                    }
                    if let Some(reason) = &detail.stop_reason {
                        <dt>{ "Stop reason" }</dt><dd data-testid="stop-reason">{ format::stop_reason(reason) }</dd>
                    }
                </dl>
            }
        </section>
    }
}
