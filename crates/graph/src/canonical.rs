//! The canonical form hashed into a vertex digest.
//!
//! The digest of a vertex is the sha256 of these bytes:
//!
//! ```text
//! manifold.graph.v1\n{"op":<op>,"inputs":[<digest>,…]}
//! ```
//!
//! * `<op>` is the [`Op`] written by `serde_json` in its compact form: no
//!   whitespace, struct fields in declaration order (the order in
//!   [`crate::op`] is part of the format), enums externally tagged
//!   (`{"exec":{…}}`, unit variants as strings: `"scratch"`), fields marked
//!   `skip_serializing_if` left out when empty or unset, strings escaped as
//!   `serde_json` does (only `"`, `\` and control characters; UTF-8 as is).
//! * The op types contain no maps and no floats, so there is no key order or
//!   number formatting to agree on.
//! * `<digest>` is `"sha256:<hex>"`, in the op's input order.
//! * [`crate::Metadata`] is not part of it.
//!
//! Any change to these bytes changes every digest, so the prefix carries a
//! version and a golden test pins the digest of a fixed op.

use oci::Digest;
use serde::Serialize;

use crate::op::Op;

/// The version prefix of the canonical form.
pub const PREFIX: &[u8] = b"manifold.graph.v1\n";

#[derive(Serialize)]
struct Canonical<'a> {
    op: &'a Op,
    inputs: &'a [Digest],
}

/// The canonical bytes of (`op`, `inputs`).
pub fn bytes(op: &Op, inputs: &[Digest]) -> Vec<u8> {
    let mut out = PREFIX.to_vec();
    serde_json::to_writer(&mut out, &Canonical { op, inputs })
        .expect("invariant: ops serialise (no maps with non-string keys, no floats)");
    out
}

/// The digest of a vertex made of `op` and `inputs`.
pub fn digest(op: &Op, inputs: &[Digest]) -> Digest {
    Digest::sha256(&bytes(op, inputs))
}
