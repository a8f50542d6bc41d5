//! View state as pure reducers: each page's state, the actions that change it, and `Reducible`
//! impls with no side effects, so all of it is unit-tested natively.
//!
//! - [`load`]: [`Load`], how far a request-backed value got, and [`LoadError`].
//! - [`run`]: one run's live picture (folded with `common`'s `RunDetail::apply`) and its logs.
//! - [`history`]: the recent-runs list, kept current by events from every run.
//! - [`form`]: the submit form, its validation and the idempotency key of a submission.
//! - [`health`]: the server's health answer, shared with every page.
//! - [`faults`]: the emulator's fault plan, in words.

pub mod faults;
pub mod form;
pub mod health;
pub mod history;
pub mod load;
pub mod run;

pub use health::HealthState;
pub use load::{Load, LoadError};
