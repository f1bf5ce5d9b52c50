//! Advisory file locks (`flock`), shared between threads (each lock opens its own
//! file description) and processes: the one implementation every state directory of
//! manifold locks with (the content store, snapshots, cache mounts).

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::atomic::FileError;

/// A held lock; released on drop (closing the file releases the flock).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

fn error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_owned();
    move |source| FileError { op, path, source }
}

fn open(path: &Path) -> Result<File, FileError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(error("open lock file", path))
}

/// Block until the lock on `path` (created if missing) is held.
pub fn lock(path: &Path, mode: Mode) -> Result<FileLock, FileError> {
    let file = open(path)?;
    let op = match mode {
        Mode::Shared => FlockOperation::LockShared,
        Mode::Exclusive => FlockOperation::LockExclusive,
    };
    flock(&file, op).map_err(|e| error("lock", path)(e.into()))?;
    Ok(FileLock { _file: file })
}

/// Lock `path` (created if missing) exclusively without waiting; `None` when another
/// holder has it.
pub fn try_lock(path: &Path) -> Result<Option<FileLock>, FileError> {
    let file = open(path)?;
    Ok(try_lock_file(&file, path)?.then_some(FileLock { _file: file }))
}

/// Lock an already open file exclusively without waiting; `Ok(false)` when another
/// holder has it.
pub fn try_lock_file(file: &File, path: &Path) -> Result<bool, FileError> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(error("lock", path)(e.into())),
    }
}

/// Lock an open file exclusively, waiting if needed.
pub fn lock_file(file: &File, path: &Path) -> Result<(), FileError> {
    flock(file, FlockOperation::LockExclusive).map_err(|e| error("lock", path)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = lock(&path, Mode::Exclusive).unwrap();
        assert!(try_lock(&path).unwrap().is_none());
        drop(held);
        let again = try_lock(&path).unwrap();
        assert!(again.is_some());
        let e = lock(&dir.path().join("missing/x.lock"), Mode::Shared).unwrap_err();
        assert_eq!(e.op, "open lock file");
    }
}
