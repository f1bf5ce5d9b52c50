//! Resolving one vertex: its key, the cache, or a (shared) run.

use std::sync::Arc;
use std::time::Instant;

use graph::Vertex;
use oci::Digest;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::{FailedVertex, SolveError, StoreError, chain};
use crate::event::{Event, EventSink, MissReason, Watcher};
use crate::flight::Flights;
use crate::flight::{Flight, FlightError, LandGuard, Landed, Outcome};
use crate::key::{cache_key, op_digest, result_key};
use crate::runner::{ContentKey, OpRunner, RunCtx};
use crate::store::{CacheRecord, CacheStore, History, Lookup, now_secs};

/// What every job of a solver shares: the runner, the cache, the parallelism limit
/// and the runs under way.
pub(crate) struct Inner<R: OpRunner> {
    pub runner: R,
    pub store: CacheStore,
    pub limit: Arc<Semaphore>,
    pub flights: Flights<R::Output>,
}

/// A resolved vertex, as its dependents see it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved<O> {
    pub output: O,
    /// The vertex's cache key.
    pub key: Digest,
    pub result_key: Digest,
    /// How a miss names this vertex when it is a changed input.
    pub label: String,
}

/// Everything a vertex task needs; owned, so the task is `'static`.
pub(crate) struct Job<R: OpRunner> {
    pub inner: Arc<Inner<R>>,
    pub digest: Digest,
    pub vertex: Arc<Vertex>,
    pub inputs: Vec<Resolved<R::Output>>,
    pub no_cache: bool,
    pub events: EventSink,
    pub cancel: CancellationToken,
}

/// What a vertex's key is made of.
struct Keyed {
    key: Digest,
    input_keys: Vec<Digest>,
    content: Option<ContentKey>,
    label: String,
}

/// Run blocking cache IO off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(source) => Err(StoreError::Join { source }),
    }
}

/// Look `key` up and load it through the runner; `Err` holds why not.
///
/// The record is read and touched in place, not on a blocking thread: each is a
/// few microseconds from the page cache, less than a handoff to a blocking thread
/// and back, which was most of a cached 50-step build (docs/benchmarks.md).
fn lookup<R: OpRunner>(
    inner: &Inner<R>,
    key: &Digest,
) -> Result<Result<(R::Output, CacheRecord), MissReason>, StoreError> {
    Ok(match inner.store.get(key)? {
        Lookup::Found(record) => match inner.runner.load_cached(&record) {
            Some(output) => {
                inner.store.touch(key)?;
                Ok((output, record))
            }
            None => Err(MissReason::Unloadable),
        },
        Lookup::Missing => Err(MissReason::RecordMissing),
        Lookup::Corrupt { set_aside } => Err(MissReason::RecordCorrupt { set_aside }),
    })
}

impl<R: OpRunner> Job<R> {
    /// Resolve the vertex and report the end of it as an event.
    pub async fn resolve(self) -> Result<Resolved<R::Output>, SolveError> {
        let result = self.resolve_inner().await;
        match &result {
            Ok(_) => {}
            Err(SolveError::Cancelled) => self.events.emit(Event::VertexCancelled {
                digest: self.digest.clone(),
            }),
            Err(e) => self.events.emit(Event::VertexFailed {
                digest: self.digest.clone(),
                error: chain(e),
            }),
        }
        result
    }

    async fn resolve_inner(&self) -> Result<Resolved<R::Output>, SolveError> {
        if self.cancel.is_cancelled() {
            return Err(SolveError::Cancelled);
        }
        let keyed = self.key().await?;
        let history = self.inner.store.history(&self.digest)?.found(); // in place, as in `lookup`
        let bypass = if self.no_cache {
            Some(MissReason::NoCache)
        } else if self.vertex.metadata.ignore_cache {
            Some(MissReason::IgnoreCache)
        } else {
            None
        };
        let bypassed = bypass.is_some();
        let miss = match bypass {
            Some(reason) => reason,
            None => match lookup(&self.inner, &keyed.key)? {
                Ok((output, record)) => {
                    self.events.emit(Event::VertexCached {
                        digest: self.digest.clone(),
                        name: self.vertex.metadata.description.clone(),
                        key: keyed.key.clone(),
                    });
                    self.key_statuses(&keyed);
                    let result_key = result_key(&record.value);
                    return self.finish(keyed, history, output, result_key).await;
                }
                Err(MissReason::RecordMissing) => self.explain(&keyed, history.as_ref()),
                Err(reason) => reason,
            },
        };
        self.events.emit(Event::CacheMiss {
            digest: self.digest.clone(),
            key: keyed.key.clone(),
            reason: miss,
        });
        let landed = self.run(&keyed.key, bypassed).await?;
        if landed.cached {
            self.events.emit(Event::VertexCached {
                digest: self.digest.clone(),
                name: self.vertex.metadata.description.clone(),
                key: keyed.key.clone(),
            });
            self.key_statuses(&keyed);
        } else {
            self.key_statuses(&keyed);
            self.events.emit(Event::VertexCompleted {
                digest: self.digest.clone(),
                duration: landed.duration,
            });
        }
        self.finish(keyed, history, landed.output, landed.result_key)
            .await
    }

