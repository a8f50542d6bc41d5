//! The app header: name and navigation.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::routes::Route;

/// The top bar, on every page.
#[component]
pub fn AppHeader() -> Html {
    html! {
        <header class="app-header">
            <Link<Route> to={ Route::Home } classes="brand">
                <span class="brand-mark" aria-hidden="true">{ "◆" }</span>{ "Prompt Runner" }
            </Link<Route>>
            <nav aria-label="Main">
                <Link<Route> to={ Route::Home }>{ "New run" }</Link<Route>>
                <a href="/#history">{ "History" }</a>
            </nav>
        </header>
    }
}
