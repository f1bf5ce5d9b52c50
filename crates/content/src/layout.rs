//! An image chosen in an OCI layout on disk, as `oci-layout://DIR[:TAG|@DIGEST]`
//! names it (`--build-context NAME=oci-layout://…`, `imagetools create|copy`).

use oci::Descriptor;
use oci::document::ManifestOrIndex;

use crate::{Store, StoreError};

/// Why a layout or an image in it could not be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("cannot read OCI layout {dir}")]
    Read {
        dir: String,
        #[source]
        source: StoreError,
    },
    #[error("invalid digest {digest:?} for OCI layout {dir}")]
    Digest { dir: String, digest: String },
    #[error("OCI layout {dir} has no image {what}")]
    NoImage { dir: String, what: String },
    #[error("OCI layout {dir} holds {count} images")]
    Ambiguous { dir: String, count: usize },
}

impl LayoutError {
    /// How to fix it, when that is known.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            LayoutError::Ambiguous { .. } => {
                Some("name one: oci-layout://DIR:TAG or oci-layout://DIR@DIGEST")
            }
            _ => None,
        }
    }
}

/// The layout `DIR` of `spec` (`DIR`, `DIR:TAG` or `DIR@DIGEST`, without the
/// `oci-layout://` scheme) and the image it names: the one with that
/// `org.opencontainers.image.ref.name`, the index entry (or an entry of an index
/// entry) with that digest, or the only image when neither is given.
pub fn open_image(spec: &str) -> Result<(Store, Descriptor), LayoutError> {
    let (dir, tag, digest) = match spec.rsplit_once('@') {
        Some((d, dg)) if dg.contains(':') => (d, None, Some(dg)),
        _ => match spec.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') => (d, Some(t), None),
            _ => (spec, None, None),
        },
    };
    let read = |source| LayoutError::Read {
        dir: dir.to_owned(),
        source,
    };
    let no_image = |what: String| LayoutError::NoImage {
        dir: dir.to_owned(),
        what,
    };
    let layout = Store::read_layout(dir).map_err(read)?;
    let desc = match (tag, digest) {
        (_, Some(d)) => {
            let d: oci::Digest = d.parse().map_err(|_| LayoutError::Digest {
                dir: dir.to_owned(),
                digest: d.to_owned(),
            })?;
            let top = layout.index().map_err(read)?.manifests;
            let mut found = top.iter().find(|m| m.digest == d).cloned();
            for m in &top {
                if found.is_some() {
                    break;
                }
                if let Ok(bytes) = layout.read_document(&m.digest)
                    && let Ok(ManifestOrIndex::Index(i)) =
                        ManifestOrIndex::parse(&m.media_type, bytes)
                {
                    found = i.value().manifests.iter().find(|c| c.digest == d).cloned();
                }
            }
            found.ok_or_else(|| no_image(d.to_string()))?
        }
        (Some(t), None) => layout
            .resolve(t)
            .map_err(|_| no_image(format!("named {t:?}")))?,
        (None, None) => {
            let images = layout.images().map_err(read)?;
            match images.as_slice() {
                [one] => one.descriptor.clone(),
                _ => {
                    return Err(LayoutError::Ambiguous {
                        dir: dir.to_owned(),
                        count: images.len(),
                    });
                }
            }
        }
    };
    Ok((layout, desc))
}
