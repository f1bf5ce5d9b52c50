//! Pushing an exported image or index.

use std::collections::BTreeSet;

use content::Store;
use oci::{Descriptor, Digest, Reference};
use registry::Client;
use registry::ops::TransferStats;

use crate::error::{ExportError, Result};

/// Push `desc` (a manifest or an index) and everything it references from `store`
/// to `reference`, through [`registry::Client::push`] (blobs first, then manifests,
/// then the tag). The stored bytes are pushed as they are.
pub async fn push(
    client: &Client,
    store: &Store,
    desc: &Descriptor,
    reference: &Reference,
) -> Result<TransferStats> {
    push_known(client, store, desc, reference, &BTreeSet::new()).await
}

/// [`push`], taking the blobs in `present` as in the target's repository already
/// (this client has just uploaded them there).
pub async fn push_known(
    client: &Client,
    store: &Store,
    desc: &Descriptor,
    reference: &Reference,
    present: &BTreeSet<Digest>,
) -> Result<TransferStats> {
    client
        .push_known(store, desc, reference, None, present)
        .await
        .map_err(|source| ExportError::Push {
            reference: reference.to_string(),
            source: Box::new(source),
        })
}
