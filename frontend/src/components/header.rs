//! The app header: name and navigation.

use yew::prelude::*;

use crate::router::{Link, Route};
use crate::state::history_query::HistoryQuery;

/// The top bar, on every page.
pub fn app_header() -> Html {
    html! {
        <header class="app-header">
            <Link to={ Route::Home } classes="brand">
                <span class="brand-mark" aria-hidden="true">{ "◆" }</span>{ "Prompt Runner" }
            </Link>
            <nav aria-label="Main">
                <Link to={ Route::Home }>{ "New run" }</Link>
                <Link to={ Route::History { query: HistoryQuery::default() } }>{ "History" }</Link>
                <Link to={ Route::Batches }>{ "Batches" }</Link>
            </nav>
        </header>
    }
}
