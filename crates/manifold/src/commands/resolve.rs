//! Base images for the frontend and the build checks, read from registries.

use std::cell::RefCell;

use oci::document::ManifestOrIndex;
use oci::{ImageConfig, Platform, RawDocument, Reference};
use registry::Client;

use crate::render::chain_text;

/// Reads base image configs through the registry client. Failures are kept as
/// messages so `--call=check` can report them as warnings instead of failing.
pub struct RegistryResolver<'a> {
    client: Client,
    rt: &'a tokio::runtime::Runtime,
    pub failures: RefCell<Vec<String>>,
}

impl<'a> RegistryResolver<'a> {
    pub fn new(client: Client, rt: &'a tokio::runtime::Runtime) -> Self {
        RegistryResolver {
            client,
            rt,
            failures: RefCell::default(),
        }
    }

    /// The manifest digest the reference points at, and the config for `platform`
    /// (or, if the image lacks it, for the first platform it has).
    fn fetch(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<(oci::Digest, ImageConfig), String> {
        let r = Reference::parse(reference).map_err(|e| chain_text(&e))?;
        self.rt.block_on(async {
            let top = self
                .client
                .get_manifest(&r)
                .await
                .map_err(|e| chain_text(&e))?;
            let manifest = match &top.document {
                ManifestOrIndex::Manifest(m) => m.value().clone(),
                ManifestOrIndex::Index(i) => {
                    let list = &i.value().manifests;
                    let chosen = i
                        .value()
                        .manifest_for(platform)
                        .or_else(|| {
                            list.iter()
                                .find(|m| m.platform.as_ref().is_some_and(|p| p.os != "unknown"))
                        })
                        .ok_or_else(|| format!("{reference} lists no image manifests"))?;
                    let child = self
                        .client
                        .get_manifest(&r.with_digest(chosen.digest.clone()))
                        .await
                        .map_err(|e| chain_text(&e))?;
                    match child.document {
                        ManifestOrIndex::Manifest(m) => m.value().clone(),
                        ManifestOrIndex::Index(_) => {
                            return Err(format!("{reference}: nested index"));
                        }
                    }
                }
            };
            let repo = self.client.repo(&r);
            let bytes = self
                .client
                .get_blob_bytes(&repo, &manifest.config)
                .await
                .map_err(|e| chain_text(&e))?;
            let config = RawDocument::<ImageConfig>::parse(bytes).map_err(|e| chain_text(&e))?;
            Ok((top.descriptor.digest.clone(), config.value().clone()))
        })
    }
}

impl dockerfile::lint::ImageResolver for RegistryResolver<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Option<dockerfile::lint::BaseImage> {
        match self.fetch(reference, platform) {
            Ok((_, config)) => Some(dockerfile::lint::BaseImage::from_config(config)),
            Err(e) => {
                self.failures
                    .borrow_mut()
                    .push(format!("cannot read base image {reference}: {e}"));
                None
            }
        }
    }
}

impl graph::ImageResolver for RegistryResolver<'_> {
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<graph::ResolvedImage, graph::ResolveError> {
        self.fetch(reference, platform)
            .map(|(digest, config)| graph::ResolvedImage { digest, config })
            .map_err(|e| graph::ResolveError::Other {
                reference: reference.to_owned(),
                source: e.into(),
            })
    }
}
