//! The app shell: the health context, the router, the header and banners, and the switch that
//! turns the current [`Route`] into a page.

use std::rc::Rc;

use yew::prelude::*;

use crate::api;
use crate::components::{app_header, emulator_banner};
use crate::pages::{
    BatchesPage, ComparePage, EditPage, HomePage, NO_SUCH_PAGE, batch_page, history_page, not_found, run_page,
};
use crate::router::{Route, Router};
use crate::state::models::CatalogState;
use crate::state::{HealthReload, HealthState};

/// Fetches `/api/health` and shares it (emulator banner, form defaults, limits), then renders
/// the header, the banners and the current page. A page asks for it again through
/// [`HealthReload`] (the home page does, once the server is back after a lost connection).
#[component]
pub fn App() -> Html {
    let health = use_state(|| HealthState::Loading);
    let reloads = use_state(|| 0u32);
    {
        let health = health.clone();
        // Until the new answer arrives the last one stays shown, so nothing flickers.
        use_effect_with(*reloads, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                health.set(match api::health().await {
                    Ok(answer) => HealthState::Ready(Rc::new(answer)),
                    Err(error) => HealthState::Failed(error.to_string()),
                });
            });
        });
    }
    let catalog = use_state(CatalogState::default);
    {
        let catalog = catalog.clone();
        // Read once: it changes only when the operator replaces the file and restarts.
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(answer) = api::models().await {
                    catalog.set(CatalogState(Some(Rc::new(answer))));
                }
            });
        });
    }
    let reload = HealthReload(Callback::from(move |()| reloads.set(*reloads + 1)));
    let banner = emulator_banner(&health);
    let render = Callback::from(move |route: Route| {
        html! {
            <>
                <a class="skip-link" href="#main">{ "Skip to content" }</a>
                { app_header() }
                { banner.clone() }
                <main id="main" tabindex="-1">{ switch(&route) }</main>
            </>
        }
    });
    html! {
        <ContextProvider<HealthState> context={ (*health).clone() }>
        <ContextProvider<HealthReload> context={ reload }>
        <ContextProvider<CatalogState> context={ (*catalog).clone() }>
            <Router focus_on_navigate="main" { render } />
        </ContextProvider<CatalogState>>
        </ContextProvider<HealthReload>>
        </ContextProvider<HealthState>>
    }
}

/// The page for a route.
fn switch(route: &Route) -> Html {
    match route {
        Route::Home => html! { <HomePage /> },
        Route::History { query } => history_page(query),
        Route::Run { id } => run_page(id),
        Route::Edit { id } => html! { <EditPage key={ id.clone() } id={ AttrValue::from(id.clone()) } /> },
        Route::Batches => html! { <BatchesPage /> },
        Route::Batch { id } => batch_page(id),
        Route::Compare { search } => html! { <ComparePage search={ AttrValue::from(search.clone()) } /> },
        Route::NotFound => not_found(NO_SUCH_PAGE),
    }
}
