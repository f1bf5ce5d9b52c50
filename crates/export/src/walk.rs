//! What an image references: the blobs an output must carry.

use std::collections::BTreeMap;

use content::Store;
use oci::{Descriptor, Digest, ImageIndex, RawDocument, media};

use crate::error::{ExportError, Result};
use crate::image::read_manifest;

/// An image manifest and the blobs it references.
#[derive(Debug, Clone)]
pub(crate) struct ImageBlobs {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The manifests `desc` names: itself, or the entries of an index.
pub(crate) fn manifests(store: &Store, desc: &Descriptor) -> Result<Vec<Descriptor>> {
    match media::kind(&desc.media_type) {
        media::Kind::Manifest => Ok(vec![desc.clone()]),
        media::Kind::Index => {
            let index = read_index(store, &desc.digest)?;
            let mut out = Vec::new();
            for m in &index.value().manifests {
                match media::kind(&m.media_type) {
                    media::Kind::Manifest => out.push(m.clone()),
                    media::Kind::Index => {
                        return Err(ExportError::NestedIndex {
                            digest: desc.digest.clone(),
                        });
                    }
                    // Attestations and other artifacts are not images.
                    _ => {}
                }
            }
            Ok(out)
        }
        _ => Err(ExportError::NotAnImage {
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
        }),
    }
}

pub(crate) fn read_index(store: &Store, digest: &Digest) -> Result<RawDocument<ImageIndex>> {
    let bytes = store.read_document(digest)?;
    RawDocument::parse(bytes).map_err(|source| ExportError::Document {
        what: "index",
        digest: digest.clone(),
        source,
    })
}

/// The config and layers of one manifest.
pub(crate) fn image_blobs(store: &Store, manifest: &Descriptor) -> Result<ImageBlobs> {
    let m = read_manifest(store, manifest)?;
    Ok(ImageBlobs {
        manifest: manifest.clone(),
        config: m.value().config.clone(),
        layers: m.value().layers.clone(),
    })
}

/// Every blob reachable from `desc` (itself included) that an output carries, by
/// digest: indexes, manifests, configs and layers. Foreign layers (with `urls`)
/// are left out when the store lacks them.
pub(crate) fn reachable(store: &Store, desc: &Descriptor) -> Result<BTreeMap<Digest, Descriptor>> {
    let mut out = BTreeMap::new();
    out.insert(desc.digest.clone(), desc.clone());
    for m in manifests(store, desc)? {
        let blobs = image_blobs(store, &m)?;
        out.insert(m.digest.clone(), m);
        out.insert(blobs.config.digest.clone(), blobs.config);
        for l in blobs.layers {
            if !l.urls.is_empty() && !store.contains(&l.digest) {
                continue;
            }
            out.entry(l.digest.clone()).or_insert(l);
        }
    }
    Ok(out)
}
