//! The trait the worker implements, and what the solver hands it.

use std::future::Future;
use std::sync::Arc;

use graph::Vertex;
use oci::Digest;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::event::{Audience, LogStream};
use crate::store::CacheRecord;

/// The error type runners return; the solver keeps it as the failure's source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Runs ops for the solver. Generic over what a result is (a snapshot, a
/// layer list, a string in tests): the solver never looks inside one.
///
/// The futures must be `Send` because the solver runs them on tokio tasks.
/// An implementation may write these methods as `async fn`.
pub trait OpRunner: Send + Sync + 'static {
    /// A result. Cloned once per dependent, so make it cheap (a handle).
    type Output: Clone + Send + Sync + 'static;

    /// Run `vertex` on the results of its inputs (in the order of
    /// `vertex.inputs`). Watch `ctx` for cancellation and send logs through it.
    fn run(
        &self,
        vertex: &Vertex,
        inputs: Vec<Self::Output>,
        ctx: &RunCtx,
    ) -> impl Future<Output = Result<Self::Output, BoxError>> + Send;

    /// Key material the op definition does not show, computed before the
    /// vertex runs: the content digest of a local source's files, or the
    /// digest a tag resolved to. `None` (the default) when the definition and
    /// the inputs' results say everything.
    fn content_key(
        &self,
        vertex: &Vertex,
        inputs: &[Self::Output],
    ) -> impl Future<Output = Result<Option<ContentKey>, BoxError>> + Send {
        let _ = (vertex, inputs);
        async { Ok(None) }
    }

    /// Describe `output` for the cache. The description must identify the
    /// result: [`OpRunner::load_cached`] gets nothing else, and dependents'
    /// cache keys cover its digest ([`crate::key::result_key`]).
    fn save(&self, output: &Self::Output) -> Result<CacheValue, BoxError>;

    /// Turn a record written by [`OpRunner::save`] back into a result;
    /// `None` when it no longer can (its data was removed), and the vertex
    /// runs again.
    fn load_cached(&self, record: &CacheRecord) -> Option<Self::Output>;
}

/// Extra cache key material from [`OpRunner::content_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentKey {
    pub digest: Digest,
    /// What the digest covers, for people: `local context file app/main.c`.
    /// Used in [`crate::MissReason`]s when it changes.
    pub name: String,
    /// What making the key did that is worth showing (reading the build context),
    /// sent as [`crate::Event::VertexStatus`]es once the vertex shows up.
    pub statuses: Vec<crate::Status>,
}

impl ContentKey {
    pub fn new(digest: Digest, name: impl Into<String>) -> Self {
        ContentKey {
            digest,
            name: name.into(),
            statuses: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: crate::Status) -> Self {
        self.statuses.push(status);
        self
    }
}

/// A result's description as stored in its [`CacheRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct CacheValue {
    /// Opaque to the solver.
    pub value: serde_json::Value,
    /// Bytes the result holds on disk, for pruning.
    pub size: u64,
}

/// What a running op gets from the solver: cancellation and a log sink.
#[derive(Debug, Clone)]
pub struct RunCtx {
    digest: Digest,
    cache_key: Digest,
    cancel: CancellationToken,
    audience: Arc<Audience>,
}

impl RunCtx {
    pub(crate) fn new(
        digest: Digest,
        cache_key: Digest,
        cancel: CancellationToken,
        audience: Arc<Audience>,
    ) -> Self {
        RunCtx {
            digest,
            cache_key,
            cancel,
            audience,
        }
    }

    /// The digest of the vertex being run.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The cache key the result is recorded under.
    pub fn cache_key(&self) -> &Digest {
        &self.cache_key
    }

    /// Whether the op should stop: the build was cancelled or failed
    /// elsewhere, and no other build waits for this result.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the op should stop.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Forward progress of part `id` of the op (a layer being pulled) to every build
    /// waiting for it, as [`crate::Event::VertexStatus`].
    pub fn status(&self, id: &str, current: u64, total: Option<u64>, done: bool) {
        self.audience.status(id, current, total, done);
    }

    /// Forward output of the op to every build waiting for it, as
    /// [`crate::Event::VertexLog`].
    pub fn log(&self, stream: LogStream, bytes: impl Into<Vec<u8>>) {
        self.audience.log(stream, bytes.into());
    }
}
