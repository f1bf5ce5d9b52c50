//! Advisory file locks (`flock`), shared between threads (each lock opens its own
//! file description) and processes.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::error::{Result, StoreError};

/// A held lock; released on drop (closing the file releases the flock).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Shared,
    Exclusive,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(StoreError::io("open lock file", path))
}

/// Block until the lock is held.
pub fn lock(path: &Path, mode: Mode) -> Result<FileLock> {
    let file = open(path)?;
    let op = match mode {
        Mode::Shared => FlockOperation::LockShared,
        Mode::Exclusive => FlockOperation::LockExclusive,
    };
    flock(&file, op).map_err(|e| StoreError::Io {
        op: "lock",
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(FileLock { _file: file })
}

/// Lock an already open file exclusively without waiting; `Ok(false)` when another
/// holder has it.
pub fn try_lock_file(file: &File, path: &Path) -> Result<bool> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(StoreError::Io {
            op: "lock",
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

/// Lock an open file exclusively, waiting if needed.
pub fn lock_file(file: &File, path: &Path) -> Result<()> {
    flock(file, FlockOperation::LockExclusive).map_err(|e| StoreError::Io {
        op: "lock",
        path: path.to_owned(),
        source: e.into(),
    })
}