    /// The statuses the runner gave with the content key, once the vertex has started
    /// or was found in the cache.
    fn key_statuses(&self, keyed: &Keyed) {
        for status in keyed.content.iter().flat_map(|c| &c.statuses) {
            self.events.emit(Event::VertexStatus {
                digest: self.digest.clone(),
                status: status.clone(),
            });
        }
    }

    /// The vertex's cache key, asking the runner for a content key.
    async fn key(&self) -> Result<Keyed, SolveError> {
        let outputs: Vec<R::Output> = self.inputs.iter().map(|r| r.output.clone()).collect();
        let content = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(SolveError::Cancelled),
            content = self.inner.runner.content_key(&self.vertex, &outputs) => content,
        }
        .map_err(|e| SolveError::ContentKey {
            vertex: self.failed(),
            source: Arc::from(e),
        })?;
        let input_keys: Vec<Digest> = self.inputs.iter().map(|r| r.result_key.clone()).collect();
        let key = cache_key(
            &op_digest(&self.vertex.op),
            &input_keys,
            content.as_ref().map(|c| &c.digest),
        );
        let label = match &content {
            Some(c) => c.name.clone(),
            None if !self.vertex.metadata.description.is_empty() => {
                self.vertex.metadata.description.clone()
            }
            None => format!("{} {}", self.vertex.op.kind(), self.digest.short()),
        };
        Ok(Keyed {
            key,
            input_keys,
            content,
            label,
        })
    }

    /// Why the key has no record, compared with the vertex's last build.
    fn explain(&self, keyed: &Keyed, history: Option<&History>) -> MissReason {
        let Some(history) = history else {
            return MissReason::NewStep;
        };
        if history.content.as_ref() != keyed.content.as_ref().map(|c| &c.digest) {
            let name = keyed
                .content
                .as_ref()
                .map_or_else(|| "the content key".to_owned(), |c| c.name.clone());
            return MissReason::ContentChanged { name };
        }
        let changed =
            (keyed.input_keys.iter().zip(&history.inputs)).position(|(now, then)| now != then);
        match changed {
            Some(index) => MissReason::InputChanged {
                index,
                name: self.inputs[index].label.clone(),
            },
            None => MissReason::RecordMissing,
        }
    }

    /// Record what this build used, for the next miss to be explained.
    async fn finish(
        &self,
        keyed: Keyed,
        history: Option<History>,
        output: R::Output,
        result_key: Digest,
    ) -> Result<Resolved<R::Output>, SolveError> {
        let key = keyed.key.clone();
        let now = History {
            vertex: self.digest.clone(),
            key: keyed.key,
            inputs: keyed.input_keys,
            content: keyed.content.map(|c| c.digest),
        };
        if history.as_ref() != Some(&now) {
            let store = self.inner.store.clone();
            blocking(move || store.set_history(&now)).await?;
        }
        Ok(Resolved {
            output,
            key,
            result_key,
            label: keyed.label,
        })
    }

    fn failed(&self) -> FailedVertex {
        FailedVertex::of(&self.digest, &self.vertex)
    }

    /// Run the op for `key`, or wait for the run another build started.
    async fn run(&self, key: &Digest, bypass: bool) -> Result<Landed<R::Output>, SolveError> {
        let watcher = Watcher {
            digest: self.digest.clone(),
            name: self.vertex.metadata.description.clone(),
            platform: self.vertex.metadata.platform.clone(),
            events: self.events.clone(),
            cancel: self.cancel.clone(),
        };
        // A build that bypasses the cache must not get a result a normal
        // build's run took from a record, so the two never share a run.
        let slot = if bypass {
            Digest::sha256(format!("bypass {key}").as_bytes())
        } else {
            key.clone()
        };
        let (mut ticket, new) = self.inner.flights.join(&slot, watcher);
        if let Some(flight) = new {
            let outputs = self.inputs.iter().map(|r| r.output.clone()).collect();
            let launch = Launch {
                inner: self.inner.clone(),
                flight,
                key: key.clone(),
                slot,
                digest: self.digest.clone(),
                vertex: self.vertex.clone(),
                inputs: outputs,
                bypass,
            };
            tokio::spawn(launch.fly());
        }
        let outcome = tokio::select! {
            biased;
            outcome = ticket.wait() => Some(outcome),
            _ = self.cancel.cancelled() => None,
        };
        let Some(outcome) = outcome else {
            ticket.leave().await;
            return Err(SolveError::Cancelled);
        };
        outcome.map_err(|e| match e {
            FlightError::Cancelled => SolveError::Cancelled,
            FlightError::Run(source) => SolveError::Run {
                vertex: self.failed(),
                source,
            },
            FlightError::Save(source) => SolveError::Save {
                vertex: self.failed(),
                source,
            },
            FlightError::Store(e) => SolveError::Store(e),
        })
    }
}

