//! Taps: receivers of a layer blob's compressed bytes while they are written, so
//! that a push can upload a layer during its export instead of after it.
//!
//! A tap is told how much of the store's blob file is written; it reads the bytes
//! from that file. It cannot
//! fail the export: a tap that loses its way (an upload refused, a connection lost)
//! drops the rest, and the regular push after the build sends what the registry
//! still lacks.

use oci::Digest;

/// Where new layer blobs are tapped.
pub trait LayerTap: Send + Sync + std::fmt::Debug {
    /// A new layer blob begins in `blob`, the store's file being written; `None`:
    /// this tap does not want it. The tap reads the bytes back from the file (its
    /// own handle: `try_clone`), so the export never waits for it.
    fn begin(&self, blob: &std::fs::File) -> Option<Box<dyn TapWriter>>;
}

/// One blob, as it is written.
pub trait TapWriter: Send {
    /// The blob's first `total` bytes are in the file.
    fn written(&mut self, total: u64);
    /// The blob is complete: `digest` and `size` are final, and the store commits it
    /// next. A writer dropped without this was abandoned: the export failed.
    fn commit(self: Box<Self>, digest: &Digest, size: u64);
}
