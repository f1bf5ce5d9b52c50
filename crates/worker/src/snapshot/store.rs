//! The on-disk state of one driver: `<state root>/snapshots/<driver>/`.
//!
//! ```text
//! lock              flock: shared to read the records, exclusive to change them
//! meta/<id>.json    one record per snapshot (committed, active or view), replaced whole
//! snaps/<id>/       the snapshot's files (fs/, and work/ and m/ for overlay)
//! snaps/<id>/owner.lock  held exclusively by the process using an active or view
//! locks/<hash>.lock serialises applying one layer key across processes
//! empty/            an empty directory (the parent of a base snapshot when diffing)
//! ```
//!
//! Ids are small numbers so overlay mount options stay short.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::SnapshotError;

type Result<T> = std::result::Result<T, SnapshotError>;

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Committed,
    Active,
    View,
}

/// One snapshot's metadata, `meta/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: u64,
    pub kind: Kind,
    /// Set for committed snapshots only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The record id of the parent (a committed snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// Seconds since the epoch.
    pub created: u64,
}

/// A held flock, released on drop.
pub(crate) type Lock = content::lock::FileLock;

fn lock_error(e: content::atomic::FileError) -> SnapshotError {
    SnapshotError::io(e.op, &e.path)(e.source)
}

/// Block until `path` is locked.
pub(crate) fn lock(path: &Path, exclusive: bool) -> Result<Lock> {
    let mode = if exclusive {
        content::lock::Mode::Exclusive
    } else {
        content::lock::Mode::Shared
    };
    content::lock::lock(path, mode).map_err(lock_error)
}

/// Lock `path` exclusively without waiting; `None` when another holder has it.
pub(crate) fn try_lock(path: &Path) -> Result<Option<Lock>> {
    content::lock::try_lock(path).map_err(lock_error)
}

#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
}

impl Store {
    pub fn open(root: PathBuf) -> Result<Store> {
        for sub in ["meta", "snaps", "locks", "empty"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(SnapshotError::io("create directory", &p))?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn empty_dir(&self) -> PathBuf {
        self.root.join("empty")
    }

    pub fn lock(&self, exclusive: bool) -> Result<Lock> {
        lock(&self.root.join("lock"), exclusive)
    }

    /// A lock per layer key (named by the key's sha256, so any key is a safe name).
    pub fn key_lock(&self, key: &str) -> Result<Lock> {
        let hex = oci::Digest::sha256(key.as_bytes()).hex().to_owned();
        lock(&self.root.join("locks").join(format!("{hex}.lock")), true)
    }

    pub fn snap_dir(&self, id: u64) -> PathBuf {
        self.root.join("snaps").join(id.to_string())
    }

    pub fn fs_dir(&self, id: u64) -> PathBuf {
        self.snap_dir(id).join("fs")
    }

    pub fn owner_lock_path(&self, id: u64) -> PathBuf {
        self.snap_dir(id).join("owner.lock")
    }

    fn meta_path(&self, id: u64) -> PathBuf {
        self.root.join("meta").join(format!("{id}.json"))
    }

    /// Every record, by id. The caller holds the lock.
    pub fn records(&self) -> Result<Vec<Record>> {
        let dir = self.root.join("meta");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(SnapshotError::io("read directory", &dir))? {
            let ent = ent.map_err(SnapshotError::io("read directory", &dir))?;
            let name = ent.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let path = ent.path();
            let bytes = fs::read(&path).map_err(SnapshotError::io("read", &path))?;
            let rec: Record =
                serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Metadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if rec.id != id {
                return Err(SnapshotError::Metadata {
                    path,
                    reason: format!("it names id {} in a file for id {id}", rec.id),
                });
            }
            out.push(rec);
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Write a record whole: temp file, rename; for a committed snapshot (a record
    /// with a key) also fsync the file and the directory. An active snapshot's
    /// record need not survive a crash: the dead writer's snapshot is discarded on
    /// the next open either way (with its record, or as an orphan directory), so
    /// each step saves those two fsyncs.
    pub fn write(&self, rec: &Record) -> Result<()> {
        let durable = rec.key.is_some();
        let dir = self.root.join("meta");
        let path = self.meta_path(rec.id);
        let tmp = dir.join(format!(".{}.json.tmp", rec.id));
        let bytes = serde_json::to_vec_pretty(rec).expect("a record always serialises");
        let mut f = File::create(&tmp).map_err(SnapshotError::io("create", &tmp))?;
        f.write_all(&bytes)
            .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
            .map_err(SnapshotError::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(SnapshotError::io("rename", &tmp))?;
        if durable { sync_dir(&dir) } else { Ok(()) }
    }

    pub fn delete(&self, id: u64) -> Result<()> {
        let path = self.meta_path(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.root.join("meta")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SnapshotError::io("remove", path)(e)),
        }
    }

    /// Allocate a fresh id and create its directory. The caller holds the lock
    /// exclusively and writes the record before releasing it.
    pub fn alloc(&self, records: &[Record]) -> Result<u64> {
        let mut id = records.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        loop {
            let dir = self.snap_dir(id);
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => id += 1,
                Err(e) => return Err(SnapshotError::io("create directory", dir)(e)),
            }
        }
    }

    /// Remove a snapshot directory (nothing may be mounted below it).
    pub fn remove_dir(&self, id: u64) -> Result<()> {
        let dir = self.snap_dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SnapshotError::io("remove", dir)(e)),
        }
    }

    /// Snapshot directories that no record names (left by a crash).
    pub fn orphans(&self, records: &[Record]) -> Result<Vec<u64>> {
        let known: HashSet<u64> = records.iter().map(|r| r.id).collect();
        let dir = self.root.join("snaps");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(SnapshotError::io("read directory", &dir))? {
            let ent = ent.map_err(SnapshotError::io("read directory", &dir))?;
            if let Some(id) = ent.file_name().to_str().and_then(|n| n.parse().ok())
                && !known.contains(&id)
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Bytes allocated under `snaps/`, each inode counted once.
    pub fn disk_bytes(&self) -> Result<u64> {
        let mut seen = HashSet::new();
        let mut total = 0;
        let snaps = self.root.join("snaps");
        let dev = fs::metadata(&snaps)
            .map_err(SnapshotError::io("stat", &snaps))?
            .dev();
        let mut stack = vec![snaps];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for ent in rd.flatten() {
                let Ok(md) = ent.metadata() else { continue };
                // Mount points of actives and views are another filesystem.
                if md.dev() != dev {
                    continue;
                }
                if md.is_dir() {
                    stack.push(ent.path());
                }
                if seen.insert((md.dev(), md.ino())) {
                    total += md.blocks() * 512;
                }
            }
        }
        Ok(total)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(SnapshotError::io("sync", dir))
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
