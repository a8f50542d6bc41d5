//! Several replicas on one PostgreSQL: the store both modes share, then real server processes
//! sharing a real database (exactly one executor, gapless fan-out, takeover after `kill -9`,
//! fencing of a frozen owner, lost notifications, cancel, idempotency, the rate limit
//! and a model's quota across replicas). The database comes from [`tests::postgres`]: nothing to set up by hand.
#![allow(clippy::unwrap_used)] // test code: a failed expectation is a panic

mod batches;
mod replicas;
mod store;
mod support;
