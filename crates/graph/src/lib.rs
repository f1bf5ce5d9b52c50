//! The build IR: a content-addressed graph of operations, like BuildKit's LLB.
//!
//! A [`Vertex`] is an [`Op`] plus its inputs (the digests of other vertices)
//! and [`Metadata`] for people. Its digest covers the op and the inputs'
//! digests, never the metadata ([`canonical`] documents the exact bytes), so
//! two identical steps are one vertex: a [`Graph`] stores each digest once,
//! and stages shared by several target platforms are built once.
//!
//! The graph ends in [`Output`]s, one per target platform, each with the
//! image config the frontend computed. [`ImageResolver`] is the bridge through
//! which a frontend reads a base image's config without knowing how.
//!
//! **Invariant**: this crate does no IO and never prints.
//! **Invariant**: a vertex is added only after all its inputs, so the
//! insertion order is a topological order and there are no cycles.

pub mod canonical;
mod graph;
pub mod op;
mod resolve;
mod vertex;

pub use graph::{Graph, GraphError, Output};
pub use op::Op;
pub use resolve::{ImageResolver, ResolveError, ResolvedImage};
pub use vertex::{Location, Metadata, Vertex};

#[cfg(test)]
mod tests;
