//! `/api/ws`: the live event feed, for all runs or one run resumed after a given `seq`.
//!
//! Each connection gets the backlog it asked for and then the live feed, with no gap and no
//! duplicate (the hub hands out both under one lock; `last_seen` drops overlap). A client too
//! slow to keep up with the broadcast is not dropped: it is resubscribed with what it missed,
//! from memory (or, for one run, from the store). Its memory stays bounded: the broadcast
//! buffer is shared and fixed, and what it missed is re-read rather than queued for it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use axum::routing::get;
use common::RunId;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::extract::Query;
use super::runs::parse_run_id;
use crate::app::App;
use crate::error::ApiError;
use crate::events::{Published, Subscription, stamp};

/// Largest message a client may send; clients have nothing to say beyond pings.
const MAX_CLIENT_MESSAGE_BYTES: usize = 4096;

/// The routes of this resource.
pub fn router() -> Router<Arc<App>> {
    Router::new().route("/api/ws", get(upgrade))
}

/// Query of `GET /api/ws`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsParams {
    run_id: Option<String>,
    after_seq: Option<u64>,
}

async fn upgrade(
    State(app): State<Arc<App>>,
    Query(params): Query<WsParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|rejection| {
        ApiError::BadRequest(format!("{}: /api/ws needs a WebSocket handshake", rejection.body_text()))
    })?;
    let follow = match (params.run_id.as_deref(), params.after_seq) {
        (None, Some(_)) => return Err(ApiError::BadRequest("after_seq needs a run_id".into())),
        (None, None) => None,
        (Some(id), after_seq) => {
            let id = parse_run_id(id)?;
            let after_seq = after_seq.unwrap_or(0);
            let detail = app.detail(id).await?.ok_or_else(|| ApiError::NotFound(format!("no run with id {id}")))?;
            if after_seq > detail.last_seq {
                return Err(ApiError::BadRequest(format!(
                    "after_seq {after_seq} is beyond the run's last event ({})",
                    detail.last_seq
                )));
            }
            Some((id, after_seq))
        }
    };
    Ok(ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES).max_frame_size(MAX_CLIENT_MESSAGE_BYTES).on_upgrade(
        move |socket| async move {
            app.metrics.ws_client(1);
            follow_events(socket, &app, follow).await;
            app.metrics.ws_client(-1);
        },
    ))
}

/// What the connection has sent so far, to skip overlap and to resync after lagging.
#[derive(Default)]
struct Progress {
    last_seen: HashMap<RunId, u64>,
}

impl Progress {
    /// Whether the event is new to this client; records it if so.
    fn admit(&mut self, event: &Published) -> bool {
        let seen = self.last_seen.entry(event.event.run_id).or_default();
        if event.event.seq <= *seen {
            return false;
        }
        *seen = event.event.seq;
        true
    }
}

async fn follow_events(socket: WebSocket, app: &App, follow: Option<(RunId, u64)>) {
    let (mut sink, mut incoming) = socket.split();
    let only = follow.map(|(id, _)| id);
    let mut progress = Progress::default();
    if let Some((id, after_seq)) = follow {
        progress.last_seen.insert(id, after_seq);
    }
    let mut subscription = app.hub.subscribe(follow);
    loop {
        let backlog = match backlog_of(app, &subscription, only, &progress).await {
            Ok(backlog) => backlog,
            Err(error) => {
                tracing::warn!(error = %error, "could not read a run's events for a WebSocket client");
                break;
            }
        };
        for event in backlog {
            if progress.admit(&event) && sink.send(Message::Text(event.json.clone())).await.is_err() {
                return;
            }
        }
        let lagged = loop {
            tokio::select! {
                received = subscription.live.recv() => match received {
                    Ok(event) => {
                        if only.is_some_and(|id| id != event.event.run_id) || !progress.admit(&event) {
                            continue;
                        }
                        if sink.send(Message::Text(event.json.clone())).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => break missed,
                    Err(RecvError::Closed) => return,
                },
                () = app.closing.cancelled() => {
                    let frame = CloseFrame { code: close_code::AWAY, reason: "the server is shutting down".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
                message = incoming.next() => match message {
                    Some(Ok(Message::Binary(_))) => {
                        let frame = CloseFrame { code: close_code::UNSUPPORTED, reason: "this socket only sends; binary frames are not accepted".into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        return;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                },
            }
        };
        subscription = app.hub.resubscribe(&progress.last_seen, only);
        let resent = subscription
            .backlog
            .iter()
            .filter(|e| e.event.seq > progress.last_seen.get(&e.event.run_id).copied().unwrap_or(0))
            .count();
        app.metrics.ws_lagged(lagged, resent as u64);
        // Runs gone from memory cannot get new events: forget them so the map stays small.
        progress.last_seen.retain(|id, _| only == Some(*id) || app.hub.holds(*id));
    }
}

/// The backlog of a subscription: from memory, or for one run no longer in memory, the store.
async fn backlog_of(
    app: &App,
    subscription: &Subscription,
    only: Option<RunId>,
    progress: &Progress,
) -> Result<Vec<Published>, crate::store::StoreError> {
    let mut backlog = subscription.backlog.clone();
    if let (Some(id), false) = (only, subscription.in_memory) {
        let after = progress.last_seen.get(&id).copied().unwrap_or(0);
        backlog = app.store.run_events(id, after).await?.into_iter().map(|e| stamp(Arc::new(e))).collect();
    }
    backlog.sort_by_key(|e| (e.event.run_id, e.event.seq));
    Ok(backlog)
}
