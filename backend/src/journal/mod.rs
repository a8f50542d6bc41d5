//! The prompt journal: `prompts.txt`, an append-only file with one record per run.
//!
//! Every submitted prompt is appended here before its run is accepted, and `load_prompt_file`
//! reads it back from here, like the original system did with its `prompts.txt`. Unlike the
//! original, concurrent runs cannot read each other's prompt and a crash cannot leave an entry
//! that a reader misreads:
//!
//! - each record is written with a single `write` and made durable (`fdatasync`) before the
//!   append returns; appends are group-committed by one writer thread, so many concurrent
//!   submissions share one sync;
//! - a record names its run and carries its length and CRC-32, and the run stores the record's
//!   [`RecordRef`]; a reader reads exactly that byte range and checks all three;
//! - a record torn by a crash is never referenced (its run was never accepted), and [`scan`]
//!   reports it as torn instead of returning a prompt.
//!
//! The file stays readable by a person:
//!
//! ```text
//! === prompt run=0193... bytes=42 crc32=1c291ca3 ===
//! Explain in three sentences why retries ...
//! === end run=0193... ===
//! ```

mod record;
mod writer;

pub use record::{RecordRef, ScannedRecord, decode_record, encode_record, scan};
pub use writer::Journal;

use common::RunId;

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened, read, written or synced.
    #[error("prompt journal {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Another process appends to this journal.
    #[error(transparent)]
    Locked(#[from] crate::lockfile::LockError),
    /// The journal writer thread is gone (the server is shutting down).
    #[error("the prompt journal is closed")]
    Closed,
    /// The bytes at the recorded place are not the run's intact record.
    #[error("prompt journal record for run {run_id} is damaged: {reason}")]
    Corrupt {
        /// The run whose record was read.
        run_id: RunId,
        reason: String,
    },
}
