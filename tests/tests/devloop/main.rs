//! The development loop the README documents: `trunk serve` in front of the backend, forwarding
//! `/api` and the WebSocket at `/api/ws` with the `[[proxy]]` entries of `Trunk.toml`.
//!
//! Trunk is a tool like the browser suite's Chromium: `cargo xtask test` installs it, and these
//! tests fail, rather than skip, when it is missing (see [`trunk::trunk_bin`]).
#![allow(clippy::unwrap_used)] // test code: a failed expectation is a panic

mod trunk;

mod proxy;
