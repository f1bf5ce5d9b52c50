//! Leases: what a running operation is using, kept alive against garbage collection.
//!
//! A lease is a file under `<root>/leases/` listing digests, one per line, and
//! flocked by its holder for as long as the [`Lease`] lives. A lease whose lock can
//! be taken belongs to nobody (its process ended) and GC removes it. Digests named by a
//! live lease are GC roots, and so is everything they reference.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci::Digest;

use crate::error::{Result, StoreError};
use crate::lock;

/// A live lease. Dropping it releases the lock and deletes its file.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
    file: Mutex<File>,
}

impl Lease {
    /// A new lease file in `dir`; the caller holds the GC lock shared, so GC never
    /// sees the file before it is locked.
    pub(crate) fn create(dir: &Path) -> Result<Lease> {
        let dir = dir.to_owned();
        let (file, path) = tempfile::Builder::new()
            .prefix("lease-")
            .tempfile_in(&dir)
            .map_err(StoreError::io("create lease in", &dir))?
            .keep()
            .map_err(|e| StoreError::Io {
                op: "keep lease file",
                path: dir.clone(),
                source: e.error,
            })?;
        lock::lock_file(&file, &path)?;
        Ok(Lease {
            path,
            file: Mutex::new(file),
        })
    }

    /// Record `digest`; callers hold the GC lock shared (see [`Store::protect`]).
    pub(crate) fn add(&self, digest: &Digest) -> Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(f, "{digest}").map_err(StoreError::io("write lease", &self.path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Best effort: a file left behind is unlocked once we exit and GC removes it.
        let _ = fs::remove_file(&self.path);
    }
}

/// Digests protected by the live leases in `dir`; removes the files of dead ones.
pub(crate) fn live_roots(dir: &Path) -> Result<BTreeSet<Digest>> {
    let mut roots = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(StoreError::io("list", dir))? {
        let entry = entry.map_err(StoreError::io("list", dir))?;
        let path = entry.path();
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StoreError::Io {
                    op: "open lease",
                    path,
                    source,
                });
            }
        };
        if lock::try_lock_file(&file, &path)? {
            // Nobody holds it: its owner is gone.
            let _ = fs::remove_file(&path);
            continue;
        }
        for line in BufReader::new(&file).lines() {
            let line = line.map_err(StoreError::io("read lease", &path))?;
            // A torn last line from a crash is not a digest; skip it.
            if let Ok(d) = Digest::parse(line.trim()) {
                roots.insert(d);
            }
        }
    }
    Ok(roots)
}
