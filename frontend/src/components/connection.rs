//! The live-connection indicator.

use yew::prelude::*;

use crate::hooks::Connection;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ConnectionProps {
    /// As reported by the page's event stream hook.
    pub connection: Connection,
}

/// A dot and a word for the WebSocket's state, announced politely when it changes.
#[component]
pub fn ConnectionIndicator(props: &ConnectionProps) -> Html {
    let (state, text) = match props.connection {
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
