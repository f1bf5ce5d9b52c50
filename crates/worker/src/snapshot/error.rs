//! Errors of the snapshotters.

use std::io;
use std::path::PathBuf;

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A system call on a path of the state root failed.
    #[error("cannot {op} {path}: {source}", path = path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A mount or unmount failed.
    #[error("cannot {op} at {path}: {source}", path = path.display())]
    Mount {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Applying a layer or diffing a tree failed.
    #[error("{op} in {path}: {source}", path = path.display())]
    Archive {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: archive::ArchiveError,
    },
    /// A key is empty, too long or holds control characters.
    #[error("invalid snapshot key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// No committed snapshot has this key.
    #[error("no snapshot {key:?} in {root}", root = root.display())]
    NotFound { key: String, root: PathBuf },
    /// A committed snapshot with this key exists already.
    #[error("snapshot {key:?} exists already in {root}", root = root.display())]
    Exists { key: String, root: PathBuf },
    /// The snapshot is the parent of other snapshots (committed, active or views).
    #[error("snapshot {key:?} is in use by {users} other snapshot(s) in {root}", root = root.display())]
    InUse {
        key: String,
        users: usize,
        root: PathBuf,
    },
    /// A metadata file could not be parsed.
    #[error("damaged snapshot metadata {path}: {reason}", path = path.display())]
    Metadata { path: PathBuf, reason: String },
    /// `MANIFOLD_SNAPSHOTTER` names no driver.
    #[error(
        "unknown snapshotter {name:?} in MANIFOLD_SNAPSHOTTER (expected overlay, fuse-overlayfs or copy)"
    )]
    UnknownDriver { name: String },
    /// Overlay was asked for but cannot mount here.
    #[error("overlayfs does not work in {root}: {reason}", root = root.display())]
    OverlayUnavailable { root: PathBuf, reason: String },
}

impl SnapshotError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| SnapshotError::Io { op, path, source }
    }

    pub(crate) fn archive(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(archive::ArchiveError) -> Self {
        let path = path.into();
        move |source| SnapshotError::Archive { op, path, source }
    }
}
