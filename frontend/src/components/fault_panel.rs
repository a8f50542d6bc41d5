//! The emulator's fault-injection panel: make the next calls fail to watch the retries.
//!
//! It re-reads the emulator's state every couple of seconds while shown, so what it says the
//! plan still holds ("1 of 2 throttles left") follows the calls as they happen.

use common::{EmulatorStatus, FaultKind, FaultPlan};
use gloo_timers::callback::Interval;
use yew::prelude::*;

use crate::api::{self, ApiError};
use crate::browser::target_value;
use crate::format;
use crate::state::faults;

/// Calls to fail by default: enough to see a retry, few enough that the run still completes.
const DEFAULT_FAIL_FIRST: u32 = 2;
/// How often the shown state is refreshed: one emulator call, far below any retry delay.
const REFRESH_MS: u32 = 2_000;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct FaultPanelProps {
    /// One line with the plan and a clear button, for the run page.
    #[prop_or_default]
    pub compact: bool,
    /// The page lost its live connection: the buttons wait for the server.
    #[prop_or_default]
    pub offline: bool,
    /// Counts the page's reconnections; each one reads the plan again at once, replacing an
    /// error from the outage.
    #[prop_or_default]
    pub resync: u32,
}

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
pub fn FaultPanel(props: &FaultPanelProps) -> Html {
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
        use_effect_with((), move |_| {
            run(Box::pin(api::faults()));
            let refresh = {
                let run = run.clone();
                Interval::new(REFRESH_MS, move || run(Box::pin(api::faults())))
            };
            move || drop(refresh)
        });
    }
    {
        let run = run.clone();
        use_effect_with(props.resync, move |&resync| {
            if resync > 0 {
                run(Box::pin(api::faults()));
            }
        });
    }
    // The controls show the plan in force whenever it changes (set here, through the API, or
    // from another tab), so what is selected never disagrees with what the emulator does.
    {
        let (kind, count) = (kind.clone(), count.clone());
        let plan = match &*status {
            Status::Ready(EmulatorStatus { plan, .. }) => *plan,
            _ => None,
        };
        use_effect_with(plan, move |plan| {
            if let Some(plan) = plan {
                kind.set(plan.kind);
                if plan.fail_first > 0 {
                    count.set(plan.fail_first.to_string());
                }
            }
        });
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

    if props.compact {
        return match &*status {
            Status::Ready(status) if faults::is_active(status) => html! {
                <p class="fault-strip" data-testid="fault-strip" aria-live="polite">
                    { "Emulator faults: " }<strong>{ faults::remaining(status) }</strong>{ " " }
                    <button type="button" class="link-button" data-testid="fault-strip-clear" disabled={ *busy }
                            onclick={ onclear }>{ "Clear" }</button>
                </p>
            },
            _ => Html::default(),
        };
    }

    let current = match &*status {
        Status::Loading => html! { <p class="muted">{ "Reading the emulator's state…" }</p> },
        Status::Failed(error) => html! { <p class="form-error" role="alert">{ error.clone() }</p> },
        Status::Ready(status @ EmulatorStatus { plan, calls, .. }) => html! {
            <p>
                if let Some(plan) = plan { <strong>{ describe(plan.kind) }</strong>{ ": " } }
                { faults::remaining(status) }
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
                    <button type="submit" id="fault-apply" data-testid="fault-apply" disabled={ *busy || props.offline }>{ "Inject" }</button>
                    <button type="button" id="fault-clear" data-testid="fault-clear" disabled={ *busy || props.offline }
                            onclick={ onclear }>{ "Clear" }</button>
                </div>
            </form>
        </section>
    }
}
