//! Reliability and security tests: kills, shutdowns, Bedrock faults, disk trouble, hostile
//! input and clients, access control, limits and load. One binary, one module per area; the
//! shared process and measurement helpers are in `support`. Long soaks run with
//! `HARDENING_LONG=1`; the default run keeps every test short.
#![allow(clippy::unwrap_used)] // test code: a failed expectation is a panic

mod bad_input;
mod bedrock_faults;
mod disk;
mod fuzz;
mod kill9;
mod limits;
mod load;
mod security;
mod shutdown;
mod state_machine;
mod support;
mod websocket;
