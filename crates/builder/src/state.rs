//! What builds keep under the state root besides the content store, and removing it
//! for `manifold prune --all` ([`crate::prune`]).
//!
//! ```text
//! <root>/cache/          build cache records (solver)
//! <root>/contexts/       context indexes
//! <root>/layers/         exported-layer memo of older versions (now in export/steps)
//! <root>/cache-mounts/   RUN --mount=type=cache directories
//! <root>/tmp/            step scratch space
//! <root>/bundles/        runc bundles of running steps
//! <root>/export/         export caches: layers per diff_id and per build step, the run index
//! <root>/snapshots/      snapshotter state (overlay or copy driver)
//! <root>/locks/builds.lock
//! ```
//!
//! Builds and `manifold run` hold `builds.lock` shared while they use that state;
//! `prune --all` takes it exclusively without waiting, and leaves the build state alone
//! when it cannot (a build is running). While prune holds it, new builds wait.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use content::lock::{FileLock, Mode};
use worker::snapshot::{SnapshotError, Snapshotter};

/// Why build state could not be locked or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("cannot {op} {}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Cache(#[from] solver::StoreError),
    #[error("cannot remove the snapshots under {}: their parents form a cycle", .dir.display())]
    Cycle { dir: PathBuf },
    #[error("cannot remove {}: {} is mounted{}", .path.display(), .mount.display(),
            if *.more > 0 { format!(" (and {more} more below it)") } else { String::new() })]
    Mounted {
        path: PathBuf,
        mount: PathBuf,
        more: usize,
    },
}

impl StateError {
    /// How to fix it, when that is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Mounted { mount, .. } => Some(format!(
                "unmount it (umount {}) and prune again",
                mount.display()
            )),
            _ => None,
        }
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
        let path = path.to_owned();
        move |source| StateError::Io { op, path, source }
    }
}

/// The directories of build state that prune removes whole, with what they hold.
const DIRS: [(&str, &str); 7] = [
    ("cache", "build cache records"),
    ("contexts", "context indexes"),
    // The layer memo of older versions (the layer cache has it now).
    ("layers", "layer memo"),
    ("cache-mounts", "cache mounts"),
    ("tmp", "temporary files"),
    ("bundles", "container bundles"),
    ("export", "export caches"),
];

fn lock_path(root: &Path) -> Result<PathBuf, StateError> {
    let dir = root.join("locks");
    fs::create_dir_all(&dir).map_err(StateError::io("create", &dir))?;
    Ok(dir.join("builds.lock"))
}

/// Mark a build (or run) as using the build state of `root` until the returned lock
/// is dropped; waits while a prune holds it.
pub fn hold_shared(root: &Path) -> Result<FileLock, StateError> {
    let path = lock_path(root)?;
    content::lock::lock(&path, Mode::Shared).map_err(|e| StateError::io(e.op, &e.path)(e.source))
}

/// Exclusive hold on the build state, or `None` when a build is running.
pub fn try_hold_exclusive(root: &Path) -> Result<Option<FileLock>, StateError> {
    let path = lock_path(root)?;
    content::lock::try_lock(&path).map_err(|e| StateError::io(e.op, &e.path)(e.source))
}

/// One kind of build state that was removed.
#[derive(Debug)]
pub struct Removed {
    pub what: String,
    pub bytes: u64,
}

/// Remove all build state under `root`: every snapshot (through the snapshotter,
/// children first), then the directories of [`DIRS`] and `snapshots/`. The caller
/// holds [`try_hold_exclusive`]. Refuses to delete a directory something is
/// mounted under.
pub fn remove_all(root: &Path) -> Result<Vec<Removed>, StateError> {
    let mut out = Vec::new();
    if let Some(r) = remove_snapshots(root)? {
        out.push(r);
    }
    for (dir, what) in DIRS {
        let path = root.join(dir);
        if !path.exists() {
            continue;
        }
        let bytes = remove_tree(&path)?;
        out.push(Removed {
            what: what.to_owned(),
            bytes,
        });
    }
    Ok(out)
}

fn remove_snapshots(root: &Path) -> Result<Option<Removed>, StateError> {
    let dir = root.join("snapshots");
    if !dir.exists() {
        return Ok(None);
    }
    let mut count = 0;
    let mut bytes = 0;
    for driver in worker::snapshot::DRIVERS {
        if !dir.join(driver.name()).is_dir() {
            continue;
        }
        let snap: Box<dyn Snapshotter> = worker::snapshot::open_driver(root, driver)?;
        bytes += snap.usage()?.bytes;
        count += remove_committed(&*snap)?;
    }
    // What the records do not cover (locks, probes, empty dirs) goes with the tree.
    remove_tree(&dir)?;
    Ok(Some(Removed {
        what: format!("{count} snapshot(s)"),
        bytes,
    }))
}

