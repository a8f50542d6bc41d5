//! The emulator's fault-injection panel: make the next calls fail to watch the retries.

use common::{EmulatorStatus, FaultKind, FaultPlan};
use yew::prelude::*;

use crate::api::{self, ApiError};
use crate::browser::target_value;
use crate::format;

/// Calls to fail by default: enough to see a retry, few enough that the run still completes.
const DEFAULT_FAIL_FIRST: u32 = 2;

/// What the panel knows about the emulator.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    Loading,
    Ready(EmulatorStatus),
    Failed(String),
}

fn describe(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Throttle => "Throttle (429)",
        FaultKind::Internal => "Internal error (500)",
        FaultKind::Unavailable => "Unavailable (503)",
        FaultKind::Stall => "Stalled stream",
        FaultKind::Validation => "Validation error (400)",
        FaultKind::Cut => "Answer cut off mid-stream",
        FaultKind::StreamThrottle => "Throttled mid-stream",
        FaultKind::StreamModelError => "Model stream error mid-stream (424)",
        FaultKind::StreamInternal => "Internal error mid-stream (500)",
    }
}

/// Sets, shows and clears the emulator's fault plan.
#[component]
pub fn FaultPanel() -> Html {
    let status = use_state(|| Status::Loading);
    let kind = use_state(|| FaultKind::Throttle);
    let count = use_state(|| DEFAULT_FAIL_FIRST.to_string());
    let busy = use_state(|| false);

    // Every request of the panel ends the same way: show the emulator's new status or the error.
    let run = {
        let (status, busy) = (status.clone(), busy.clone());
        move |request: std::pin::Pin<Box<dyn Future<Output = Result<EmulatorStatus, ApiError>>>>| {
            let (status, busy) = (status.clone(), busy.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                status.set(match request.await {
                    Ok(answer) => Status::Ready(answer),
                    Err(error) => Status::Failed(error.to_string()),
                });
                busy.set(false);
            });
        }
    };
    {
        let run = run.clone();
        use_effect_with((), move |_| run(Box::pin(api::faults())));
    }

    let onapply = {
        let (run, kind, count) = (run.clone(), kind.clone(), count.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let plan = FaultPlan { kind: *kind, fail_first: count.trim().parse().unwrap_or(1), every_nth: 0 };
            run(Box::pin(async move { api::set_faults(&plan).await }));
        })
    };
    let onclear = Callback::from(move |_: MouseEvent| run(Box::pin(api::clear_faults())));
    let onkind = {
        let kind = kind.clone();
        Callback::from(move |event: Event| {
            if let Ok(chosen) = target_value(&event).parse::<FaultKind>() {
                kind.set(chosen);
            }
        })
    };
    let oncount = {
        let count = count.clone();
        Callback::from(move |event: InputEvent| count.set(target_value(&event)))
    };

    let current = match &*status {
        Status::Loading => html! { <p class="muted">{ "Reading the emulator's state…" }</p> },
        Status::Failed(error) => html! { <p class="form-error" role="alert">{ error.clone() }</p> },
        Status::Ready(EmulatorStatus { plan: None, calls, .. }) => html! {
            <p>{ format!("No faults: every call succeeds. {} served.", format::calls(*calls)) }</p>
        },
        Status::Ready(EmulatorStatus { plan: Some(plan), calls, .. }) => html! {
            <p>
                <strong>{ describe(plan.kind) }</strong>
                { format!(" for the next {}", format::calls(plan.fail_first.into())) }
                { if plan.every_nth > 0 { format!(", then every {} call", format::ordinal(plan.every_nth.into())) } else { String::new() } }
                { format!(". {} served.", format::calls(*calls)) }
            </p>
        },
    };

    html! {
        <section class="panel fault-panel" id="fault-panel" data-testid="fault-panel" aria-labelledby="fault-heading">
            <h2 id="fault-heading">{ "Inject faults" }</h2>
            <div id="fault-status" data-testid="fault-status" aria-live="polite">{ current }</div>
            <form class="fault-form" onsubmit={ onapply }>
                <label for="fault-kind">{ "Failure" }</label>
                <select id="fault-kind" data-testid="fault-kind" onchange={ onkind }>
                    { for FaultKind::ALL.iter().map(|k| html! {
                        <option value={ k.as_str() } selected={ *k == *kind }>{ describe(*k) }</option>
                    }) }
                </select>
                <label for="fault-count">{ "Next calls" }</label>
                <input id="fault-count" data-testid="fault-count" type="number" min="1" max="100"
                       inputmode="numeric" value={ (*count).clone() } oninput={ oncount } />
                <div class="form-actions">
                    <button type="submit" id="fault-apply" data-testid="fault-apply" disabled={ *busy }>{ "Inject" }</button>
                    <button type="button" id="fault-clear" data-testid="fault-clear" disabled={ *busy }
                            onclick={ onclear }>{ "Clear" }</button>
                </div>
            </form>
        </section>
    }
}
