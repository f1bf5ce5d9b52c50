//! The solver: which vertices to resolve, in what order, and when to stop.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use graph::Graph;
use oci::Digest;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::SolveError;
use crate::event::EventSink;
use crate::flight::Flights;
use crate::plan::Plan;
use crate::resolve::{Inner, Job, Resolved};
use crate::runner::OpRunner;
use crate::store::CacheStore;

/// Settings of a [`Solver`], shared by all its solves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolverConfig {
    /// How many ops run at once, across every solve of the solver (at
    /// least 1). Cache lookups and content keys are not counted.
    pub parallelism: usize,
}

impl Default for SolverConfig {
    /// One op per core.
    fn default() -> Self {
        SolverConfig {
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Settings of one solve.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// Run every vertex, taking nothing from the cache (`--no-cache`).
    /// Vertices whose metadata has `ignore_cache` always run
    /// (`--no-cache-filter`).
    pub no_cache: bool,
    /// Cancel to stop the solve.
    pub cancel: CancellationToken,
    pub events: EventSink,
}

/// What [`Solver::solve_keyed`] returns.
#[derive(Debug)]
pub struct Solved<O> {
    /// The result of each target, by vertex digest.
    pub outputs: HashMap<Digest, O>,
    /// The cache key of every vertex resolved, by vertex digest.
    pub keys: HashMap<Digest, Digest>,
}

/// Runs graphs with an [`OpRunner`]. Cheap to clone: clones share the
/// parallelism limit and the runs under way, so concurrent solves of the
/// same step run it once.
pub struct Solver<R: OpRunner> {
    inner: Arc<Inner<R>>,
}

impl<R: OpRunner> Clone for Solver<R> {
    fn clone(&self) -> Self {
        Solver {
            inner: self.inner.clone(),
        }
    }
}

impl<R: OpRunner> fmt::Debug for Solver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Solver")
            .field("store", &self.inner.store)
            .field("available", &self.inner.limit.available_permits())
            .finish_non_exhaustive()
    }
}

impl<R: OpRunner> Solver<R> {
    pub fn new(runner: R, store: CacheStore, config: SolverConfig) -> Self {
        Solver {
            inner: Arc::new(Inner {
                runner,
                store,
                limit: Arc::new(Semaphore::new(config.parallelism.max(1))),
                flights: Flights::new(),
            }),
        }
    }

    pub fn runner(&self) -> &R {
        &self.inner.runner
    }

    pub fn store(&self) -> &CacheStore {
        &self.inner.store
    }

    /// Resolve `targets` and every vertex they need, each once; returns the
    /// result of each target.
    ///
    /// Must be called within a tokio runtime. On failure or cancellation it
    /// returns only after the ops it alone was waiting for have stopped.
    pub async fn solve(
        &self,
        graph: &Graph,
        targets: &[Digest],
        opts: &SolveOptions,
    ) -> Result<HashMap<Digest, R::Output>, SolveError> {
        Ok(self.solve_keyed(graph, targets, opts).await?.outputs)
    }

    /// [`Solver::solve`], also returning the cache key of every vertex resolved (by
    /// vertex digest): the records a cache export writes.
    pub async fn solve_keyed(
        &self,
        graph: &Graph,
        targets: &[Digest],
        opts: &SolveOptions,
    ) -> Result<Solved<R::Output>, SolveError> {
        let mut plan = Plan::new(graph, targets)?;
        // Failing cancels the rest of this solve, never the caller's token.
        let cancel = opts.cancel.child_token();
        let mut ready = plan.take_roots();
        let mut done: HashMap<Digest, Resolved<R::Output>> = HashMap::with_capacity(plan.len());
        let mut tasks = JoinSet::new();
        let mut failure = None;
        loop {
            if !cancel.is_cancelled() {
                for digest in ready.drain(..) {
                    let job = self.job(graph, &digest, &done, opts, &cancel);
                    tasks.spawn(async move { (digest, job.resolve().await) });
                }
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (digest, outcome) = match joined {
                Ok(joined) => joined,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Aborted: only when the runtime shuts down.
                Err(_) => {
                    cancel.cancel();
                    continue;
                }
            };
            match outcome {
                Ok(resolved) => {
                    ready.extend(plan.resolved(&digest));
                    done.insert(digest, resolved);
                }
                Err(SolveError::Cancelled) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                    cancel.cancel();
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if cancel.is_cancelled() {
            return Err(SolveError::Cancelled);
        }
        let outputs = targets
            .iter()
            .map(|t| {
                let resolved = done
                    .get(t)
                    .expect("invariant: every needed vertex resolved without failure");
                (t.clone(), resolved.output.clone())
            })
            .collect();
        let keys = done.into_iter().map(|(d, r)| (d, r.key)).collect();
        Ok(Solved { outputs, keys })
    }

    fn job(
        &self,
        graph: &Graph,
        digest: &Digest,
        done: &HashMap<Digest, Resolved<R::Output>>,
        opts: &SolveOptions,
        cancel: &CancellationToken,
    ) -> Job<R> {
        let vertex = graph
            .get(digest)
            .expect("invariant: the plan holds only vertices of the graph");
        let inputs = vertex
            .inputs
            .iter()
            .map(|i| {
                done.get(i)
                    .expect("invariant: a vertex is ready once its inputs are resolved")
                    .clone()
            })
            .collect();
        Job {
            inner: self.inner.clone(),
            digest: digest.clone(),
            vertex: Arc::new(vertex.clone()),
            inputs,
            no_cache: opts.no_cache,
            events: opts.events.clone(),
            cancel: cancel.clone(),
        }
    }
}