/// Remove every committed snapshot of `snap`, leaves before their parents.
fn remove_committed(snap: &dyn Snapshotter) -> Result<usize, StateError> {
    let mut left = snap.list()?;
    let mut removed = 0;
    while !left.is_empty() {
        let parents: HashSet<_> = left.iter().filter_map(|c| c.parent().cloned()).collect();
        let (leaves, rest): (Vec<_>, Vec<_>) =
            left.into_iter().partition(|c| !parents.contains(c.key()));
        if leaves.is_empty() {
            return Err(StateError::Cycle {
                dir: snap.root().to_owned(),
            });
        }
        for c in &leaves {
            snap.remove(c.key())?;
            removed += 1;
        }
        left = rest;
    }
    Ok(removed)
}

/// Delete `path` and everything below it after checking nothing is mounted there;
/// returns the bytes it allocated (each inode counted once).
pub(crate) fn remove_tree(path: &Path) -> Result<u64, StateError> {
    let real = path
        .canonicalize()
        .map_err(StateError::io("resolve", path))?;
    let mounts = mounts_under(&real)?;
    if let Some(m) = mounts.first() {
        return Err(StateError::Mounted {
            path: path.to_owned(),
            mount: m.clone(),
            more: mounts.len() - 1,
        });
    }
    let mut seen = HashSet::new();
    let bytes = allocated(&real, &mut seen);
    fs::remove_dir_all(&real).map_err(StateError::io("remove", path))?;
    Ok(bytes)
}

/// Bytes below `path` as `du -sb` counts them (each inode's apparent size once, not
/// following symlinks; the content store's blobs are counted the same way), so
/// `manifold du` and `du -sb` of a state root agree; unreadable parts count 0.
pub(crate) fn allocated(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    allocated_except(path, &HashSet::new(), seen)
}

/// [`allocated`], not descending into the directories of `skip` (counted 0).
pub(crate) fn allocated_except(
    path: &Path,
    skip: &HashSet<PathBuf>,
    seen: &mut HashSet<(u64, u64)>,
) -> u64 {
    if skip.contains(path) {
        return 0;
    }
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let mut bytes = if seen.insert((meta.dev(), meta.ino())) {
        meta.len()
    } else {
        0
    };
    if meta.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for e in entries.flatten() {
            bytes += allocated_except(&e.path(), skip, seen);
        }
    }
    bytes
}

/// Mount points at or below `dir` (a canonical path), from `/proc/self/mountinfo`.
fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    let info = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(info).map_err(StateError::io("read", info))?;
    Ok(parse_mount_points(&text)
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect())
}

/// The mount point field (the fifth) of each mountinfo line, octal escapes decoded.
fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

/// Decode the `\ooo` escapes the kernel writes for space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_the_fifth_field_unescaped() {
        let info = "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /var/lib/manifold/snapshots/overlay/snaps/3/m rw - overlay overlay rw\n";
        assert_eq!(
            parse_mount_points(info),
            vec![
                PathBuf::from("/mnt/a b"),
                PathBuf::from("/var/lib/manifold/snapshots/overlay/snaps/3/m"),
            ]
        );
    }

    #[test]
    fn a_trailing_backslash_is_kept() {
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("a\\134b"), "a\\b");
    }

    #[test]
    fn remove_tree_counts_hard_links_once_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        fs::create_dir_all(t.join("sub")).unwrap();
        fs::write(t.join("sub/a"), vec![1u8; 64 * 1024]).unwrap();
        fs::hard_link(t.join("sub/a"), t.join("b")).unwrap();
        let bytes = remove_tree(&t).unwrap();
        assert!((64 * 1024..128 * 1024).contains(&bytes), "{bytes}");
        assert!(!t.exists());
    }

    #[test]
    fn prune_waits_for_no_build() {
        let dir = tempfile::tempdir().unwrap();
        let build = hold_shared(dir.path()).unwrap();
        assert!(try_hold_exclusive(dir.path()).unwrap().is_none());
        drop(build);
        let prune = try_hold_exclusive(dir.path()).unwrap();
        assert!(prune.is_some());
    }
}
