//! Custom hooks: the live event stream (with its reconnect schedule) and a ticking clock.

mod backoff;
mod use_event_stream;
mod use_now;

pub use use_event_stream::{Connection, LiveConnection, StreamMessage, use_event_stream};
pub use use_now::use_now;
