//! The build state of a state root item by item, with each item's size and last
//! use: what `manifold du --verbose` lists and what garbage collection removes.
//!
//! - A cache record's last use is its file's modification time (set on every hit).
//! - A committed snapshot's last use is the latest last use of the records whose
//!   result it is part of (their top snapshot or one of its ancestors); a snapshot
//!   no record uses counts from its creation.
//! - A cache mount's last use is its directory's modification time, set each time a
//!   step mounts it.
//!
//! Snapshot sizes are memoised under `cache/snapshot-sizes/` (committed snapshots
//! never change), so listing a large root after every build walks only new ones.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oci::Digest;
use worker::snapshot::{Committed, Driver, Key, Snapshotter};

use crate::refs::FsRef;
use crate::state::{StateError, allocated};

/// A record of the solver's cache.
#[derive(Debug, Clone)]
pub struct RecordItem {
    pub key: Digest,
    /// The step it records, as the build described it.
    pub description: String,
    pub last_used: SystemTime,
    /// The top snapshot of its result, when it has one.
    pub top: Option<String>,
    /// Its top snapshot and the top's ancestors that exist here (indexes into
    /// [`Inventory::snapshots`]), top first.
    pub chain: Vec<usize>,
}

/// A committed snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotItem {
    pub key: Key,
    pub parent: Option<Key>,
    pub driver: Driver,
    /// Bytes its own directory allocates (for overlay, its layer's files only).
    pub bytes: u64,
    pub last_used: SystemTime,
    /// How many records use it.
    pub users: usize,
    dir: PathBuf,
    id: u64,
}

/// One instance of a `RUN --mount=type=cache` directory.
#[derive(Debug, Clone)]
pub struct MountItem {
    /// Its directory's name: the hash of the cache id and platform, then `-N` for
    /// the instances of `sharing=private` past the first.
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub last_used: SystemTime,
}

impl MountItem {
    /// The hash naming the cache (the id and platform; ids are never paths).
    pub fn id_hash(&self) -> &str {
        self.name.split('-').next().unwrap_or(&self.name)
    }

    /// The instance of a `sharing=private` cache: 0 for the first (and for a shared
    /// or locked cache, which has one).
    pub fn instance(&self) -> u32 {
        self.name
            .split_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }
}

/// The removable build state of a state root.
#[derive(Debug)]
pub struct Inventory {
    pub records: Vec<RecordItem>,
    pub snapshots: Vec<SnapshotItem>,
    pub cache_mounts: Vec<MountItem>,
    root: PathBuf,
    snapshotters: Vec<Box<dyn Snapshotter>>,
}

