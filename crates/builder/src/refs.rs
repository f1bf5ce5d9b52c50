//! What a build step produces: a filesystem (a chain of committed snapshots on an
//! optional base image) or the build context read in place.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ignore::Matcher;
use oci::{Descriptor, Digest};
use serde::{Deserialize, Serialize};
use worker::snapshot::Key;

/// The result of a vertex; cheap to clone.
#[derive(Debug, Clone)]
pub enum Ref {
    Fs(Arc<FsRef>),
    Local(Arc<LocalRef>),
}

/// A root filesystem: the committed snapshot `top` (empty when `None`), made of
/// the base image's layers and then one layer per step snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsRef {
    pub top: Option<String>,
    /// The image manifest at the bottom (it and its blobs are in the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Descriptor>,
    /// Snapshot keys above the base, bottom first; each is one layer (its diff
    /// against its parent).
    #[serde(default)]
    pub steps: Vec<String>,
}

impl FsRef {
    pub fn empty() -> FsRef {
        FsRef {
            top: None,
            base: None,
            steps: Vec::new(),
        }
    }

    pub fn top_key(&self) -> Option<Key> {
        self.top
            .as_ref()
            .map(|k| Key::new(k.clone()).expect("invariant: stored keys are valid"))
    }

    /// This filesystem with one more step snapshot on top.
    pub fn with_step(&self, key: &Key) -> FsRef {
        let mut steps = self.steps.clone();
        steps.push(key.as_str().to_owned());
        FsRef {
            top: Some(key.as_str().to_owned()),
            base: self.base.clone(),
            steps,
        }
    }
}

/// A build context (`context`, or a `--build-context NAME=DIR`), read in place.
#[derive(Debug, Clone)]
pub struct LocalRef {
    pub name: String,
    pub dir: PathBuf,
    pub exclude: Option<Arc<Matcher>>,
    /// The digest of every included path's type, mode and content.
    pub digest: Digest,
}

impl Ref {
    pub fn fs(&self) -> Option<&FsRef> {
        match self {
            Ref::Fs(f) => Some(f),
            Ref::Local(_) => None,
        }
    }
}

/// A unique snapshot key for a step's result.
pub(crate) fn step_key(cache_key: &Digest) -> Key {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Key::new(format!(
        "step-{}-{}-{nanos:x}-{n}",
        &cache_key.hex()[..32],
        std::process::id()
    ))
    .expect("invariant: step keys are printable")
}
