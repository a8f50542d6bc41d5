//! An event together with its JSON text, made once when the event is created.
//!
//! Its own module because both the [`crate::events`] hub (which fans the text out to every
//! WebSocket) and the [`crate::store`] (which stores that same text) use it: the hub depends on
//! the store, so the type cannot live in the hub.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use common::Event;

/// An event with its wire form, serialized once however many clients receive it.
#[derive(Debug)]
pub struct Stamped {
    pub event: Arc<Event>,
    pub json: Utf8Bytes,
}

/// A published event, shared by every subscriber and the store without copying.
pub type Published = Arc<Stamped>;

/// Gives an event its wire form.
pub fn stamp(event: Arc<Event>) -> Published {
    let json = Utf8Bytes::from(event.to_json());
    Arc::new(Stamped { event, json })
}
