//! The submit form: prompt, settings, Ctrl/Cmd+Enter, and no double submission.

use std::cell::Cell;
use std::rc::Rc;

use yew::prelude::*;

use crate::api;
use crate::browser::{self, focus, target_value};
use crate::router::{Route, use_navigate};
use crate::state::HealthState;
use crate::state::form::{Field, Form, FormAction, Status};

/// The prompt form; a successful submission opens the new run's page at once.
#[component]
pub fn SubmitForm() -> Html {
    let health = use_context::<HealthState>().unwrap_or(HealthState::Loading);
    let form = use_reducer(Form::default);
    // The reducer's state is only seen by the next render; this flag stops a second click or
    // key press that lands before it.
    let in_flight = use_memo((), |_| Rc::new(Cell::new(false)));
    let navigate = use_navigate();

    {
        let form = form.dispatcher();
        let defaults = health.health().map(|h| h.defaults.clone());
        use_effect_with(defaults, move |defaults| {
            if let Some(defaults) = defaults {
                form.dispatch(FormAction::Defaults(defaults.clone()));
            }
        });
    }

    let submit = {
        let form = form.clone();
        let limits = health.health().map(|h| h.limits.clone());
        let in_flight = (*in_flight).clone();
        Callback::from(move |()| {
            if in_flight.get() {
                return;
            }
            let body = match form.request(limits.as_ref()) {
                Ok(body) => body,
                Err(error) => {
                    focus(error.field.input_id());
                    form.dispatch(FormAction::Invalid(error));
                    return;
                }
            };
            // A retry of the same input reuses its key, so the server can never create it twice.
            let key = form.key.clone().unwrap_or_else(browser::idempotency_key);
            in_flight.set(true);
            form.dispatch(FormAction::Sending(key.clone()));
            let (form, in_flight, navigate) = (form.dispatcher(), in_flight.clone(), navigate.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::submit(&body, &key).await;
                in_flight.set(false);
                match result {
                    Ok(run) => {
                        form.dispatch(FormAction::Sent);
                        navigate.emit(Route::Run { id: run.id.to_string() });
                    }
                    Err(error) => form.dispatch(FormAction::Failed(error.to_string())),
                }
            });
        })
    };

    let onsubmit = {
        let submit = submit.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            submit.emit(());
        })
    };
    let onkeydown = Callback::from(move |event: KeyboardEvent| {
        if event.key() == "Enter" && (event.ctrl_key() || event.meta_key()) {
            event.prevent_default();
            submit.emit(());
        }
    });
    let edit = |field: Field| {
        let form = form.dispatcher();
        Callback::from(move |event: InputEvent| form.dispatch(FormAction::Edit(field, target_value(&event))))
    };

    let sending = form.status == Status::Sending;
    let error_for = |field: Field| form.error.as_ref().filter(|e| e.field == field);
    let described = |field: Field| error_for(field).map(|_| AttrValue::from("form-error"));
    // A refused setting must be visible to be fixed (and focusable).
    let settings_error = form.error.as_ref().is_some_and(|e| e.field != Field::Prompt);
    let max_tokens_limit = health.health().map(|h| h.limits.max_tokens.to_string());

    html! {
        <form class="panel submit-form" id="submit-form" aria-labelledby="submit-heading" novalidate=true
              {onsubmit} {onkeydown}>
            <h1 id="submit-heading">{ "New run" }</h1>
            <label for="prompt">{ "Prompt" }</label>
            <textarea id="prompt" data-testid="prompt-input" name="prompt" rows="7"
                      placeholder="Ask Claude anything…" value={ form.prompt.clone() }
                      oninput={ edit(Field::Prompt) } aria-invalid={ error_for(Field::Prompt).is_some().to_string() }
                      aria-describedby={ described(Field::Prompt).unwrap_or(AttrValue::Static("prompt-hint")) }
                      autofocus=true />
            <p id="prompt-hint" class="hint">{ "Ctrl+Enter (⌘+Enter on a Mac) runs it." }</p>
            <details class="settings" id="settings" open={ settings_error }>
                <summary>{ "Settings" }<span class="summary-value">{ form.model_id.clone() }</span></summary>
                <div class="settings-grid">
                    <label for="model-id">{ "Model id" }</label>
                    <input id="model-id" data-testid="model-input" type="text" spellcheck="false"
                           value={ form.model_id.clone() } oninput={ edit(Field::Model) } />
                    <label for="max-tokens">{ "Max tokens" }</label>
                    <input id="max-tokens" data-testid="max-tokens-input" type="number" inputmode="numeric"
                           min="1" max={ max_tokens_limit } value={ form.max_tokens.clone() }
                           oninput={ edit(Field::MaxTokens) }
                           aria-invalid={ error_for(Field::MaxTokens).is_some().to_string() }
                           aria-describedby={ described(Field::MaxTokens) } />
                    <label for="temperature">{ "Temperature" }</label>
                    <input id="temperature" data-testid="temperature-input" type="number" inputmode="decimal"
                           min="0" max="1" step="0.1" placeholder="model default"
                           value={ form.temperature.clone() } oninput={ edit(Field::Temperature) }
                           aria-invalid={ error_for(Field::Temperature).is_some().to_string() }
                           aria-describedby={ described(Field::Temperature) } />
                    <label for="system-prompt">{ "System prompt" }</label>
                    <textarea id="system-prompt" data-testid="system-input" rows="3" placeholder="optional"
                              value={ form.system.clone() } oninput={ edit(Field::System) } />
                </div>
            </details>
            if let Some(error) = &form.error {
                <p id="form-error" data-testid="form-error" class="form-error" role="alert">{ error.message.clone() }</p>
            }
            <div class="form-actions">
                <button type="submit" id="submit" data-testid="submit-run" class="primary"
                        disabled={ sending } aria-busy={ sending.to_string() }
                        aria-keyshortcuts="Control+Enter Meta+Enter">
                    { if sending { "Starting…" } else { "Run" } }
                </button>
            </div>
        </form>
    }
}
