//! The batches page (`/batches`): the form that submits a batch, and the batches so far.

use yew::prelude::*;

use crate::components::{batch_form, batch_list, submit_batch_form};
use crate::router::{Route, use_navigate};
use crate::state::Load;
use crate::{api, browser};

/// Submitting opens the new batch's page; a refusal stays next to the form, naming the line.
#[component]
pub fn BatchesPage() -> Html {
    let list = use_state(|| Load::<Vec<api::Batch>, String>::Loading);
    let failure = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let navigate = use_navigate();
    {
        let list = list.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                list.set(match api::batches().await {
                    Ok(batches) => Load::Ready(batches),
                    Err(error) => Load::Failed(error.to_string()),
                });
            });
        });
    }
    let onsubmit = {
        let (failure, busy) = (failure.clone(), busy.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            if *busy {
                return;
            }
            busy.set(true);
            let (failure, busy, navigate) = (failure.clone(), busy.clone(), navigate.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match submit_batch_form().await {
                    Ok(batch) => navigate.emit(Route::Batch { id: batch.id.to_string() }),
                    Err(error) => {
                        failure.set(Some(error));
                        busy.set(false);
                    }
                }
            });
        })
    };
    let listing = match &*list {
        Load::Loading => html! { <p class="loading" aria-busy="true">{ "Loading batches…" }</p> },
        Load::Failed(error) => {
            html! { <p class="form-error" role="alert">{ "Could not load the batches: " }{ error.clone() }</p> }
        }
        Load::Ready(batches) => batch_list(batches, browser::now_ms()),
    };
    html! {
        <div class="batch-page">
            <h1 class="visually-hidden">{ "Batches" }</h1>
            { batch_form((*failure).clone(), *busy, onsubmit) }
            <section class="panel" aria-labelledby="batches-heading">
                <h2 id="batches-heading">{ "Batches" }</h2>
                { listing }
            </section>
        </div>
    }
}
