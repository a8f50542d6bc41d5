//! `/api/ws`: the live event feed, for all runs or one run resumed after a given `seq`.
//!
//! The handler validates the query and pumps a [`crate::feed::Feed`] into the socket; what
//! the client receives, in what order and how a slow client catches up is the feed's business.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

use super::extract::Query;
use super::runs::parse_run_id;
use crate::app::App;
use crate::causes::chain;
use crate::error::ApiError;
use crate::feed::Feed;

/// Largest message a client may send; clients have nothing to say beyond pings.
const MAX_CLIENT_MESSAGE_BYTES: usize = 4096;

pub fn router() -> Router<Arc<App>> {
    Router::new().route("/api/ws", get(upgrade))
}

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
        (Some(id), after_seq) => Some((parse_run_id(id)?, after_seq.unwrap_or(0))),
    };
    let feed = app.feed(follow).await?;
    Ok(ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES).max_frame_size(MAX_CLIENT_MESSAGE_BYTES).on_upgrade(
        move |socket| async move {
            app.metrics().ws_client(1);
            pump(socket, &app, feed).await;
            app.metrics().ws_client(-1);
        },
    ))
}

/// Sends the feed's events until the client leaves, the server shuts down, or a read fails.
async fn pump(socket: WebSocket, app: &App, mut feed: Feed) {
    let (mut sink, mut incoming) = socket.split();
    loop {
        tokio::select! {
            next = feed.next() => match next {
                Ok(Some(event)) => {
                    if sink.send(Message::Text(event.json.clone())).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(error = %chain(&error), "could not read a run's events for a WebSocket client");
                    return;
                }
            },
            () = app.closing().cancelled() => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "the server is shutting down".into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(_))) => {
                    let frame = CloseFrame {
                        code: close_code::UNSUPPORTED,
                        reason: "this socket only sends; binary frames are not accepted".into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
