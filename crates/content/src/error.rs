use std::path::PathBuf;

use oci::Digest;

/// What went wrong in the content store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading content for {expected} failed")]
    Read {
        expected: String,
        #[source]
        source: std::io::Error,
    },
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} not found in the store")]
    NotFound(Digest),
    #[error("blob {digest} is {size} bytes, over the {cap}-byte limit for documents")]
    TooLarge { digest: Digest, size: u64, cap: u64 },
    #[error("blob {digest} is not a valid document")]
    Document {
        digest: Digest,
        #[source]
        source: oci::DocumentError,
    },
    #[error("{path} is corrupt")]
    CorruptIndex {
        path: PathBuf,
        #[source]
        source: oci::DocumentError,
    },
    #[error("no image named {0:?} in the store")]
    NameNotFound(String),
    #[error("invalid image name {0:?}: names must be non-empty printable text without whitespace")]
    InvalidName(String),
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}

impl From<crate::atomic::FileError> for StoreError {
    fn from(e: crate::atomic::FileError) -> Self {
        StoreError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
