//! The live-connection indicator, and the page-level notice while the connection is lost.

use yew::prelude::*;

use crate::hooks::{Connection, LiveConnection};

/// A dot and a word for the WebSocket's state (as the page's event stream hook reports it),
/// announced politely when it changes.
pub fn connection_indicator(connection: Connection) -> Html {
    let (state, text) = match connection {
        Connection::Idle => ("idle", "Not connected".to_owned()),
        Connection::Connecting => ("connecting", "Connecting…".to_owned()),
        Connection::Open => ("open", "Live".to_owned()),
        Connection::Retrying { attempt, delay_ms } => {
            ("retrying", format!("Reconnecting in {} s (attempt {attempt})", delay_ms.div_ceil(1_000)))
        }
    };
    html! {
        <span id="connection-status" data-testid="connection-status" data-state={ state }
              class={ format!("connection connection-{state}") } role="status" aria-live="polite">
            <span class="dot" aria-hidden="true"></span>{ text }
        </span>
    }
}

/// While the connection is lost: says so at the top of the page, that what is shown may be out
/// of date and that actions wait for the server, and offers to reconnect at once.
pub fn connection_notice(connection: &LiveConnection) -> Html {
    let Connection::Retrying { attempt, delay_ms } = connection.state else { return Html::default() };
    let onclick = connection.reconnect_now.reform(|_: MouseEvent| ());
    html! {
        <div id="connection-notice" data-testid="connection-notice" class="connection-notice" role="alert">
            <p>
                <strong>{ "Lost the connection to the server." }</strong>
                { " What you see may be out of date, and actions wait until it is back. " }
                { format!("Trying again in {} s (attempt {attempt}).", delay_ms.div_ceil(1_000)) }
            </p>
            <button type="button" id="reconnect-now" data-testid="reconnect-now" { onclick }>{ "Reconnect now" }</button>
        </div>
    }
}
