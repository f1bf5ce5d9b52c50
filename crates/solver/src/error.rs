//! Errors.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use graph::{Location, Vertex};
use oci::Digest;

/// A runner's error, shared by every build that waited for the vertex.
pub type SharedError = Arc<dyn Error + Send + Sync + 'static>;

/// The vertex a solve failed on, with what the CLI needs to point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedVertex {
    pub digest: Digest,
    /// The vertex's description, e.g. `[build 2/4] RUN make`.
    pub description: String,
    /// Where in the Dockerfile the step comes from.
    pub location: Option<Location>,
}

impl FailedVertex {
    pub(crate) fn of(digest: &Digest, vertex: &Vertex) -> Self {
        FailedVertex {
            digest: digest.clone(),
            description: vertex.metadata.description.clone(),
            location: vertex.metadata.location,
        }
    }
}

impl fmt::Display for FailedVertex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.description.is_empty() {
            write!(f, "step {}", self.digest)
        } else {
            write!(f, "step `{}`", self.description)
        }
    }
}

/// Why a solve did not finish.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SolveError {
    #[error("target {digest} is not in the graph")]
    UnknownTarget { digest: Digest },
    #[error("input {input} of vertex {vertex} is not in the graph")]
    UnknownInput { vertex: Digest, input: Digest },
    #[error("{vertex} failed")]
    Run {
        vertex: FailedVertex,
        #[source]
        source: SharedError,
    },
    #[error("cannot compute the content key of {vertex}")]
    ContentKey {
        vertex: FailedVertex,
        #[source]
        source: SharedError,
    },
    #[error("cannot describe the result of {vertex} for the cache")]
    Save {
        vertex: FailedVertex,
        #[source]
        source: SharedError,
    },
    #[error("the build was cancelled")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] Arc<StoreError>),
}

impl SolveError {
    /// The vertex that failed, when one did.
    pub fn vertex(&self) -> Option<&FailedVertex> {
        match self {
            SolveError::Run { vertex, .. }
            | SolveError::ContentKey { vertex, .. }
            | SolveError::Save { vertex, .. } => Some(vertex),
            _ => None,
        }
    }
}

impl From<StoreError> for SolveError {
    fn from(e: StoreError) -> Self {
        SolveError::Store(Arc::new(e))
    }
}

/// A cache directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode the cache file for {what}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cache worker thread failed")]
    Join {
        #[source]
        source: tokio::task::JoinError,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_owned();
        move |source| StoreError::Io { op, path, source }
    }
}

/// Every message in an error chain, joined by `: `.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    oci::error_chain(error)
}
