//! The edit page (`/runs/:id/edit`): the submit form holding a run's input, for a new run made
//! from it.

use std::rc::Rc;
use std::str::FromStr;

use common::{RunDetail, RunId};
use yew::prelude::*;

use super::not_found::not_found;
use crate::api;
use crate::components::SubmitForm;
use crate::state::{Load, LoadError};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct EditPageProps {
    /// As it appears in the URL, so possibly not a run id at all.
    pub id: AttrValue,
}

/// `/runs/:id/edit`: fetches the run, then shows the form filled with its input.
#[component]
pub fn EditPage(props: &EditPageProps) -> Html {
    let id = RunId::from_str(&props.id).ok();
    let run = use_state(|| Load::<Rc<RunDetail>, LoadError>::Loading);
    {
        let run = run.clone();
        use_effect_with(id, move |&id| {
            if let Some(id) = id {
                wasm_bindgen_futures::spawn_local(async move {
                    run.set(match api::run(id).await {
                        Ok(detail) => Load::Ready(Rc::new(detail)),
                        Err(error) => Load::Failed(LoadError::from(error)),
                    });
                });
            }
        });
    }
    if id.is_none() {
        return not_found("That is not a run id.");
    }
    match &*run {
        // Mounted only once the run is here: the form takes its first state from it.
        Load::Ready(detail) => html! {
            <div class="home"><div class="home-main"><SubmitForm from={ detail.clone() } /></div></div>
        },
        Load::Failed(LoadError::NotFound) => not_found("There is no run with this id."),
        Load::Failed(LoadError::Other(error)) => html! {
            <section class="panel error-state" data-testid="edit-error-state" role="alert">
                <h1>{ "Could not load the run to edit" }</h1>
                <p>{ error.clone() }</p>
            </section>
        },
        Load::Loading => html! {
            <section class="panel loading" data-testid="edit-loading" aria-busy="true"><p>{ "Loading the run…" }</p></section>
        },
    }
}
