//! The layer cache: diff_id + compression → the compressed blob made earlier.
//!
//! ```text
//! <state root>/export/layers/<diff_id hex>-<options hash>.json
//! ```
//!
//! The options hash covers the compression, its level and [`CODEC_EPOCH`]. It does
//! not cover the media type family: OCI and Docker exports share blobs.
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

use crate::error::{ExportError, Result};
use crate::layer::{Compression, LayerDesc, LayerOptions};

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
