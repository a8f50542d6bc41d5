//! Exclusive locks on the data directory and the prompt journal, so that a second process
//! pointed at the same files fails at once, changes nothing, and says who holds them.
//!
//! The locks are `flock`s held for the life of the open file: the kernel releases them when the
//! process ends, however it ends, so a crash never leaves a stale lock behind.

use std::fs::{File, TryLockError};
use std::path::Path;

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} {path} is in use by another process{}", holder_text(*holder))]
    Held { what: &'static str, path: String, holder: Option<u32> },
    #[error("cannot lock {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn holder_text(holder: Option<u32>) -> String {
    holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
}

/// Takes an exclusive lock on `file` (opened from `path`), failing at once if another
/// process holds it. `what` names the resource in the error ("data directory", ...).
pub fn lock_exclusive(file: &File, path: &Path, what: &'static str) -> Result<(), LockError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => {
            Err(LockError::Held { what, path: path.display().to_string(), holder: holder_of(file) })
        }
        Err(TryLockError::Error(source)) => Err(LockError::Io { path: path.display().to_string(), source }),
    }
}

/// The pid holding a lock on `file`, read from `/proc/locks` (Linux); `None` elsewhere.
fn holder_of(file: &File) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt as _;
        let inode = file.metadata().ok()?.ino();
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        // `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF`: pid, then `major:minor:inode`.
        locks.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (pid, device_inode) = (fields.get(4)?, fields.get(5)?);
            let this_inode = device_inode.rsplit(':').next()?.parse::<u64>().ok()?;
            (this_inode == inode).then(|| pid.parse().ok()).flatten()
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_and_names_this_process() {
        let path = std::env::temp_dir().join(format!("lock-test-{}", uuid::Uuid::now_v7()));
        let first = File::create(&path).expect("create");
        lock_exclusive(&first, &path, "data directory").expect("first lock");

        // A second open file description conflicts with the first, as another process's would.
        let second = File::open(&path).expect("open");
        let error = lock_exclusive(&second, &path, "data directory").expect_err("already locked");

        match &error {
            LockError::Held { holder, .. } => assert_eq!(*holder, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        assert!(error.to_string().starts_with("data directory "), "{error}");
        drop(first);
        lock_exclusive(&second, &path, "data directory").expect("free once the holder closes it");
        let _ = std::fs::remove_file(&path);
    }
}
