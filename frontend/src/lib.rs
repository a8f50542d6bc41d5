//! The Yew single-page app of the prompt pipeline: write a prompt, watch its run live, browse
//! the history.
//!
//! A tour, from the wire inwards:
//! - [`api`] makes every REST call (typed with `common`'s wire types) and maps failures to
//!   [`api::ApiError`]; [`hooks::use_event_stream`] owns the WebSocket of a page, reconnects with
//!   backoff (its schedule sits beside it, in `hooks/backoff.rs`) and resumes a run after the
//!   last `seq` it delivered.
//! - [`state`] holds the view state as pure reducers: a run page folds events with
//!   `common::RunDetail::apply` (the same fold the backend uses), the history list applies
//!   every run's events, the submit form validates and keeps one idempotency key per submission;
//!   a fetched value is a [`state::Load`], so loading, loaded and failed never overlap.
//! - [`markdown`] turns untrusted model output into a closed set of harmless elements.
//! - [`format`](mod@format) formats durations, countdowns, counts and temperatures; [`browser`] wraps the few
//!   browser APIs (clock, locale, randomness, clipboard, form values, focus) so everything else
//!   tests natively.
//! - [`router`] maps `/`, `/history`, `/runs/{id}`, `/runs/{id}/edit`, `/batches` and `/batches/{id}` to [`router::Route`]s with a tiny router of its own
//!   and shares the current one through a context; it knows no page.
//! - [`components`] are the widgets, one per file; [`pages`] are the routed pages built from them.
//! - [`app`] is the shell: it fetches `/api/health` once and shares it through a context
//!   (emulator banner, form defaults, limits), and its switch picks the page for the route;
//!   `main.rs` only mounts [`App`].
//!
//! Imports point one way: `app` → `pages` → `components` → `hooks`, `state`, `api`, `format`,
//! `browser`, `markdown`; everything UI may use `router`, which uses only `browser`.

pub mod api;
pub mod app;
pub mod browser;
pub mod components;
pub mod format;
pub mod hooks;
pub mod markdown;
pub mod pages;
pub mod router;
pub mod state;

pub use app::App;
