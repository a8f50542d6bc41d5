//! The history page (`/history?…`): every run, filtered and paged as the URL says.

use yew::prelude::*;

use crate::components::HistoryPanel;
use crate::state::history::PAGE_SIZE;
use crate::state::history_query::HistoryQuery;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct HistoryPageProps {
    pub query: HistoryQuery,
}

#[component]
pub fn HistoryPage(props: &HistoryPageProps) -> Html {
    html! {
        <div class="history-page">
            <HistoryPanel query={ props.query.clone() } page_size={ PAGE_SIZE } full=true />
        </div>
    }
}
