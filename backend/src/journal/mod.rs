//! The prompt journal: `prompts.txt`, an append-only file with one record per run, or, when
//! several replicas share PostgreSQL, the `prompts` table written in the run's own transaction
//! ([`PromptTable`]; `backend journal export` writes it out in the file's format).
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
mod table;
mod writer;

use std::path::Path;

pub use record::{RecordRef, ScannedRecord, decode_record, encode_record, scan};
pub use table::PromptTable;
pub use writer::FileJournal;

use common::RunId;

/// Where prompts are journaled; cheap to clone.
#[derive(Debug, Clone)]
pub enum Journal {
    File(FileJournal),
    /// The prompt is stored by the run store with the run; the table is read back here.
    Table(PromptTable),
}

impl Journal {
    /// Opens (or creates) `prompts.txt` at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        FileJournal::open(path).map(Journal::File)
    }

    /// Records the run's prompt and returns where it is, once durable. The table journal only
    /// computes the reference: the run store writes the prompt in the run's transaction.
    pub async fn append(&self, run_id: RunId, prompt: &str) -> Result<RecordRef, JournalError> {
        match self {
            Journal::File(file) => file.append(run_id, prompt).await,
            Journal::Table(_) => Ok(PromptTable::reference(prompt)),
        }
    }

    /// Reads the run's prompt back and verifies it against `at`.
    pub async fn read(&self, run_id: RunId, at: RecordRef) -> Result<String, JournalError> {
        match self {
            Journal::File(file) => file.read(run_id, at).await,
            Journal::Table(table) => table.read(run_id, at).await,
        }
    }

    /// Where prompts are, for log lines: the file's path or the table's name.
    pub fn location(&self) -> String {
        match self {
            Journal::File(file) => file.path().display().to_string(),
            Journal::Table(_) => "the prompts table".to_owned(),
        }
    }

    /// Lets another process open the file; called at shutdown, once nothing appends.
    pub fn release(&self) {
        if let Journal::File(file) = self {
            file.release();
        }
    }
}

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
    /// The prompts table could not be read.
    #[error("prompts table")]
    Table(#[source] sqlx::Error),
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
