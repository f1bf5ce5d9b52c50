//! The graph: vertices by digest, and the outputs.

use std::collections::HashMap;

use oci::{Digest, ImageConfig, Platform};
use serde::Serialize;

use crate::op::{Op, Source};
use crate::vertex::{Metadata, Vertex};

/// Why a vertex could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    #[error("input {input} of a {kind} vertex is not in the graph")]
    UnknownInput { kind: &'static str, input: Digest },
    #[error("a {kind} vertex needs at least {needed} inputs, got {got}")]
    MissingInputs {
        kind: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("a source vertex takes no inputs, got {got}")]
    SourceWithInputs { got: usize },
    #[error("output root {root} is not in the graph")]
    UnknownRoot { root: Digest },
}

/// One result of the build: the filesystem `root` and its image config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    pub platform: Platform,
    pub root: Digest,
    pub config: ImageConfig,
}

/// Vertices keyed by digest, in insertion (topological) order, and outputs.
///
/// Adding a vertex identical to one already present (same op, same inputs)
/// returns the existing digest and keeps the first metadata.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    vertices: HashMap<Digest, Vertex>,
    order: Vec<Digest>,
    outputs: Vec<Output>,
}

#[derive(Serialize)]
struct DumpVertex<'a> {
    digest: &'a Digest,
    #[serde(flatten)]
    vertex: &'a Vertex,
}

#[derive(Serialize)]
struct Dump<'a> {
    vertices: Vec<DumpVertex<'a>>,
    outputs: &'a [Output],
}

impl Graph {
    pub fn new() -> Self {
        Graph::default()
    }

    /// Add a vertex after checking its inputs; returns its digest.
    pub fn add(&mut self, vertex: Vertex) -> Result<Digest, GraphError> {
        let kind = vertex.op.kind();
        if matches!(vertex.op, Op::Source(_)) && !vertex.inputs.is_empty() {
            return Err(GraphError::SourceWithInputs {
                got: vertex.inputs.len(),
            });
        }
        let needed = vertex.op.min_inputs();
        if vertex.inputs.len() < needed {
            return Err(GraphError::MissingInputs {
                kind,
                needed,
                got: vertex.inputs.len(),
            });
        }
        if let Some(input) = vertex
            .inputs
            .iter()
            .find(|d| !self.vertices.contains_key(*d))
        {
            return Err(GraphError::UnknownInput {
                kind,
                input: input.clone(),
            });
        }
        let digest = vertex.digest();
        if !self.vertices.contains_key(&digest) {
            self.order.push(digest.clone());
            self.vertices.insert(digest.clone(), vertex);
        }
        Ok(digest)
    }

    /// Shorthand for [`Graph::add`] of `Vertex::new(op, inputs, metadata)`.
    pub fn add_op(
        &mut self,
        op: Op,
        inputs: Vec<Digest>,
        metadata: Metadata,
    ) -> Result<Digest, GraphError> {
        self.add(Vertex::new(op, inputs, metadata))
    }

    /// Declare a result.
    pub fn add_output(
        &mut self,
        platform: Platform,
        root: Digest,
        config: ImageConfig,
    ) -> Result<(), GraphError> {
        if !self.vertices.contains_key(&root) {
            return Err(GraphError::UnknownRoot { root });
        }
        self.outputs.push(Output {
            platform,
            root,
            config,
        });
        Ok(())
    }

    pub fn get(&self, digest: &Digest) -> Option<&Vertex> {
        self.vertices.get(digest)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Vertices in insertion order: every vertex comes after its inputs.
    pub fn vertices(&self) -> impl Iterator<Item = (&Digest, &Vertex)> {
        self.order.iter().map(|d| (d, &self.vertices[d]))
    }

    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Whether the graph reads the client's files (a [`Source::Local`]).
    pub fn uses_local(&self, name: &str) -> bool {
        self.vertices
            .values()
            .any(|v| matches!(&v.op, Op::Source(Source::Local { name: n, .. }) if n == name))
    }

    /// Deterministic JSON: vertices in insertion order with their digests,
    /// then the outputs. Meant for golden tests and debugging.
    pub fn to_json_pretty(&self) -> String {
        let dump = Dump {
            vertices: self
                .vertices()
                .map(|(digest, vertex)| DumpVertex { digest, vertex })
                .collect(),
            outputs: &self.outputs,
        };
        serde_json::to_string_pretty(&dump).expect("invariant: the graph serialises")
    }
}
