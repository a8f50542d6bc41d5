//! The form that submits a batch: prompts pasted one per line, or a `.jsonl`, `.csv` or `.txt`
//! file picked or dropped, with run settings and an optional template for every item.
//!
//! Its fields are uncontrolled: they are read once, on submit, so typing re-renders nothing and
//! the page keeps no copy of a large paste. A plain function rather than a component: the page
//! owns the little state there is (busy, the server's refusal).

use wasm_bindgen::JsValue;
use yew::prelude::*;

use crate::state::batch::{BatchSettings, file_content_type, file_parameters, pasted_prompts};
use crate::{api, browser, format};

const PROMPTS: &str = "batch-prompts";
const FILE: &str = "batch-file";
const MODEL: &str = "batch-model";
const SYSTEM: &str = "batch-system";
const MAX_TOKENS: &str = "batch-max-tokens";
const TEMPERATURE: &str = "batch-temperature";
const TEMPLATE: &str = "batch-template";

/// Sends the form's batch: the chosen file if there is one, else the pasted text as a text
/// file; the error is the server's own (it names the line) or the field that is wrong.
pub async fn submit_batch_form() -> Result<api::Batch, String> {
    let optional = |id| Some(browser::field_value(id).trim().to_owned()).filter(|v| !v.is_empty());
    let max_tokens = match optional(MAX_TOKENS) {
        Some(text) => Some(text.parse().map_err(|_| "Max tokens must be a whole number.".to_owned())?),
        None => None,
    };
    let temperature = match optional(TEMPERATURE) {
        Some(text) => Some(format::parse_temperature(&text).ok_or("Temperature must be between 0 and 1.")?),
        None => None,
    };
    let settings = BatchSettings {
        model_id: optional(MODEL),
        system: optional(SYSTEM),
        template: optional(TEMPLATE),
        max_tokens,
        temperature,
    };
    let (content_type, body) = match browser::chosen_file(FILE) {
        Some(file) => (file_content_type(&file.name()), JsValue::from(file)),
        None => {
            let text = browser::field_value(PROMPTS);
            if pasted_prompts(&text).is_empty() {
                return Err("Paste some prompts, one per line, or choose a file.".to_owned());
            }
            ("text/plain", JsValue::from(text))
        }
    };
    api::submit_batch_file(body, content_type, &file_parameters(&settings)).await.map_err(|e| e.to_string())
}

/// The form's fields, which it reads by id on submit and never re-renders: as one string of
/// static markup they cost the Wasm nothing beyond the string, where `html!` spends a few
/// hundred bytes of code on each element. Nothing in it comes from data.
const FIELDS: &str = r#"<h2 id="batch-form-heading">New batch</h2>
<label for="batch-prompts">Prompts, one per line</label>
<textarea id="batch-prompts" rows="6"></textarea>
<label for="batch-file">Or a .jsonl, .csv or .txt file (or drop one on this form)</label>
<input id="batch-file" type="file" accept=".jsonl,.ndjson,.csv,.txt">
<p class="hint">A chosen file is sent instead of the pasted prompts. With a template, each CSV row or JSON line fills its {{placeholders}}.</p>
<details class="settings"><summary>Settings and template</summary><div class="settings-grid">
<label for="batch-model">Model</label><input id="batch-model" placeholder="the server's default">
<label for="batch-system">System prompt</label><textarea id="batch-system" rows="2"></textarea>
<label for="batch-max-tokens">Max tokens</label><input id="batch-max-tokens" type="number" min="1" placeholder="the server's default">
<label for="batch-temperature">Temperature</label><input id="batch-temperature" inputmode="decimal" placeholder="0–1">
<label for="batch-template">Template</label><textarea id="batch-template" rows="2" placeholder="Classify this ticket: {{text}}"></textarea>
</div></details>"#;

/// The form; `failure` is shown under it, and `busy` holds the button while a batch is sent.
pub fn batch_form(failure: Option<String>, busy: bool, onsubmit: Callback<SubmitEvent>) -> Html {
    // Without `preventDefault` on dragover the browser opens a dropped file instead.
    let ondragover = Callback::from(|event: DragEvent| event.prevent_default());
    let ondrop = Callback::from(|event: DragEvent| {
        event.prevent_default();
        browser::drop_files(&event, FILE);
    });
    html! {
        <form class="panel batch-form" id="batch-form" aria-labelledby="batch-form-heading" novalidate=true
              { onsubmit } { ondragover } { ondrop }>
            { Html::from_html_unchecked(AttrValue::Static(FIELDS)) }
            if let Some(failure) = failure {
                <p id="batch-error" class="form-error" role="alert">{ failure }</p>
            }
            <div class="form-actions">
                <button type="submit" id="batch-submit" class="primary" disabled={ busy }>{ "Submit batch" }</button>
            </div>
        </form>
    }
}
