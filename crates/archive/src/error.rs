//! The crate's error type: one variant per cause, each naming its operand.

use std::io;
use std::path::PathBuf;

use oci::Digest;

/// Everything that can go wrong while resolving, applying, diffing or writing layers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// A system call on a path inside a root failed.
    #[error("cannot {op} {path}: {source}", path = path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The tar stream itself could not be read (bad checksum, truncated header, …).
    #[error("malformed tar stream after entry {after:?}: {source}")]
    Tar {
        after: String,
        #[source]
        source: io::Error,
    },
    /// An entry's header or extended records are inconsistent or invalid.
    #[error("malformed tar entry {path:?}: {reason}")]
    Malformed { path: String, reason: String },
    /// An entry's path cannot be used (NUL byte, over-long component, …).
    #[error("invalid path {path:?} in layer: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// A `.wh.` name that whites out nothing nameable (`.wh.`, `.wh..`, `.wh...`).
    #[error("invalid whiteout {path:?}: {reason}")]
    InvalidWhiteout { path: String, reason: &'static str },
    /// An entry naming the root itself (`.`, `./`, `/`) that is not a directory.
    #[error("entry {path:?} names the root directory but is a {kind}; only a directory may")]
    RootEntry { path: String, kind: &'static str },
    /// A hardlink whose target is missing, is a directory, or is the link itself.
    #[error("hardlink {path:?} -> {target:?}: {reason}")]
    Hardlink {
        path: String,
        target: String,
        reason: String,
    },
    /// A tar entry type manifold does not apply.
    #[error("unsupported entry type {kind:?} for {path:?}")]
    UnsupportedEntry { path: String, kind: char },
    /// A device node or FIFO that the policy refuses.
    #[error("special file {path:?} refused by policy ({kind})")]
    SpecialRefused { path: String, kind: &'static str },
    /// A cap from [`crate::Limits`] was reached.
    #[error("layer exceeds limit: {what} (limit {limit})")]
    LimitExceeded { what: &'static str, limit: u64 },
    /// A header field holds a value outside what the filesystem can represent.
    #[error("invalid {field} {value:?} for {path:?}")]
    InvalidMetadata {
        path: String,
        field: &'static str,
        value: String,
    },
    /// The compression format is recognised but not supported.
    #[error("unsupported layer compression {format}")]
    UnsupportedCompression { format: String },
    /// The bytes read do not hash to the digest the caller expected.
    #[error("digest mismatch for the {what} stream: expected {expected}, got {actual}")]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    /// The stream has another length than the caller expected.
    #[error("size mismatch for the {what} stream: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    /// Two changes of one layer would write the same tar name.
    #[error("duplicate path {path:?} in layer")]
    DuplicatePath { path: String },
    /// A file's content differs in length from the size recorded when it was scanned.
    #[error("file {path:?} changed while being written (expected {expected} bytes)")]
    FileChanged { path: String, expected: u64 },
    /// An overlay upper dir uses a feature a layer cannot express.
    #[error("overlay upper entry {path:?} has {xattr}, which a layer cannot express")]
    OverlayFeature { path: String, xattr: String },
    /// Writing the output stream failed.
    #[error("cannot write layer: {0}")]
    Write(#[source] io::Error),
    /// An extension record (GNU long name or link, PAX header) or a sparse file
    /// declares more bytes than [`crate::Limits`] allow; refused before its body is read.
    #[error("{}{what} of {size} bytes exceeds the {limit}-byte limit", prefix(.layer))]
    HeaderTooLarge {
        layer: Option<Digest>,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    /// A GNU or PAX sparse map declares more entries than [`crate::Limits`] allow.
    #[error("{}{what} of {entries} entries exceeds the {limit}-entry limit", prefix(.layer))]
    SparseMapTooLarge {
        layer: Option<Digest>,
        what: &'static str,
        entries: u64,
        limit: u64,
    },
    /// The layer decompresses to more bytes than its [`crate::Budget`] allows.
    #[error(
        "{}uncompressed stream exceeds the {limit}-byte limit (after {compressed} compressed bytes)",
        prefix(.layer)
    )]
    UncompressedTooLarge {
        layer: Option<Digest>,
        limit: u64,
        compressed: u64,
    },
    /// The layer decompresses at a higher ratio than its [`crate::Budget`] allows.
    #[error(
        "{}decompression ratio exceeds {ratio}:1 ({uncompressed} bytes from {compressed} compressed bytes)",
        prefix(.layer)
    )]
    CompressionRatio {
        layer: Option<Digest>,
        ratio: u64,
        uncompressed: u64,
        compressed: u64,
    },
}

fn prefix(layer: &Option<Digest>) -> String {
    layer
        .as_ref()
        .map(|d| format!("layer {d}: "))
        .unwrap_or_default()
}

impl ArchiveError {
    /// The [`ArchiveError`] a reader of this crate ([`crate::HeaderGuard`],
    /// [`crate::Limited`]) raised inside `e`, or `e` itself.
    pub fn from_stream(e: io::Error) -> Result<ArchiveError, io::Error> {
        if !e.get_ref().is_some_and(|r| r.is::<ArchiveError>()) {
            return Err(e);
        }
        let inner = e
            .into_inner()
            .expect("checked: the error has an inner error");
        Ok(*inner
            .downcast::<ArchiveError>()
            .expect("checked: the inner error is an ArchiveError"))
    }

    /// Name the layer in a limit error that names none yet.
    pub fn with_layer(mut self, digest: &Digest) -> Self {
        match &mut self {
            ArchiveError::HeaderTooLarge { layer, .. }
            | ArchiveError::SparseMapTooLarge { layer, .. }
            | ArchiveError::UncompressedTooLarge { layer, .. }
            | ArchiveError::CompressionRatio { layer, .. }
                if layer.is_none() =>
            {
                *layer = Some(digest.clone());
            }
            _ => {}
        }
        self
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ArchiveError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Lossy display form of a byte path, for error messages.
pub(crate) fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
