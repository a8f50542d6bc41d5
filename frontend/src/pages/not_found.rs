//! The page for unknown URLs and unknown runs.

use yew::prelude::*;

use crate::router::{Link, Route};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct NotFoundProps {
    /// What was not found, in words.
    #[prop_or(AttrValue::Static("This page does not exist."))]
    pub message: AttrValue,
}

/// Says what is missing and offers the way home.
#[component]
pub fn NotFound(props: &NotFoundProps) -> Html {
    html! {
        <section class="panel empty-state" id="not-found" data-testid="not-found">
            <h1>{ "Not found" }</h1>
            <p>{ props.message.clone() }</p>
            <Link to={ Route::Home }>{ "Start a new run" }</Link>
        </section>
    }
}
