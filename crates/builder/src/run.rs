//! The image `manifold run` runs: a name in the store, else pulled, narrowed to one
//! platform's manifest.

use content::Store;
use oci::document::ManifestOrIndex;
use oci::{Descriptor, Platform, PlatformMatcher, Reference};
use registry::ops::Platforms;

use crate::error::BuildError;

/// The manifest to run for `image` on `platform` (the host's when `None`): from a
/// local name, or pulled with `client` (and named by its reference).
pub async fn image_to_run(
    client: Option<&registry::Client>,
    store: &Store,
    image: &str,
    platform: Option<&Platform>,
) -> Result<Descriptor, BuildError> {
    let reference = Reference::parse(image).map_err(|e| BuildError::Reference {
        reference: image.to_owned(),
        message: e.to_string(),
    })?;
    let want = platform.cloned().unwrap_or_else(Platform::host);
    for name in [image.to_owned(), reference.to_string()] {
        if let Ok(desc) = store.resolve(&name) {
            let local = pick(store, &desc, &want, &name)?;
            // A stored single-platform image of another platform: pull the one asked for.
            let other = platform.is_some()
                && local
                    .platform
                    .as_ref()
                    .is_some_and(|p| !PlatformMatcher::only(&want).matches(p));
            if !other {
                // A push-only build from a lazy cache import left layers in the
                // registry: running needs them here.
                let (store, client, m) = (store.clone(), client.cloned(), local.clone());
                tokio::task::spawn_blocking(move || {
                    let lease = store.lease()?;
                    let blobs = crate::cache_io::image_blobs(&store, &m)?;
                    crate::cache_io::fetch_missing(&store, client.as_ref(), &lease, &blobs)
                })
                .await
                .map_err(|e| BuildError::Internal(format!("the fetch thread failed: {e}")))??;
                return Ok(local);
            }
        }
    }
    let Some(client) = client else {
        return Err(BuildError::Offline {
            reference: reference.to_string(),
        });
    };
    let lease = store.lease()?;
    // By digest, the manifest chooses the platform; by tag, the requested one.
    let choose = if reference.digest().is_some() && platform.is_none() {
        Platforms::All
    } else {
        Platforms::Best(want)
    };
    let desc = client
        .pull(store, &lease, &reference, &choose)
        .await
        .map_err(|e| BuildError::Pull {
            reference: reference.to_string(),
            source: Box::new(e),
        })?;
    store.set_name(&reference.to_string(), &desc)?;
    match oci::media::kind(&desc.media_type) {
        oci::media::Kind::Index => pick(store, &desc, &Platform::host(), &reference.to_string()),
        _ => Ok(desc),
    }
}

/// A single-platform manifest from a stored manifest or index.
fn pick(
    store: &Store,
    desc: &Descriptor,
    want: &Platform,
    name: &str,
) -> Result<Descriptor, BuildError> {
    let bytes = store.read_document(&desc.digest)?;
    let doc = ManifestOrIndex::parse(&desc.media_type, bytes)
        .map_err(|e| BuildError::Internal(format!("{name}: {e}")))?;
    match doc {
        ManifestOrIndex::Manifest(_) => Ok(desc.clone()),
        ManifestOrIndex::Index(index) => {
            let index = index.value();
            index
                .manifest_for(want)
                .cloned()
                .ok_or_else(|| BuildError::NoPlatform {
                    name: name.to_owned(),
                    want: want.to_string(),
                    have: index.platforms().iter().map(ToString::to_string).collect(),
                })
        }
    }
}
