//! The history page (`/history?…`): every run, filtered and paged as the URL says.

use yew::prelude::*;

use crate::components::HistoryPanel;
use crate::state::history::PAGE_SIZE;
use crate::state::history_query::HistoryQuery;

/// The whole history for `query`, keyed by it so a new filter or page starts a fresh list.
pub fn history_page(query: &HistoryQuery) -> Html {
    html! {
        <div class="history-page">
            <HistoryPanel key={ query.to_search() } query={ query.clone() } page_size={ PAGE_SIZE } full=true />
        </div>
    }
}
