//! Snapshots: the root filesystems that build steps run on and layers unpack into.
//!
//! The model is containerd's. A *committed* snapshot is immutable and named by a
//! [`Key`] (a layer's chain id, or a cache key). [`Snapshotter::prepare`] gives an
//! [`Active`] snapshot on top of a committed parent: a writable directory that
//! [`Active::commit`] turns into a new committed snapshot and [`Active::abort`] (or
//! drop) removes. [`Snapshotter::view`] mounts a committed snapshot read-only.
//! [`Snapshotter::apply_layer`] unpacks a layer blob once per key: builds and
//! platforms that share a base layer share its snapshot.
//!
//! Two drivers share all of this (`store.rs` holds the records, `engine.rs` the
//! operations): [`Overlay`], where a snapshot is an overlay upper dir stacked on its
//! parents' dirs, and [`Copy`](struct@Copy), where a snapshot is a whole tree copied from its
//! parent. [`detect`] picks overlay when a test mount works.
//!
//! State lives in `<state root>/snapshots/<driver>/` (see `store.rs`): a JSON record
//! per snapshot, replaced atomically, and a flock per operation, so several processes
//! can share it. Every mount is below that directory and is unmounted when its
//! [`Active`] or [`ReadOnlyMount`] goes away.

mod copy;
mod engine;
mod error;
mod mount;
mod store;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive::{ApplyOptions, Change, Expected};

pub use error::SnapshotError;

use engine::Inner;

type Result<T> = std::result::Result<T, SnapshotError>;

/// The environment variable that overrides [`detect`]: `overlay` or `copy`.
pub const SNAPSHOTTER_ENV: &str = "MANIFOLD_SNAPSHOTTER";

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The name of a committed snapshot: a chain id, a cache key, any printable string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Key> {
        let key = key.into();
        let reason = if key.is_empty() {
            Some("it is empty")
        } else if key.len() > MAX_KEY_LEN {
            Some("it is longer than 1024 bytes")
        } else if key.chars().any(char::is_control) {
            Some("it holds a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(SnapshotError::InvalidKey { key, reason }),
            None => Ok(Key(key)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The chain id of a layer (OCI image spec): its diff_id for a base layer, else
/// `sha256(parent chain id + " " + diff_id)`. The natural key for [`Snapshotter::apply_layer`].
pub fn chain_id(parent: Option<&oci::Digest>, diff_id: &oci::Digest) -> oci::Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => oci::Digest::sha256(format!("{p} {diff_id}").as_bytes()),
    }
}

/// Which driver a snapshotter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Driver {
    Overlay,
    /// Overlay through the `fuse-overlayfs` daemon: for a kernel whose overlayfs cannot
    /// be mounted in a user namespace (before 5.11).
    FuseOverlay,
    Copy,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlay",
            Driver::FuseOverlay => "fuse-overlayfs",
            Driver::Copy => "copy",
        }
    }
}

/// What [`Snapshotter::apply_layer`] gave: the snapshot, and what unpacking it
/// noticed (nothing when another call had unpacked it already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub committed: Committed,
    /// Entries of the layer that named a path an earlier entry named (the last
    /// wins); a well-formed layer has none.
    pub duplicate_paths: u64,
}

/// A committed, immutable snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    key: Key,
    parent: Option<Key>,
    id: u64,
}

impl Committed {
    pub fn key(&self) -> &Key {
        &self.key
    }

    pub fn parent(&self) -> Option<&Key> {
        self.parent.as_ref()
    }

    /// The driver's internal id (its directory name); equal ids are one snapshot.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Counts and disk use of one snapshotter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    pub committed: usize,
    pub active: usize,
    pub views: usize,
    /// Bytes allocated by all snapshots, each inode counted once.
    pub bytes: u64,
}

/// A writable snapshot. Its files are at [`Active::path`]. Dropping it aborts it.
pub struct Active {
    pub(crate) inner: Arc<Inner>,
    pub(crate) state: Option<engine::ActiveState>,
}

impl fmt::Debug for Active {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Active")
            .field("path", &self.path())
            .field("parent", &self.parent())
            .finish()
    }
}

impl Active {
    /// Where to read and write the snapshot's files (a mount point for overlay).
    pub fn path(&self) -> &Path {
        &self.state().path
    }

    pub fn parent(&self) -> Option<&Key> {
        self.state().parent.as_ref().map(|(k, _)| k)
    }

    fn state(&self) -> &engine::ActiveState {
        self.state
            .as_ref()
            .expect("an active snapshot has its state until consumed")
    }

    /// Make this snapshot committed and immutable, named `key`.
    pub fn commit(mut self, key: &Key) -> Result<Committed> {
        let state = self
            .state
            .take()
            .expect("an active snapshot has its state until consumed");
        self.inner.commit(state, key)
    }

