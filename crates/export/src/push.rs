//! Pushing an exported image or index.

use content::Store;
use oci::{Descriptor, Reference};
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
    client
        .push(store, desc, reference, None)
        .await
        .map_err(|source| ExportError::Push {
            reference: reference.to_string(),
            source: Box::new(source),
        })
}
