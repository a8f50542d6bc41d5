//! The prompt journal as a PostgreSQL table, for replicas sharing one database.

use common::RunId;
use sqlx::PgPool;

use super::{JournalError, RecordRef};

/// The `prompts` table, read back by `load_prompt_file`.
#[derive(Debug, Clone)]
pub struct PromptTable {
    pool: PgPool,
}

impl PromptTable {
    pub fn new(pool: PgPool) -> PromptTable {
        PromptTable { pool }
    }

    /// The reference a prompt's row must match: its length and CRC-32 (no offset in a table).
    pub fn reference(prompt: &str) -> RecordRef {
        RecordRef { offset: 0, len: prompt.len() as u64, crc32: crc32fast::hash(prompt.as_bytes()) }
    }

    /// Reads the run's prompt and checks it has the length and checksum the run recorded.
    pub async fn read(&self, run_id: RunId, at: RecordRef) -> Result<String, JournalError> {
        let prompt: Option<String> = sqlx::query_scalar("SELECT prompt FROM prompts WHERE run_id = $1")
            .bind(run_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(JournalError::Table)?;
        let corrupt = |reason: &str| JournalError::Corrupt { run_id, reason: reason.to_owned() };
        let prompt = prompt.ok_or_else(|| corrupt("the run has no row in the prompts table"))?;
        if prompt.len() as u64 != at.len {
            return Err(corrupt("length mismatch"));
        }
        if crc32fast::hash(prompt.as_bytes()) != at.crc32 {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(prompt)
    }
}
