//! The prompt pipeline for Claude on AWS Bedrock: server, flow engine and Bedrock emulator.
//!
//! A tour, in the order a run travels:
//!
//! - [`routes`]: the HTTP layer. `POST /api/runs` validates a submission and hands it to
//!   [`app::App::submit`]; `/api/ws` streams events live; errors map to responses in [`error`].
//! - [`journal`]: `prompts.txt`, where every prompt is appended (durably) before its run is
//!   accepted, and read back by the first task.
//! - [`store`]: runs and their events in SQLite, or PostgreSQL shared by several replicas,
//!   behind the [`store::Store`] trait; [`cluster`] is what replicas do on PostgreSQL (leases,
//!   the tailer that feeds every replica every run's events, takeover of a dead owner's runs).
//! - [`events`]: the hub that numbers each run's events, fans them out and persists them.
//! - [`flow`]: the engine that runs `load_prompt_file` then `call_bedrock` with retries.
//! - [`batch`]: batches of prompts, each item a run, started by a scheduler that adapts each
//!   model's concurrency to its quota.
//! - [`bedrock`]: the only module that uses the AWS SDK; classifies errors for the flow.
//! - [`emulator`]: a Bedrock Runtime server speaking the real wire protocol, used when no AWS
//!   is configured and by the tests, so the real SDK code path always runs.
//! - [`telemetry`]: `tracing` setup, including the layer that turns a run's log lines into
//!   its events. [`metrics`] keeps the Prometheus counters.
//! - [`config`] parses flags and environment; [`startup`] binds and runs the server.

pub mod app;
pub mod batch;
pub mod bedrock;
pub mod catalog;
pub mod causes;
pub mod cluster;
pub mod config;
pub mod csv;
pub mod emulator;
pub mod error;
pub mod events;
pub mod feed;
pub mod flow;
pub mod journal;
pub mod lockfile;
pub mod metrics;
pub mod net;
pub mod routes;
pub mod run_export;
pub mod runs;
pub mod startup;
pub mod store;
pub mod submission;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod wire;
