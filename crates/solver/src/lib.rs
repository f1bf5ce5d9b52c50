//! The generic build scheduler, like BuildKit's solver.
//!
//! A [`Solver`] takes a [`graph::Graph`] and the digests of the vertices
//! wanted, and asks an [`OpRunner`] (the worker) to run each needed vertex
//! once, inputs first, at most `parallelism` at a time. Before running a
//! vertex it computes the vertex's cache key ([`key`]) and looks for a
//! [`CacheRecord`] in the [`CacheStore`]; a hit gives the result back through
//! [`OpRunner::load_cached`] without running anything.
//!
//! * Identical vertices are one vertex in the graph, so a step shared by two
//!   targets or platforms runs once. Two `solve` calls on one [`Solver`] that
//!   need the same cache key at the same time share one run (in-flight
//!   dedup).
//! * Cancelling [`SolveOptions::cancel`] stops scheduling, tells running ops
//!   through [`RunCtx`], waits for them and returns [`SolveError::Cancelled`].
//!   A failing vertex cancels the rest and is reported with its metadata.
//! * Progress is a stream of [`Event`]s, including why each cache miss
//!   happened ([`MissReason`]).
//!
//! **Invariant**: this crate knows nothing of files, snapshots or
//! containers. What a result is, is the runner's business: the solver only
//! moves `R::Output` values between the runner's calls and stores the JSON
//! description the runner gives it. Its only IO is its own cache directory.
//! **Invariant**: it never prints; everything a person sees is an [`Event`].

mod error;
mod event;
mod flight;
pub mod key;
mod plan;
mod resolve;
mod runner;
mod solve;
mod store;

pub use error::{FailedVertex, SolveError, StoreError, chain as error_chain};
pub use event::{Event, EventSink, LogStream, MissReason, Phase, Status, Warning};
pub use runner::{BoxError, CacheValue, ContentKey, OpRunner, RunCtx};
pub use solve::{SolveOptions, Solved, Solver, SolverConfig};
pub use store::{CacheRecord, CacheStore, History, Lookup};
pub use tokio_util::sync::CancellationToken;
