//! End-to-end tests of the prompt pipeline: the real server on port 0, the real AWS SDK, the
//! built-in Bedrock emulator. One binary, one module per area (see `tests/src/lib.rs` for the
//! helpers).
#![allow(clippy::unwrap_used)] // test code: a failed expectation is a panic

mod bad_input;
mod batch_files;
mod batches;
mod cancel;
mod catalog;
mod cli;
mod concurrency;
mod contract;
mod crash;
mod expected;
mod export;
mod happy_path;
mod history;
mod idempotency;
mod load_retry;
mod metrics;
mod quota;
mod restart;
mod retries;
mod search;
mod shutdown;
mod websocket;