impl Inventory {
    /// Read the build state of `root`. Creates nothing.
    pub fn read(root: &Path) -> Result<Inventory, StateError> {
        let mut snapshotters: Vec<Box<dyn Snapshotter>> = Vec::new();
        for driver in worker::snapshot::DRIVERS {
            if root.join("snapshots").join(driver.name()).is_dir() {
                snapshotters.push(worker::snapshot::open_driver(root, driver)?);
            }
        }
        let mut snapshots = Vec::new();
        for snap in &snapshotters {
            for c in snap.list()? {
                snapshots.push(snapshot_item(root, &**snap, &c));
            }
        }
        let mut records = read_records(root)?;
        let index: HashMap<(&str, &str), usize> = snapshots
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.driver.name(), s.key.as_str()), i))
            .collect();
        let mut users = vec![Vec::new(); snapshots.len()];
        for (r, record) in records.iter_mut().enumerate() {
            let Some(top) = &record.top else { continue };
            let start = worker::snapshot::DRIVERS
                .iter()
                .find_map(|d| index.get(&(d.name(), top.as_str())).copied());
            let mut next = start;
            while let Some(i) = next {
                if record.chain.contains(&i) {
                    break; // a cycle: the snapshotter refuses those, but never loop
                }
                record.chain.push(i);
                users[i].push(r);
                next = snapshots[i].parent.as_ref().and_then(|p| {
                    index
                        .get(&(snapshots[i].driver.name(), p.as_str()))
                        .copied()
                });
            }
        }
        for (s, used_by) in snapshots.iter_mut().zip(&users) {
            s.users = used_by.len();
            if let Some(t) = used_by.iter().map(|r| records[*r].last_used).max() {
                s.last_used = t;
            }
        }
        Ok(Inventory {
            records,
            snapshots,
            cache_mounts: read_cache_mounts(root),
            root: root.to_owned(),
            snapshotters,
        })
    }

    /// Bytes of the top snapshot of `record` (the layer its step made), or 0.
    pub fn record_bytes(&self, record: &RecordItem) -> u64 {
        record.chain.first().map_or(0, |i| self.snapshots[*i].bytes)
    }

    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshots.iter().map(|s| s.bytes).sum()
    }

    pub fn cache_mount_bytes(&self) -> u64 {
        self.cache_mounts.iter().map(|m| m.bytes).sum()
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Remove committed snapshot `s`; `false` when something still uses it as a
    /// parent (it stays).
    pub(crate) fn remove_snapshot(&self, s: &SnapshotItem) -> Result<bool, StateError> {
        let Some(snap) = self.snapshotters.iter().find(|x| x.driver() == s.driver) else {
            return Ok(false);
        };
        match snap.remove(&s.key) {
            Ok(()) => {}
            Err(worker::snapshot::SnapshotError::InUse { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let _ = fs::remove_file(size_memo(&self.root, s.driver, &s.key, s.id));
        Ok(true)
    }
}

/// Bytes of the whole state root, as `du -sb` counts them. Committed snapshots count
/// their remembered sizes (see `snapshot_item`), so a build's garbage collection does
/// not walk every file of every image it has unpacked; the rest is walked.
pub fn root_usage(root: &Path) -> u64 {
    let Ok(inv) = Inventory::read(root) else {
        return allocated(root, &mut std::collections::HashSet::new());
    };
    let skip: std::collections::HashSet<PathBuf> =
        inv.snapshots.iter().map(|s| s.dir.clone()).collect();
    crate::state::allocated_except(root, &skip, &mut std::collections::HashSet::new())
        + inv.snapshot_bytes()
}

/// Bytes of the solver's cache directory (its records, run history and memos).
pub fn records_usage(root: &Path) -> u64 {
    allocated(&root.join("cache"), &mut std::collections::HashSet::new())
}

fn read_records(root: &Path) -> Result<Vec<RecordItem>, StateError> {
    if !root.join("cache").join("records").is_dir() {
        return Ok(Vec::new());
    }
    let cache = solver::CacheStore::open(root.join("cache"))?;
    Ok(cache
        .records()?
        .into_iter()
        .map(|r| {
            let top = r
                .value
                .get("fs")
                .and_then(|f| serde_json::from_value::<FsRef>(f.clone()).ok())
                .and_then(|f| f.top);
            RecordItem {
                key: r.key,
                description: r.description,
                last_used: r.last_used,
                top,
                chain: Vec::new(),
            }
        })
        .collect())
}

fn snapshot_item(root: &Path, snap: &dyn Snapshotter, c: &Committed) -> SnapshotItem {
    let dir = worker::snapshot::committed_dir(snap, c);
    let memo = size_memo(root, snap.driver(), c.key(), c.id());
    let bytes = match fs::read_to_string(&memo)
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        Some(b) => b,
        None => {
            let b = allocated(&dir, &mut std::collections::HashSet::new());
            // Best effort: without the memo the next listing walks it again.
            if let Some(parent) = memo.parent()
                && fs::create_dir_all(parent).is_ok()
            {
                let _ = content::atomic::write_atomic(&memo, b.to_string().as_bytes());
            }
            b
        }
    };
    SnapshotItem {
        key: c.key().clone(),
        parent: c.parent().cloned(),
        driver: snap.driver(),
        bytes,
        last_used: modified(&dir),
        users: 0,
        dir,
        id: c.id(),
    }
}

/// Where the size of a committed snapshot is remembered.
fn size_memo(root: &Path, driver: Driver, key: &Key, id: u64) -> PathBuf {
    let name = Digest::sha256(format!("{}\n{}\n{id}", driver.name(), key.as_str()).as_bytes());
    root.join("cache")
        .join("snapshot-sizes")
        .join(&name.hex()[..32])
}

fn read_cache_mounts(root: &Path) -> Vec<MountItem> {
    let dir = root.join("cache-mounts");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<MountItem> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let path = e.path();
            MountItem {
                name: e.file_name().to_string_lossy().into_owned(),
                bytes: allocated(&path, &mut std::collections::HashSet::new()),
                last_used: modified(&path),
                path,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn modified(path: &Path) -> SystemTime {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH)
}

impl SnapshotItem {
    /// Its directory under the snapshotter's state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
