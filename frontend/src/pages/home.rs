//! The home page: the submit form, the fault panel in emulator mode, and the latest runs.
//!
//! The recent-runs panel owns the page's WebSocket and reports its state here. While it is
//! lost the page says so at the top (with "Reconnect now"), and the actions that need the
//! server (Run, Inject, Clear) are disabled rather than failing one by one. Once it is back, a
//! failure from the outage is stale: it is cleared, and the health (banners, form defaults) and
//! the emulator's fault plan are read again.

use std::cell::Cell;
use std::rc::Rc;

use yew::prelude::*;

use crate::components::{FaultPanel, HistoryPanel, SubmitForm, connection_notice};
use crate::hooks::{Connection, LiveConnection};
use crate::state::history::RECENT;
use crate::state::history_query::HistoryQuery;
use crate::state::{HealthReload, HealthState};

/// `/`: write a prompt, inject faults (emulator only), browse recent runs.
#[component]
pub fn HomePage() -> Html {
    let health = use_context::<HealthState>().unwrap_or(HealthState::Loading);
    let reload_health = use_context::<HealthReload>();
    let connection = use_state(|| None::<LiveConnection>);
    // Counts reconnections after a drop; the form and the fault panel resync on each.
    let resync = use_state(|| 0u32);
    // Whether the last state reported was a lost connection, read when the next one arrives.
    let was_lost = use_memo((), |_| Rc::new(Cell::new(false)));

    let on_connection = {
        let (connection, resync, was_lost) = (connection.clone(), resync.clone(), (*was_lost).clone());
        Callback::from(move |live: LiveConnection| {
            let lost = matches!(live.state, Connection::Retrying { .. });
            if was_lost.replace(lost) && live.state == Connection::Open {
                resync.set(*resync + 1);
                if let Some(HealthReload(reload)) = &reload_health {
                    reload.emit(());
                }
            }
            connection.set(Some(live));
        })
    };
    let offline = connection.as_ref().is_some_and(|live| matches!(live.state, Connection::Retrying { .. }));

    html! {
        <>
            if let Some(live) = &*connection { { connection_notice(live) } }
            <div class="home">
                <div class="home-main">
                    <SubmitForm { offline } resync={ *resync } />
                    if health.is_emulator() { <FaultPanel { offline } resync={ *resync } /> }
                </div>
                <HistoryPanel query={ HistoryQuery::default() } page_size={ RECENT } { on_connection } />
            </div>
        </>
    }
}
