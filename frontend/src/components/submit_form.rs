//! The submit form: prompt, settings, Ctrl/Cmd+Enter, and no double submission.
//!
//! It starts from the last used settings (kept in `localStorage` after each run it starts), or
//! from a run being edited as a new one. Each refused field shows its error beside it and gets
//! focus; a request that fails says so under the form without blaming a field.

use std::cell::Cell;
use std::rc::Rc;

use common::RunDetail;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use super::field_error::field_error;
use crate::browser::{self, focus, target_value};
use crate::router::{Link, Route, use_navigate};
use crate::state::HealthState;
use crate::state::form::{Field, Form, FormAction, Status};
use crate::state::models::{self, CatalogState, Notice};
use crate::state::settings::{self, Settings};
use crate::{api, format};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct SubmitFormProps {
    /// The run whose input fills the form ("edit as a new run"); the new run links to it.
    #[prop_or_default]
    pub from: Option<Rc<RunDetail>>,
    /// The page lost its live connection: Run waits for the server instead of failing.
    #[prop_or_default]
    pub offline: bool,
    /// Counts the page's reconnections; each one clears a failure left from the outage.
    #[prop_or_default]
    pub resync: u32,
}

/// The prompt form; a successful submission opens the new run's page at once.
#[component]
pub fn SubmitForm(props: &SubmitFormProps) -> Html {
    let health = use_context::<HealthState>().unwrap_or(HealthState::Loading);
    let catalog = use_context::<CatalogState>().unwrap_or_default();
    let form = {
        let from = props.from.clone();
        use_reducer(move || match from {
            Some(run) => Form::from_run(&run),
            None => Form::from_settings(&Settings::from_json(browser::stored(settings::STORAGE_KEY).as_deref())),
        })
    };
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
    {
        // After the render that shows a refusal (and opens the settings for a refused setting),
        // so the field is visible and focusable.
        let field = form.error.as_ref().map(|error| error.field);
        use_effect_with(form.refusals, move |&refusals| {
            if let Some(field) = field.filter(|_| refusals > 0) {
                focus(field.input_id());
            }
        });
    }

    {
        let form = form.dispatcher();
        use_effect_with(props.resync, move |&resync| {
            if resync > 0 {
                form.dispatch(FormAction::Reconnected);
            }
        });
    }

    let submit = {
        let offline = props.offline;
        let form = form.clone();
        let limits = health.health().map(|h| h.limits.clone());
        let in_flight = (*in_flight).clone();
        Callback::from(move |()| {
            if in_flight.get() || offline {
                return;
            }
            let body = match form.request(limits.as_ref()) {
                Ok(body) => body,
                Err(error) => return form.dispatch(FormAction::Invalid(error)),
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
                        browser::store(settings::STORAGE_KEY, &Settings::of(&body).to_json());
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
    let ontoggle = {
        let form = form.dispatcher();
        Callback::from(move |event: Event| {
            if let Some(details) = event.target().and_then(|t| t.dyn_into::<web_sys::HtmlDetailsElement>().ok()) {
                form.dispatch(FormAction::SettingsOpen(details.open()));
            }
        })
    };
    let edit = |field: Field| {
        let form = form.dispatcher();
        Callback::from(move |event: InputEvent| form.dispatch(FormAction::Edit(field, target_value(&event))))
    };

    let sending = form.status == Status::Sending;
    let error_for =
        |field: Field| form.error.as_ref().filter(|e| e.field == field).map(|e| AttrValue::from(e.message.clone()));
    let invalid = |field: Field| error_for(field).is_some().to_string();
    let described = |field: Field, otherwise: Option<&'static str>| {
        error_for(field).map(|_| AttrValue::Static(field.error_id())).or(otherwise.map(AttrValue::Static))
    };
    let error = |field: Field| field_error(field.error_id(), error_for(field));
    let max_tokens_limit = health.health().map(|h| h.limits.max_tokens.to_string());
    let suggestions = models::suggestions(health.health().map(|h| h.defaults.model_id.as_str()), &catalog);
    let notice = Notice::for_model(&catalog, &form.model_id).map(|notice| notice.text());

    html! {
        <form class="panel submit-form" id="submit-form" aria-labelledby="submit-heading" novalidate=true
              {onsubmit} {onkeydown}>
            <h1 id="submit-heading">{ if form.replay_of.is_some() { "Edit as a new run" } else { "New run" } }</h1>
            if let Some(source) = form.replay_of {
                <p class="lineage" id="edit-source" data-testid="edit-source">
                    { "Made from run " }
                    <Link to={ Route::Run { id: source.to_string() } }><code>{ format::short_id(&source.to_string()) }</code></Link>
                    { "; the original stays as it was." }
                </p>
            }
            <label for="prompt">{ "Prompt" }</label>
            <textarea id="prompt" data-testid="prompt-input" name="prompt" rows="7"
                      placeholder="Ask Claude anything…" value={ form.prompt.clone() }
                      oninput={ edit(Field::Prompt) } aria-invalid={ invalid(Field::Prompt) }
                      aria-describedby={ described(Field::Prompt, Some("prompt-hint")) }
                      autofocus=true />
            { error(Field::Prompt) }
            <p id="prompt-hint" class="hint">{ "Ctrl+Enter (⌘+Enter on a Mac) runs it." }</p>
            <details class="settings" id="settings" open={ form.settings_open } {ontoggle}>
                <summary>{ "Settings" }<span class="summary-value">{ form.model_id.clone() }</span></summary>
                <div class="settings-grid">
                    <label for="model-id">{ "Model id" }</label>
                    <input id="model-id" data-testid="model-input" type="text" spellcheck="false" list="model-ids"
                           autocomplete="off" value={ form.model_id.clone() } oninput={ edit(Field::Model) }
                           aria-invalid={ invalid(Field::Model) } aria-describedby={ described(Field::Model, None) } />
                    { error(Field::Model) }
                    if let Some(notice) = notice {
                        <p class="hint model-notice" id="model-notice" data-testid="model-notice">{ notice }</p>
                    }
                    <datalist id="model-ids">
                        { for suggestions.into_iter().map(|id| html! { <option value={ id } /> }) }
                    </datalist>
                    <label for="max-tokens">{ "Max tokens" }</label>
                    <input id="max-tokens" data-testid="max-tokens-input" type="number" inputmode="numeric"
                           min="1" max={ max_tokens_limit } value={ form.max_tokens.clone() }
                           oninput={ edit(Field::MaxTokens) } aria-invalid={ invalid(Field::MaxTokens) }
                           aria-describedby={ described(Field::MaxTokens, None) } />
                    { error(Field::MaxTokens) }
                    <label for="temperature">{ "Temperature" }</label>
                    <input id="temperature" data-testid="temperature-input" type="number" inputmode="decimal"
                           min="0" max="1" step="0.1" placeholder="model default"
                           value={ form.temperature.clone() } oninput={ edit(Field::Temperature) }
                           aria-invalid={ invalid(Field::Temperature) }
                           aria-describedby={ described(Field::Temperature, None) } />
                    { error(Field::Temperature) }
                    <label for="system-prompt">{ "System prompt" }</label>
                    <textarea id="system-prompt" data-testid="system-input" rows="3" placeholder="optional"
                              value={ form.system.clone() } oninput={ edit(Field::System) }
                              aria-invalid={ invalid(Field::System) } aria-describedby={ described(Field::System, None) } />
                    { error(Field::System) }
                </div>
            </details>
            if let Some(failure) = &form.failure {
                <p id="form-error" data-testid="form-error" class="form-error" role="alert">{ failure.clone() }</p>
            }
            <div class="form-actions">
                <button type="submit" id="submit" data-testid="submit-run" class="primary"
                        disabled={ sending || props.offline } aria-busy={ sending.to_string() }
                        aria-keyshortcuts="Control+Enter Meta+Enter">
                    { if sending { "Starting…" } else { "Run" } }
                </button>
            </div>
        </form>
    }
}
