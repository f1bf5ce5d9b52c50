//! Base images for the frontend and the build checks: from the store when it has them
//! (unless `--pull`), else from their registry. The one resolver of `FROM` images; the
//! CLI's `--call=check` uses it too.

use std::sync::Mutex;

use content::Store;
use graph::{ImageResolver, ResolveError, ResolvedImage};
use oci::Reference;
use oci::document::ManifestOrIndex;
use oci::{Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform, RawDocument};

use crate::error::BuildError;
use crate::runner::local_manifest;

/// Resolves base images by reference and platform.
pub struct BaseImages {
    store: Option<Store>,
    client: Option<registry::Client>,
    pull: bool,
    rt: tokio::runtime::Handle,
    /// For the build checks: an index without the platform answers with its first
    /// image (so `InvalidBaseImagePlatform` can say which platform it has), and
    /// failures are kept as messages instead of failing.
    checks: bool,
    failures: Mutex<Vec<String>>,
}

impl std::fmt::Debug for BaseImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseImages")
            .field("pull", &self.pull)
            .field("checks", &self.checks)
            .finish_non_exhaustive()
    }
}

impl BaseImages {
    /// For a build: the store first unless `pull`, then the registry.
    pub(crate) fn for_build(
        store: Store,
        client: Option<registry::Client>,
        pull: bool,
        rt: tokio::runtime::Handle,
    ) -> BaseImages {
        BaseImages {
            store: Some(store),
            client,
            pull,
            rt,
            checks: false,
            failures: Mutex::default(),
        }
    }

    /// For the build checks of `--call=check`: the store when there is one, then the
    /// registry; an image that lacks the platform answers with the one it has.
    pub fn for_checks(
        store: Option<Store>,
        client: Option<registry::Client>,
        rt: tokio::runtime::Handle,
    ) -> BaseImages {
        BaseImages {
            store,
            client,
            pull: false,
            rt,
            checks: true,
            failures: Mutex::default(),
        }
    }

    /// What could not be resolved, as messages (the checks go on without it).
    pub fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The entry of `index` for `platform` (for the checks, else the first image).
    fn pick<'i>(&self, index: &'i ImageIndex, platform: &Platform) -> Option<&'i Descriptor> {
        index.manifest_for(platform).or_else(|| {
            self.checks.then(|| {
                index
                    .manifests
                    .iter()
                    .find(|m| m.platform.as_ref().is_some_and(|p| p.os != "unknown"))
            })?
        })
    }

    fn local(&self, reference: &str, platform: &Platform) -> Option<ResolvedImage> {
        let store = self.store.as_ref()?;
        let r = Reference::parse(reference).ok()?;
        let top = [reference.to_owned(), r.to_string()]
            .iter()
            .find_map(|n| store.resolve(n).ok())?;
        let m = local_manifest(store, &top.digest, platform).or_else(|| {
            // For the checks, the platform the image has.
            let bytes = store.read_document(&top.digest).ok()?;
            let index = RawDocument::<ImageIndex>::parse(bytes).ok()?;
            let other = self.pick(index.value(), platform)?.platform.clone()?;
            local_manifest(store, &top.digest, &other)
        })?;
        let config = read_config(store, &m).ok()?;
        if !self.checks
            && top.digest == m.digest
            && !oci::PlatformMatcher::only(platform).matches(&config.platform())
        {
            return None;
        }
        Some(ResolvedImage {
            digest: top.digest,
            config,
        })
    }

    fn remote(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| "not in the local store, and no registry client".to_owned())?;
        let r = Reference::parse(reference).map_err(|e| e.to_string())?;
        self.rt.block_on(async {
            let top = client
                .get_manifest(&r)
                .await
                .map_err(|e| oci::error_chain(&e))?;
            // What the store already has is not fetched again: only the tag's
            // top document is asked for, to see whether it moved.
            let local = |d: &Digest| {
                self.store
                    .as_ref()?
                    .read_document(d)
                    .ok()
                    .and_then(|b| RawDocument::<ImageManifest>::parse(b).ok())
                    .map(|m| m.value().clone())
            };
            let manifest = match &top.document {
                ManifestOrIndex::Manifest(m) => m.value().clone(),
                ManifestOrIndex::Index(i) => {
                    let chosen = self
                        .pick(i.value(), platform)
                        .ok_or_else(|| format!("{reference} has no image for {platform}"))?;
                    match local(&chosen.digest) {
                        Some(m) => m,
                        None => {
                            let child = client
                                .get_manifest(&r.with_digest(chosen.digest.clone()))
                                .await
                                .map_err(|e| oci::error_chain(&e))?;
                            match child.document {
                                ManifestOrIndex::Manifest(m) => m.value().clone(),
                                ManifestOrIndex::Index(_) => {
                                    return Err(format!("{reference}: nested index"));
                                }
                            }
                        }
                    }
                }
            };
            let stored = self
                .store
                .as_ref()
                .and_then(|s| s.read_document(&manifest.config.digest).ok());
            let bytes = match stored {
                Some(b) => b,
                None => client
                    .get_blob_bytes(&client.repo(&r), &manifest.config)
                    .await
                    .map_err(|e| oci::error_chain(&e))?,
            };
            let config =
                RawDocument::<ImageConfig>::parse(bytes).map_err(|e| oci::error_chain(&e))?;
            Ok(ResolvedImage {
                digest: top.descriptor.digest.clone(),
                config: config.value().clone(),
            })
        })
    }

    fn resolve_image(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        if !self.pull
            && let Some(r) = self.local(reference, platform)
        {
            return Ok(r);
        }
        self.remote(reference, platform)
    }
}

impl ImageResolver for BaseImages {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError> {
        self.resolve_image(reference, platform)
            .map_err(|e| ResolveError::Other {
                reference: reference.to_owned(),
                source: e.into(),
            })
    }
}

impl dockerfile::lint::ImageResolver for BaseImages {
    fn resolve(&self, reference: &str, platform: &Platform) -> Option<dockerfile::lint::BaseImage> {
        match self.resolve_image(reference, platform) {
            Ok(r) => Some(dockerfile::lint::BaseImage::from_config(r.config)),
            Err(e) => {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("cannot read base image {reference}: {e}"));
                None
            }
        }
    }
}

/// The config of the image `manifest` in `store`.
pub(crate) fn read_config(store: &Store, manifest: &Descriptor) -> Result<ImageConfig, BuildError> {
    let bad = |what: &str| BuildError::Internal(format!("base image {}: {what}", manifest.digest));
    let m = RawDocument::<ImageManifest>::parse(store.read_document(&manifest.digest)?)
        .map_err(|_| bad("unreadable manifest"))?;
    let c = RawDocument::<ImageConfig>::parse(store.read_document(&m.value().config.digest)?)
        .map_err(|_| bad("unreadable config"))?;
    Ok(c.value().clone())
}
