//! The WebSocket hook: one socket per component, owned by a task, reconnected with backoff.
//!
//! The effect spawns a task that owns the gloo-net `WebSocket`; the effect's cleanup aborts the
//! task, and dropping the socket inside it closes the connection, so unmounting a page (or
//! switching runs) never leaves a socket behind. A dropped connection is retried with
//! exponential backoff and jitter, on the schedule in `backoff.rs`. For one run the task
//! remembers the highest `seq` it delivered and resumes after it, so a reconnect neither misses
//! nor repeats events; for the all-runs stream the component is told to refetch instead.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;

use common::Event;
use futures_util::future::{AbortHandle, abortable, poll_fn};
use futures_util::{Sink, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State};
use gloo_timers::future::TimeoutFuture;
use yew::prelude::*;

use super::backoff::{self, HEALTHY_AFTER_MS};
use crate::api::{StreamTarget, ws_url};
use crate::browser;

/// The state of the live connection, for the connection indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nothing to follow yet (the page is still loading).
    Idle,
    /// Opening the socket.
    Connecting,
    /// Connected; events arrive live.
    Open,
    /// Disconnected; the next attempt starts after a delay.
    Retrying {
        /// Consecutive failed attempts so far.
        attempt: u32,
        /// Milliseconds until the next attempt.
        delay_ms: u32,
    },
}

/// How often a backoff wait looks whether the person asked to reconnect now.
const WAKE_CHECK_MS: u32 = 100;

/// A page's live connection: its state, and a way to skip the backoff wait.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConnection {
    pub state: Connection,
    /// Reconnects at once instead of waiting out the backoff ("Reconnect now").
    pub reconnect_now: Callback<()>,
}

/// What the stream tells its component.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMessage {
    /// The socket (re)opened; `resumed` is true after a drop, when a list may need refetching.
    Opened { resumed: bool },
    /// One event, in `seq` order per run.
    Event(Box<Event>),
}

/// Follows `target` over a WebSocket while it is `Some`, passing every message to `on_message`.
///
/// The socket is opened again only when the target's run changes; later `after_seq` values
/// passed in are ignored because the task tracks what it delivered itself.
#[hook]
pub fn use_event_stream(target: Option<StreamTarget>, on_message: Callback<StreamMessage>) -> LiveConnection {
    let connection = use_state_eq(|| Connection::Idle);
    // Set by "Reconnect now", read (and cleared) by the task's backoff wait.
    let wake = use_memo((), |_| Rc::new(Cell::new(false)));
    // The task reads the latest callback from here, so re-renders never restart the socket.
    let callback = use_mut_ref(|| on_message.clone());
    *callback.borrow_mut() = on_message;

    let key = target.map(|target| match target {
        StreamTarget::AllRuns => None,
        StreamTarget::Run { id, .. } => Some(id),
    });
    {
        let setter = connection.setter();
        let wake = (*wake).clone();
        use_effect_with(key, move |_| {
            let handle: Option<AbortHandle> = target.map(|target| {
                let (task, handle) = abortable(follow(target, callback, setter.clone(), wake));
                wasm_bindgen_futures::spawn_local(async move {
                    // `Err(Aborted)` is the normal end: the component went away.
                    let _ = task.await;
                });
                handle
            });
            if handle.is_none() {
                setter.set(Connection::Idle);
            }
            move || {
                if let Some(handle) = handle {
                    handle.abort();
                }
            }
        });
    }
    let reconnect_now = {
        let wake = (*wake).clone();
        Callback::from(move |()| wake.set(true))
    };
    LiveConnection { state: *connection, reconnect_now }
}

/// Connects, delivers, and reconnects until aborted.
async fn follow(
    mut target: StreamTarget,
    callback: Rc<RefCell<Callback<StreamMessage>>>,
    connection: UseStateSetter<Connection>,
    wake: Rc<Cell<bool>>,
) {
    // Clone out of the cell before emitting: emitting may re-render, which writes the cell.
    let emit = |message: StreamMessage| {
        let callback = callback.borrow().clone();
        callback.emit(message);
    };
    let mut failures = 0u32;
    let mut opened_before = false;
    loop {
        connection.set(Connection::Connecting);
        let (protocol, host) = browser::page_origin();
        if let Ok(mut socket) = WebSocket::open(&ws_url(&protocol, &host, target)) {
            // The sink becomes ready once the socket has opened or failed to.
            let ready = poll_fn(|cx| Pin::new(&mut socket).poll_ready(cx)).await;
            if ready.is_ok() && matches!(socket.state(), State::Open) {
                let opened_at = browser::now_ms();
                connection.set(Connection::Open);
                emit(StreamMessage::Opened { resumed: opened_before });
                opened_before = true;
                let mut delivered = false;
                while let Some(Ok(message)) = socket.next().await {
                    let Message::Text(text) = message else { continue };
                    // An event this version cannot read is skipped rather than ending the stream.
                    let Ok(event) = serde_json::from_str::<Event>(&text) else { continue };
                    if let StreamTarget::Run { id, after_seq } = &mut target
                        && event.run_id == *id
                    {
                        *after_seq = (*after_seq).max(event.seq);
                    }
                    delivered = true;
                    emit(StreamMessage::Event(Box::new(event)));
                }
                if delivered || browser::now_ms() - opened_at >= HEALTHY_AFTER_MS {
                    failures = 0;
                }
            }
        }
        failures = failures.saturating_add(1);
        let delay_ms = backoff::jittered(backoff::reconnect_delay_ms(failures), browser::random());
        connection.set(Connection::Retrying { attempt: failures, delay_ms });
        wake.set(false);
        let mut waited = 0;
        while waited < delay_ms && !wake.replace(false) {
            TimeoutFuture::new(WAKE_CHECK_MS.min(delay_ms - waited)).await;
            waited += WAKE_CHECK_MS;
        }
    }
}
