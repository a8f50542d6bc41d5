//! The journal file and its group-committing writer thread.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::RunId;
use tokio::sync::{mpsc, oneshot};

use super::{JournalError, RecordRef, decode_record, encode_record};

/// Most records one sync covers; bounds the latency of the last appender in a burst.
const MAX_GROUP: usize = 1024;

struct Append {
    record: Vec<u8>,
    crc32: u32,
    reply: oneshot::Sender<Result<RecordRef, JournalError>>,
}

/// Handle to the prompt journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    path: Arc<PathBuf>,
    appends: mpsc::UnboundedSender<Append>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let io_err = |source| JournalError::Io { path: path.display().to_string(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io_err)?;
        let mut end = file.seek(SeekFrom::End(0)).map_err(io_err)?;
        // A file that does not end in a newline (hand-edited, or torn by a crash) would glue the
        // next header to its last line; a person reading it deserves a clean line.
        if end > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(end - 1)).map_err(io_err)?;
            file.read_exact(&mut last).map_err(io_err)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io_err)?;
                file.sync_data().map_err(io_err)?;
                end += 1;
            }
        }
        let (appends, rx) = mpsc::unbounded_channel();
        let thread_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("prompt-journal".into())
            .spawn(move || write_loop(file, end, &thread_path, rx))
            .map_err(io_err)?;
        Ok(Journal { path: Arc::new(path.to_path_buf()), appends })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the run's prompt and returns once it is durable on disk.
    pub async fn append(&self, run_id: RunId, prompt: &str) -> Result<RecordRef, JournalError> {
        let (record, crc32) = encode_record(run_id, prompt);
        let (reply, done) = oneshot::channel();
        self.appends.send(Append { record, crc32, reply }).map_err(|_| JournalError::Closed)?;
        done.await.map_err(|_| JournalError::Closed)?
    }

    /// Reads the run's record back and verifies it.
    pub async fn read(&self, run_id: RunId, at: RecordRef) -> Result<String, JournalError> {
        let path = Arc::clone(&self.path);
        let bytes =
            tokio::task::spawn_blocking(move || read_range(&path, at)).await.map_err(|_| JournalError::Closed)??;
        decode_record(run_id, at, &bytes)
    }
}

fn read_range(path: &Path, at: RecordRef) -> Result<Vec<u8>, JournalError> {
    let io_err = |source| JournalError::Io { path: path.display().to_string(), source };
    let mut file = File::open(path).map_err(io_err)?;
    file.seek(SeekFrom::Start(at.offset)).map_err(io_err)?;
    let mut bytes = Vec::with_capacity(usize::try_from(at.len).unwrap_or(0));
    file.take(at.len).read_to_end(&mut bytes).map_err(io_err)?;
    Ok(bytes)
}

/// Writes every queued record with one `write` each, then syncs once for the whole group.
fn write_loop(mut file: File, mut end: u64, path: &Path, mut rx: mpsc::UnboundedReceiver<Append>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut buffer = Vec::new();
    // Whether the file ends in the partial bytes of a failed group that could not be cut off.
    let mut torn_tail = false;
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        buffer.clear();
        if torn_tail {
            // Partial bytes of a failed group are on disk: start on a fresh line so the scanner
            // (and a person) do not read this group's first header as part of them.
            buffer.push(b'\n');
        }
        let mut refs = Vec::with_capacity(group.len());
        for append in &group {
            refs.push(RecordRef {
                offset: end + buffer.len() as u64,
                len: append.record.len() as u64,
                crc32: append.crc32,
            });
            buffer.extend_from_slice(&append.record);
        }
        let written = file.write_all(&buffer).and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                end += buffer.len() as u64;
                torn_tail = false;
                for (append, at) in group.drain(..).zip(refs) {
                    let _ = append.reply.send(Ok(at));
                }
            }
            Err(error) => {
                // A short write (disk full) may have left part of the group on disk. No run
                // references those bytes, so cut them off; if even that fails, find the real end
                // so the next group's offsets stay true, and start that group on a new line.
                if file.set_len(end).is_err() {
                    end = file.seek(SeekFrom::End(0)).unwrap_or(end);
                    torn_tail = true;
                }
                let kind = error.kind();
                let message = error.to_string();
                for append in group.drain(..) {
                    let source = std::io::Error::new(kind, message.clone());
                    let _ = append.reply.send(Err(JournalError::Io { path: path.display().to_string(), source }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::journal::{ScannedRecord, scan};

    #[tokio::test]
    async fn concurrent_appends_each_read_back_their_own_prompt() {
        let dir = tempdir();
        let path = dir.join("prompts.txt");
        std::fs::write(&path, "a sample prompt without newline").expect("seed file");
        let journal = Journal::open(&path).expect("open");
        let appends = (0..64u128).map(|n| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let id = RunId(Uuid::from_u128(n));
                let prompt = format!("prompt number {n}\nwith two lines");
                let at = journal.append(id, &prompt).await.expect("append");
                (id, prompt, at)
            })
        });
        for task in appends.collect::<Vec<_>>() {
            let (id, prompt, at) = task.await.expect("task");
            assert_eq!(journal.read(id, at).await.expect("read"), prompt);
        }
        let bytes = std::fs::read(&path).expect("file");
        assert!(bytes.starts_with(b"a sample prompt without newline\n"));
        let intact = scan(&bytes).iter().filter(|r| matches!(r, ScannedRecord::Intact { .. })).count();
        assert_eq!(intact, 64);
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("journal-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
