//! The app's URLs: the home page (form and history) and one page per run.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::components::{HomePage, NotFound, RunPage};

/// Every client-side route; the backend serves `index.html` for all of them.
#[derive(Debug, Clone, PartialEq, Routable)]
pub enum Route {
    /// The submit form and the history.
    #[at("/")]
    Home,
    /// One run, live; its URL can be shared and reloaded.
    #[at("/runs/:id")]
    Run {
        /// The run id as it appears in the URL.
        id: String,
    },
    /// Anything else.
    #[not_found]
    #[at("/404")]
    NotFound,
}

/// Renders the page for a route.
pub fn switch(route: Route) -> Html {
    match route {
        Route::Home => html! { <HomePage /> },
        // Keyed by id so moving between runs starts a fresh page (state, socket) for each.
        Route::Run { id } => {
            let key = id.clone();
            html! { <RunPage key={ key } id={ AttrValue::from(id) } /> }
        }
        Route::NotFound => html! { <NotFound /> },
    }
}
