//! The layer cache, the one record of layers made earlier, by two keys:
//!
//! ```text
//! <state root>/export/layers/<diff_id hex>-<options hash>.json   diff_id + compression → blob
//! <state root>/export/steps/<hash>.json                          build step + options → its layer
//! ```
//!
//! The options hash of a diff_id entry covers the compression, its level and
//! [`CODEC_EPOCH`]. It does not cover the media type family: OCI and Docker exports
//! share blobs. A step entry (the builder's: a step's committed snapshot, so a no-op
//! rebuild reads no snapshot) covers every option that changes the layer's bytes or
//! descriptor, and remembers too that a step made no layer.
//!
//! **Invariant**: an entry is only ever a record of what a cold export produced for
//! the same uncompressed tar and options, so a hit gives the same digest a miss
//! would. Entries are written whole (temp file, fsync, rename). An entry that does
//! not parse, names another diff_id or options, or whose blob the store no longer
//! has, is treated as absent and overwritten by the next miss.

use std::fs;
use std::path::{Path, PathBuf};

use content::{Lease, Store};
use oci::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

use crate::desc::{Compression, LayerDesc, LayerOptions};
use crate::error::{ExportError, Result};

/// Bump when `archive::compress` may produce other bytes for the same input and
/// options (a new codec backend or version, the run format): entries of older epochs
/// then miss, so a warm export never returns bytes a cold one would no longer produce.
///
/// 1: one gzip member or zstd frame per layer. 2: one per content-defined run
/// (`archive::MIN_RUN`..`MAX_RUN`, the gear table); a layer of one run is the same
/// bytes as in epoch 1. 3: gzip runs by libdeflate (1.26), and runs whose byte
/// histogram is nearly flat stored uncompressed (`archive::encode`).
pub const CODEC_EPOCH: u32 = 3;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    diff_id: Digest,
    compression: String,
    codec_epoch: u32,
    digest: Digest,
    size: u64,
}

/// What a build step's snapshot gave: its layer, or none.
#[derive(Debug, Serialize, Deserialize)]
struct StepEntry {
    step: String,
    layer: Option<(Descriptor, Digest)>,
}

/// The layer cache of one state root.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// The cache of `store`'s state root: `<root>/export/layers`.
    pub fn for_store(store: &Store) -> Self {
        LayerCache {
            dir: store.root().join("export").join("layers"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, diff_id: &Digest, c: Compression) -> PathBuf {
        let key = format!("manifold.export.layer.v1\n{}\n{CODEC_EPOCH}", c.key());
        let hash = Digest::sha256(key.as_bytes());
        self.dir
            .join(format!("{}-{}.json", diff_id.hex(), &hash.hex()[..16]))
    }

    fn step_path(&self, step: &str, opts: &LayerOptions) -> PathBuf {
        let key = format!(
            "manifold.export.step.v1\n{step}\n{}\n{:?}\n{}\ncodec-epoch {CODEC_EPOCH}",
            opts.compression.key(),
            opts.source_date_epoch,
            opts.oci_mediatypes,
        );
        let steps = self.dir.parent().unwrap_or(&self.dir).join("steps");
        steps.join(format!("{}.json", Digest::sha256(key.as_bytes()).hex()))
    }

    /// The layer build step `step` (its snapshot's key) made with `opts`, protected
    /// by `lease`: `Some(None)` when it made none; `None` when not remembered, or
    /// its blob is gone.
    pub fn step(
        &self,
        store: &Store,
        lease: &Lease,
        step: &str,
        opts: &LayerOptions,
    ) -> Result<Option<Option<LayerDesc>>> {
        let Ok(bytes) = fs::read(self.step_path(step, opts)) else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_slice::<StepEntry>(&bytes) else {
            return Ok(None);
        };
        if entry.step != step {
            return Ok(None);
        }
        match entry.layer {
            None => Ok(Some(None)),
            // Protect first, then check: the blob cannot be collected once leased.
            Some((d, diff_id)) if store.protect(lease, &d.digest)? => Ok(Some(Some(LayerDesc {
                descriptor: d,
                diff_id,
                from_cache: true,
            }))),
            Some(_) => Ok(None),
        }
    }

    /// Remember the layer (or that there is none) build step `step` made with `opts`.
    /// Builds on one root may write the same entry at once: each through a temporary
    /// file of its own.
    pub fn remember_step(
        &self,
        step: &str,
        opts: &LayerOptions,
        layer: Option<&LayerDesc>,
    ) -> Result<()> {
        let entry = StepEntry {
            step: step.to_owned(),
            layer: layer.map(|l| (l.descriptor.clone(), l.diff_id.clone())),
        };
        let path = self.step_path(step, opts);
        let dir = path
            .parent()
            .expect("invariant: a step entry is in a directory");
        fs::create_dir_all(dir).map_err(ExportError::io("create directory", dir))?;
        let bytes = serde_json::to_vec(&entry).expect("a step entry always serialises");
        write_atomic(&path, &bytes)
    }

    /// The cached blob for `diff_id` with `opts`' compression, protected by `lease`.
    pub(crate) fn get(
        &self,
        store: &Store,
        lease: &Lease,
        diff_id: &Digest,
        opts: &LayerOptions,
    ) -> Result<Option<LayerDesc>> {
        let path = self.path(diff_id, opts.compression);
        let Ok(bytes) = fs::read(&path) else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
            return Ok(None);
        };
        if entry.diff_id != *diff_id
            || entry.compression != opts.compression.key()
            || entry.codec_epoch != CODEC_EPOCH
        {
            return Ok(None);
        }
        // Protect first, then check: the blob cannot be collected once leased.
        if !store.protect(lease, &entry.digest)? || store.blob_size(&entry.digest)? != entry.size {
            return Ok(None);
        }
        Ok(Some(LayerDesc {
            descriptor: Descriptor::new(
                opts.compression.media_type(opts.oci_mediatypes),
                entry.digest,
                entry.size,
            ),
            diff_id: entry.diff_id,
            from_cache: true,
        }))
    }

    /// Record that `diff_id` compressed with `c` is the blob `digest` of `size` bytes.
    pub(crate) fn put(
        &self,
        diff_id: &Digest,
        c: Compression,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let entry = Entry {
            diff_id: diff_id.clone(),
            compression: c.key(),
            codec_epoch: CODEC_EPOCH,
            digest: digest.clone(),
            size,
        };
        let bytes = serde_json::to_vec(&entry).expect("a cache entry always serialises");
        fs::create_dir_all(&self.dir).map_err(ExportError::io("create directory", &self.dir))?;
        write_atomic(&self.path(diff_id, c), &bytes)
    }
}

/// Write `bytes` to `path` atomically (see [`content::atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    content::atomic::write_atomic(path, bytes).map_err(|e| ExportError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}
