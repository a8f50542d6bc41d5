//! The Yew single-page app of the prompt pipeline: write a prompt, watch its run live, browse
//! the history.
//!
//! A tour, from the wire inwards:
//! - [`api`] makes every REST call (typed with `common`'s wire types) and maps failures to
//!   [`api::ApiError`]; [`hooks::use_event_stream`] owns the WebSocket of a page, reconnects with
//!   backoff and resumes a run after the last `seq` it delivered.
//! - [`state`] holds the view state as pure reducers: a run page folds events with
//!   `common::RunDetail::apply` (the same fold the backend uses), the history list applies
//!   every run's events, the submit form validates and keeps one idempotency key per submission.
//! - [`markdown`] turns untrusted model output into a closed set of harmless elements.
//! - [`format`] formats durations, countdowns and backoff delays; [`browser`] wraps the few
//!   browser APIs (clock, locale, randomness, clipboard) so everything else tests natively.
//! - [`components`] are the widgets, one per file; [`routes`] maps `/` and `/runs/{id}` to pages with a
//!   tiny router of its own.
//!
//! [`App`] fetches `/api/health` once and shares it through a context (emulator banner, form
//! defaults, limits); `main.rs` only mounts it.

pub mod api;
pub mod browser;
pub mod components;
pub mod format;
pub mod hooks;
pub mod markdown;
pub mod routes;
pub mod state;

use yew::prelude::*;

use crate::components::{AppHeader, EmulatorBanner};
use crate::routes::Router;
use crate::state::HealthState;

/// The whole app: health context, router, header and the current page.
#[component]
pub fn App() -> Html {
    let health = use_state(|| HealthState::Loading);
    {
        let health = health.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                health.set(match api::health().await {
                    Ok(answer) => HealthState::Ready(std::rc::Rc::new(answer)),
                    Err(error) => HealthState::Failed(error.to_string()),
                });
            });
        });
    }
    html! {
        <ContextProvider<HealthState> context={ (*health).clone() }>
            <Router>
                <a class="skip-link" href="#main">{ "Skip to content" }</a>
                <AppHeader />
                <EmulatorBanner />
            </Router>
        </ContextProvider<HealthState>>
    }
}
