//! End-to-end tests in a real headless Chromium: the real server on port 0 serving the built
//! frontend (`dist/`, see [`harness::dist_dir`]), the built-in emulator behind the real SDK,
//! and a page driven through chromedriver exactly as a person would use it.
//!
//! Each test has its own server and its own browser. Screenshots of the main views and states
//! land in `tests/screenshots/`, committed, for a person to look at.
#![allow(clippy::unwrap_used)] // test code: a failed expectation is a panic

mod harness;
// The cluster tests' replicas, shared with the load-balancer test here.
#[path = "../cluster/support.rs"]
#[allow(dead_code)]
mod cluster_support;

mod answers;
mod batches;
mod compare;
mod contrast;
mod faults;
mod form;
mod history;
mod hostile;
mod iterate;
mod live;
mod load_balancer;
mod retries;
mod run_page;
mod submit;
mod verdicts;