    /// Unmount and remove everything this snapshot wrote.
    pub fn abort(mut self) -> Result<()> {
        let state = self
            .state
            .take()
            .expect("an active snapshot has its state until consumed");
        self.inner.abort(state)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            let _ = self.inner.abort(state);
        }
    }
}

/// A committed snapshot mounted read-only at [`ReadOnlyMount::path`], unmounted on
/// drop.
pub struct ReadOnlyMount {
    pub(crate) inner: Arc<Inner>,
    pub(crate) state: Option<engine::ViewState>,
}

impl fmt::Debug for ReadOnlyMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyMount")
            .field("path", &self.path())
            .finish()
    }
}

impl ReadOnlyMount {
    pub fn path(&self) -> &Path {
        &self
            .state
            .as_ref()
            .expect("a view has its state until closed")
            .path
    }

    /// Unmount now, reporting failure.
    pub fn close(mut self) -> Result<()> {
        let state = self
            .state
            .take()
            .expect("a view has its state until closed");
        self.inner.close_view(state)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            let _ = self.inner.close_view(state);
        }
    }
}

/// A snapshot driver. Both implementations pass one conformance suite
/// (`crates/worker/tests/snapshot.rs`).
pub trait Snapshotter: Send + Sync + fmt::Debug {
    fn driver(&self) -> Driver;

    /// `<state root>/snapshots/<driver>`.
    fn root(&self) -> &Path;

    /// A writable snapshot on top of `parent` (empty without one).
    fn prepare(&self, parent: Option<&Key>) -> Result<Active>;

    /// Mount a committed snapshot read-only.
    fn view(&self, key: &Key) -> Result<ReadOnlyMount>;

    /// The committed snapshot named `key`, if any.
    fn get(&self, key: &Key) -> Result<Option<Committed>>;

    /// Every committed snapshot, oldest first.
    fn list(&self) -> Result<Vec<Committed>>;

    /// What `active` changed on top of its parent.
    fn diff(&self, active: &Active) -> Result<Vec<Change>>;

    /// What the committed snapshot `key` changed on top of its parent.
    fn diff_committed(&self, key: &Key) -> Result<Vec<Change>>;

    /// Unpack a layer blob on top of `parent` as the committed snapshot `key` (its
    /// chain id), or return the snapshot already unpacked under `key`. The blob is
    /// decompressed per `media_type` (sniffed when `None`) and checked against
    /// `expected`; on any error nothing is left behind.
    fn apply_layer(
        &self,
        parent: Option<&Key>,
        key: &Key,
        blob: &mut dyn Read,
        media_type: Option<&str>,
        expected: &Expected,
    ) -> Result<Applied>;

    /// Remove a committed snapshot; refused while another snapshot (committed,
    /// active or view) uses it as its parent.
    fn remove(&self, key: &Key) -> Result<()>;

    fn usage(&self) -> Result<Usage>;
}

macro_rules! driver {
    ($name:ident, $driver:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $name(Arc<Inner>);

        impl $name {
            /// Open (creating) the driver's state under `<state_root>/snapshots/`,
            /// removing what dead processes left.
            pub fn open(state_root: &Path) -> Result<$name> {
                Ok($name(Inner::open(state_root, $driver)?))
            }
        }

        impl Snapshotter for $name {
            fn driver(&self) -> Driver {
                $driver
            }
            fn root(&self) -> &Path {
                self.0.root()
            }
            fn prepare(&self, parent: Option<&Key>) -> Result<Active> {
                Inner::prepare(&self.0, parent)
            }
            fn view(&self, key: &Key) -> Result<ReadOnlyMount> {
                Inner::view(&self.0, key)
            }
            fn get(&self, key: &Key) -> Result<Option<Committed>> {
                self.0.get(key)
            }
            fn list(&self) -> Result<Vec<Committed>> {
                self.0.list()
            }
            fn diff(&self, active: &Active) -> Result<Vec<Change>> {
                // The active's own engine: an active of another snapshotter diffs correctly.
                active.inner.diff_active(active.state())
            }
            fn diff_committed(&self, key: &Key) -> Result<Vec<Change>> {
                self.0.diff_committed(key)
            }
            fn apply_layer(
                &self,
                parent: Option<&Key>,
                key: &Key,
                blob: &mut dyn Read,
                media_type: Option<&str>,
                expected: &Expected,
            ) -> Result<Applied> {
                Inner::apply_layer(&self.0, parent, key, blob, media_type, expected)
            }
            fn remove(&self, key: &Key) -> Result<()> {
                self.0.remove(key)
            }
            fn usage(&self) -> Result<Usage> {
                self.0.usage()
            }
        }
    };
}

driver!(
    Overlay,
    Driver::Overlay,
    "Snapshots as overlayfs layers: a committed snapshot is an upper dir, and its \
     parents' dirs are the lower dirs of what is mounted on top of it."
);
driver!(
    FuseOverlay,
    Driver::FuseOverlay,
    "Snapshots as overlay layers, as [`Overlay`], mounted by the `fuse-overlayfs` daemon \
     (rootless on kernels whose overlayfs cannot be mounted in a user namespace)."
);
driver!(
    Copy,
    Driver::Copy,
    "Snapshots as whole trees: a prepared snapshot is a copy of its parent. Works \
     wherever overlayfs does not (no mount privileges, odd filesystems)."
);

