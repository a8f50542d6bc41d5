//! The home page: the submit form, the fault panel in emulator mode, and the latest runs.

use yew::prelude::*;

use crate::components::{FaultPanel, HistoryPanel, SubmitForm};
use crate::state::HealthState;
use crate::state::history::RECENT;
use crate::state::history_query::HistoryQuery;

/// `/`: write a prompt, inject faults (emulator only), browse recent runs.
#[component]
pub fn HomePage() -> Html {
    let health = use_context::<HealthState>().unwrap_or(HealthState::Loading);
    html! {
        <div class="home">
            <div class="home-main">
                <SubmitForm />
                if health.is_emulator() { <FaultPanel /> }
            </div>
            <HistoryPanel query={ HistoryQuery::default() } page_size={ RECENT } />
        </div>
    }
}
