//! The page for unknown URLs and unknown runs.

use yew::prelude::*;

use crate::router::{Link, Route};

/// What an unknown URL shows.
pub const NO_SUCH_PAGE: &str = "This page does not exist.";

/// Says what is missing, in words, and offers the way home. A function rather than a
/// component: it has no state, and a component type costs the Wasm Yew's lifecycle code again.
pub fn not_found(message: &'static str) -> Html {
    html! {
        <section class="panel empty-state" id="not-found" data-testid="not-found">
            <h1>{ "Not found" }</h1>
            <p>{ message }</p>
            <Link to={ Route::Home }>{ "Start a new run" }</Link>
        </section>
    }
}
