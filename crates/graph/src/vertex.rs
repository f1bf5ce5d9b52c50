//! Vertices and their metadata.

use oci::{Digest, Platform};
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::op::Op;

/// An op applied to inputs, with metadata for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vertex {
    pub op: Op,
    /// The digests of the input vertices, in the order the op indexes them.
    pub inputs: Vec<Digest>,
    /// Not part of the digest.
    pub metadata: Metadata,
}

impl Vertex {
    pub fn new(op: Op, inputs: Vec<Digest>, metadata: Metadata) -> Self {
        Vertex {
            op,
            inputs,
            metadata,
        }
    }

    /// The content address: see [`canonical::digest`].
    pub fn digest(&self) -> Digest {
        canonical::digest(&self.op, &self.inputs)
    }
}

/// What a vertex means to people. Never part of a digest: changing a
/// description or a source position does not invalidate any cache.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// Progress name, e.g. `[build 2/4] RUN make`.
    pub description: String,
    /// Where in the Dockerfile the step comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The platform shown next to the step in progress output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Always run the step, never take it from the cache (`--no-cache-filter`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_cache: bool,
}

/// A range in a source file: 1-based lines and columns, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Location {
    pub start_line: u32,
    pub start_column: u32,
    pub end_line: u32,
    pub end_column: u32,
}
