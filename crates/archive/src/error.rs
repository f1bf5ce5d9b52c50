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
}

impl ArchiveError {
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