/// One run of an op, on its own task so that it outlives any one build
/// waiting for it.
struct Launch<R: OpRunner> {
    inner: Arc<Inner<R>>,
    flight: Arc<Flight<R::Output>>,
    key: Digest,
    /// The flight's key in the map of runs under way.
    slot: Digest,
    digest: Digest,
    vertex: Arc<Vertex>,
    inputs: Vec<R::Output>,
    bypass: bool,
}

impl<R: OpRunner> Launch<R> {
    async fn fly(self) {
        let guard = LandGuard {
            flights: &self.inner.flights,
            key: &self.slot,
            flight: &self.flight,
            armed: true,
        };
        let outcome = self.run().await;
        guard.land(outcome);
    }

    async fn run(&self) -> Outcome<R::Output> {
        let cancel = self.flight.audience.cancel_token().clone();
        // Another process on this cache may be running the same key: wait for it
        // (a bypassing build runs anyway, under no lock).
        let _key_lock = if self.bypass {
            None
        } else {
            let store_handle = self.inner.store.clone();
            let key = self.key.clone();
            Some(
                blocking(move || store_handle.lock_key(&key))
                    .await
                    .map_err(store)?,
            )
        };
        if !self.bypass {
            // A build in this or another process may have recorded the key
            // since the waiting build looked.
            if let Ok((output, record)) = lookup(&self.inner, &self.key).map_err(store)? {
                return Ok(Landed {
                    output,
                    result_key: result_key(&record.value),
                    cached: true,
                    duration: Default::default(),
                });
            }
        }
        let permit = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(FlightError::Cancelled),
            permit = self.inner.limit.clone().acquire_owned() => permit,
        };
        let _permit = permit.expect("invariant: the solver never closes its semaphore");
        if cancel.is_cancelled() || !self.flight.audience.start() {
            return Err(FlightError::Cancelled);
        }
        let started = Instant::now();
        let ctx = RunCtx::new(
            self.digest.clone(),
            self.key.clone(),
            cancel.clone(),
            self.flight.audience.clone(),
        );
        let runner = &self.inner.runner;
        let output = match runner.run(&self.vertex, self.inputs.clone(), &ctx).await {
            Ok(output) => output,
            Err(_) if cancel.is_cancelled() => return Err(FlightError::Cancelled),
            Err(e) => return Err(FlightError::Run(Arc::from(e))),
        };
        let duration = started.elapsed();
        let value = runner
            .save(&output)
            .map_err(|e| FlightError::Save(Arc::from(e)))?;
        let result_key = result_key(&value.value);
        let record = CacheRecord {
            key: self.key.clone(),
            value: value.value,
            size: value.size,
            created: now_secs(),
            description: self.vertex.metadata.description.clone(),
            last_used: std::time::SystemTime::now(),
        };
        let store_handle: CacheStore = self.inner.store.clone();
        blocking(move || store_handle.put(&record))
            .await
            .map_err(store)?;
        Ok(Landed {
            output,
            result_key,
            cached: false,
            duration,
        })
    }
}

fn store(e: StoreError) -> FlightError {
    FlightError::Store(Arc::new(e))
}
