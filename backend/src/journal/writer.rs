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

/// Handle to `prompts.txt`; cheap to clone.
#[derive(Clone)]
pub struct FileJournal {
    path: Arc<PathBuf>,
    appends: mpsc::UnboundedSender<Append>,
    /// The open file that holds the journal's exclusive lock, until [`Journal::release`].
    lock: Arc<std::sync::Mutex<Option<File>>>,
}

impl std::fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileJournal").field("path", &self.path).finish()
    }
}

impl FileJournal {
    /// Opens (or creates) the journal at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<FileJournal, JournalError> {
        let io_err = |source| JournalError::Io { path: path.display().to_string(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io_err)?;
        // A handle of its own holds the lock, so shutdown can release it without waiting for
        // the writer thread to notice that every sender is gone.
        let lock = File::open(path).map_err(io_err)?;
        crate::lockfile::lock_exclusive(&lock, path, "prompt journal")?;
        let (appends, rx) = mpsc::unbounded_channel();
        let thread_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("prompt-journal".into())
            .spawn(move || write_loop(file, &thread_path, rx))
            .map_err(io_err)?;
        Ok(FileJournal {
            path: Arc::new(path.to_path_buf()),
            appends,
            lock: Arc::new(std::sync::Mutex::new(Some(lock))),
        })
    }

    /// Lets another process open the journal; called at shutdown, once nothing appends.
    pub fn release(&self) {
        self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
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

/// Where the next record goes: the file's real end (a person may have appended text by hand
/// since the last record), and whether a newline must come first so the record starts on a line
/// of its own (that text, or a failed group's partial bytes, may not end in one).
fn real_end(file: &mut File) -> std::io::Result<(u64, bool)> {
    let end = file.seek(SeekFrom::End(0))?;
    if end == 0 {
        return Ok((0, false));
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(end - 1))?;
    file.read_exact(&mut last)?;
    Ok((end, last[0] != b'\n'))
}

/// Writes every queued record with one `write` each, then syncs once for the whole group.
fn write_loop(mut file: File, path: &Path, mut rx: mpsc::UnboundedReceiver<Append>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut buffer = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        buffer.clear();
        let end = match real_end(&mut file) {
            Ok((end, needs_newline)) => {
                if needs_newline {
                    buffer.push(b'\n');
                }
                end
            }
            Err(error) => {
                fail_group(&mut group, path, &error);
                continue;
            }
        };
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
                for (append, at) in group.drain(..).zip(refs) {
                    let _ = append.reply.send(Ok(at));
                }
            }
            Err(error) => {
                // A short write (disk full) may have left part of this group on disk. No run
                // references those bytes, so cut them off — back to where this group started,
                // never further: what precedes is other records or a person's text. If even
                // that fails, the next group finds the real end and starts on a new line.
                let _ = file.set_len(end);
                fail_group(&mut group, path, &error);
            }
        }
    }
}

fn fail_group(group: &mut Vec<Append>, path: &Path, error: &std::io::Error) {
    let (kind, message) = (error.kind(), error.to_string());
    for append in group.drain(..) {
        let source = std::io::Error::new(kind, message.clone());
        let _ = append.reply.send(Err(JournalError::Io { path: path.display().to_string(), source }));
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::journal::{Journal, ScannedRecord, scan};

    #[tokio::test]
    async fn text_a_person_appends_by_hand_between_records_is_kept_and_does_not_shift_offsets() {
        let dir = tempdir();
        let path = dir.join("prompts.txt");
        let journal = Journal::open(&path).expect("open");
        let (first, second) = (RunId(Uuid::from_u128(1)), RunId(Uuid::from_u128(2)));
        let first_at = journal.append(first, "first prompt").await.expect("append");

        let mut by_hand = OpenOptions::new().append(true).open(&path).expect("open by hand");
        by_hand.write_all(b"a note typed by a person, no newline").expect("hand write");
        drop(by_hand);
        let second_at = journal.append(second, "second prompt").await.expect("append");

        assert_eq!(journal.read(first, first_at).await.expect("read first"), "first prompt");
        assert_eq!(journal.read(second, second_at).await.expect("read second"), "second prompt");
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(text.contains("a note typed by a person, no newline\n=== prompt"), "the note keeps its line: {text}");
    }

    #[tokio::test]
    async fn a_second_journal_on_the_same_file_is_refused_at_once() {
        let dir = tempdir();
        let path = dir.join("prompts.txt");
        let _first = Journal::open(&path).expect("open");
        let before = std::fs::read(&path).expect("file");

        let error = Journal::open(&path).expect_err("the file is in use");

        assert!(matches!(error, JournalError::Locked(_)), "{error:?}");
        assert!(error.to_string().contains("in use by another process"), "{error}");
        assert_eq!(std::fs::read(&path).expect("file"), before, "nothing changed");
    }

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