/// Apply options for this process's privilege: the host's root keeps everything; root
/// of a user namespace with a subordinate range keeps owners but no device nodes or
/// `trusted.*`; a user (or a single-id namespace) owns every file itself.
pub fn apply_options() -> ApplyOptions {
    match content::identity::privilege() {
        content::identity::Privilege::HostRoot => ApplyOptions::privileged(),
        content::identity::Privilege::NamespaceRoot => ApplyOptions::namespaced(),
        content::identity::Privilege::User => ApplyOptions::rootless(),
    }
}

/// Pick a driver for `state_root`: `MANIFOLD_SNAPSHOTTER` when set, else overlay
/// when a test mount works there, else copy.
pub fn detect(state_root: &Path) -> Result<Box<dyn Snapshotter>> {
    let unavailable = |reason| SnapshotError::OverlayUnavailable {
        root: state_root.to_owned(),
        reason,
    };
    match std::env::var(SNAPSHOTTER_ENV).ok().as_deref() {
        Some("overlay") => {
            engine::probe_overlay(state_root, Driver::Overlay).map_err(unavailable)?;
            Ok(Box::new(Overlay::open(state_root)?))
        }
        Some("fuse-overlayfs") => {
            engine::probe_overlay(state_root, Driver::FuseOverlay).map_err(unavailable)?;
            Ok(Box::new(FuseOverlay::open(state_root)?))
        }
        Some("copy") => Ok(Box::new(Copy::open(state_root)?)),
        Some(other) if !other.is_empty() => Err(SnapshotError::UnknownDriver {
            name: other.to_owned(),
        }),
        _ => {
            if let Some(driver) = detected(state_root) {
                return open_driver(state_root, driver);
            }
            let driver = if engine::probe_overlay(state_root, Driver::Overlay).is_ok() {
                Driver::Overlay
            } else if content::identity::identity().is_rootless()
                && engine::probe_overlay(state_root, Driver::FuseOverlay).is_ok()
            {
                // Rootless on an older kernel: fuse-overlayfs when it is installed and works.
                Driver::FuseOverlay
            } else {
                Driver::Copy
            };
            let marker = probe_marker(state_root);
            if let Some(dir) = marker.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(
                marker,
                format!("{}driver {}\n", probe_stamp(state_root), driver.name()),
            );
            open_driver(state_root, driver)
        }
    }
}

/// Every driver, for code that walks all the snapshot state of a root (prune, du, gc).
pub const DRIVERS: [Driver; 3] = [Driver::Overlay, Driver::FuseOverlay, Driver::Copy];

/// Open (creating) `driver`'s state under `state_root`.
pub fn open_driver(state_root: &Path, driver: Driver) -> Result<Box<dyn Snapshotter>> {
    Ok(match driver {
        Driver::Overlay => Box::new(Overlay::open(state_root)?),
        Driver::FuseOverlay => Box::new(FuseOverlay::open(state_root)?),
        Driver::Copy => Box::new(Copy::open(state_root)?),
    })
}

/// Where the detected driver is remembered, so that every build does not mount test
/// overlays again: detection happens once per root (and again when the kernel, the
/// filesystem or rootless-ness changes).
fn probe_marker(state_root: &Path) -> PathBuf {
    state_root.join("snapshots").join("detected")
}

/// What the detection holds for: the kernel, the filesystem of the state, and whether
/// this process is rootless (overlay mounts differently in a user namespace).
fn probe_stamp(state_root: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(state_root.join("snapshots")).map_or(0, |m| m.dev());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rootless = content::identity::identity().is_rootless();
    format!("dev {dev}\nkernel {}\nrootless {rootless}\n", kernel.trim())
}

/// The driver detected earlier for `state_root`, if the stamp still holds.
fn detected(state_root: &Path) -> Option<Driver> {
    let text = std::fs::read_to_string(probe_marker(state_root)).ok()?;
    let rest = text.strip_prefix(&probe_stamp(state_root))?;
    match rest.trim().strip_prefix("driver ")? {
        "overlay" => Some(Driver::Overlay),
        "fuse-overlayfs" => Some(Driver::FuseOverlay),
        "copy" => Some(Driver::Copy),
        _ => None,
    }
}

/// The directory that holds committed snapshot `c` of `snap` (its files and, for
/// overlay, its work directory), for disk-use listings; it never changes once
/// committed.
pub fn committed_dir(snap: &dyn Snapshotter, c: &Committed) -> PathBuf {
    snap.root().join("snaps").join(c.id().to_string())
}

/// The directory of a driver's state.
fn driver_root(state_root: &Path, driver: Driver) -> PathBuf {
    state_root.join("snapshots").join(driver.name())
}
