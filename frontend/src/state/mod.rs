//! View state as pure reducers and pure readings of it, so all of it is unit-tested natively.
//!
//! - [`load`]: [`Load`], how far a request-backed value got, and [`LoadError`].
//! - [`run`]: one run's live picture (folded with `common`'s `RunDetail::apply`), its logs and
//!   [`outputs`], the text of each `call_bedrock` attempt; [`progress`], its tasks in one line
//!   and its attempts on a time axis.
//! - [`partial`], [`stall`], [`verdict`]: what the run page says about an answer that is not
//!   whole, a stream that went silent, and a run that ended.
//! - [`history`]: a page of the history, kept current by events from every run, for a
//!   [`history_query`], the filters and page that the history page keeps in its URL.
//! - [`form`]: the submit form, its validation and the idempotency key of a submission;
//!   [`settings`] are the last used ones, [`models`] the ids the model field offers, [`replay`]
//!   the requests that run a run's input again.
//! - [`health`]: the server's health answer, shared with every page.
//! - [`faults`]: the emulator's fault plan, in words.

pub mod batch;
pub mod compare;
pub mod faults;
pub mod form;
pub mod health;
pub mod history;
pub mod history_query;
pub mod load;
pub mod models;
pub mod outputs;
pub mod partial;
pub mod progress;
pub mod replay;
pub mod run;
pub mod settings;
pub mod stall;
pub mod verdict;

#[cfg(test)]
mod script;

pub use health::{HealthReload, HealthState};
pub use load::{Load, LoadError};
