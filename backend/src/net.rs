//! Socket settings shared by the app's server and the built-in emulator.

use axum::serve::{ListenerExt as _, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// Sets `TCP_NODELAY` on every accepted connection. Events and stream frames are small
/// writes in quick succession; with Nagle's algorithm each one after the first would wait for
/// the peer's delayed ACK (up to 40 ms), which is most of a streamed token's trip to the browser.
pub fn without_nagle(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    fn set_nodelay(stream: &mut TcpStream) {
        // Failing only costs latency, never correctness: serve the connection anyway.
        let _ = stream.set_nodelay(true);
    }
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}
