//! OCI 1.1 referrers: manifests whose `subject` names another manifest (attestations
//! attached to an image without entering its index). Found through the referrers
//! API (`GET /v2/<name>/referrers/<digest>`) where the registry has one, else through
//! the fallback tag the distribution spec defines: `<alg>-<hex>` of the subject,
//! holding an index of its referrers.

use content::Store;
use oci::{Descriptor, Digest, ImageIndex, RawDocument, Reference, media};

use crate::client::{Access, Client, Repo};
use crate::error::{RegistryError, Result};

/// How a referrer was made findable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrerIndex {
    /// The registry's referrers API lists it.
    Api,
    /// The registry has no referrers API: the fallback tag lists it.
    FallbackTag,
}

/// The fallback tag of `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}

impl Client {
    /// Push the referrer `referrer` (a manifest in `store` whose `subject` is
    /// `subject`, an image of `target`'s repository) by digest, and make it findable:
    /// through the referrers API when the registry answers it, else by adding it to
    /// the index under the subject's fallback tag (what that index lists is kept).
    pub async fn push_referrer(
        &self,
        store: &Store,
        referrer: &Descriptor,
        subject: &Digest,
        target: &Reference,
    ) -> Result<ReferrerIndex> {
        let at = target.with_digest(referrer.digest.clone());
        self.push(store, referrer, &at, None).await?;
        let repo = self.repo(target);
        if self.referrers_api(&repo, subject).await?.is_some() {
            return Ok(ReferrerIndex::Api);
        }
        let tag = fallback_tag(subject);
        let mut entries = self.fallback_entries(target, subject).await?;
        let mut entry = referrer.clone();
        entry.platform = None;
        if !entries.iter().any(|e| e.digest == entry.digest) {
            entries.push(entry);
        }
        let index = RawDocument::from_value(ImageIndex {
            media_type: Some(media::OCI_INDEX.to_owned()),
            manifests: entries,
            ..ImageIndex::new()
        });
        self.put_manifest(&repo, &tag, media::OCI_INDEX, index.bytes())
            .await?;
        Ok(ReferrerIndex::FallbackTag)
    }

    /// The referrers of `subject` in `target`'s repository: the referrers API's
    /// answer, else the fallback tag's index (none when neither exists).
    pub async fn referrers(&self, target: &Reference, subject: &Digest) -> Result<Vec<Descriptor>> {
        let repo = self.repo(target);
        match self.referrers_api(&repo, subject).await? {
            Some(list) => Ok(list),
            None => self.fallback_entries(target, subject).await,
        }
    }

    /// The referrers API's list, or `None` when the registry does not have the API
    /// (it answers 404).
    async fn referrers_api(
        &self,
        repo: &Repo,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>> {
        let url = repo
            .base
            .join(&format!("referrers/{subject}"))
            .expect("valid path");
        let resp = match self
            .send(repo, Access::Pull, None, |http| {
                http.get(url.clone()).header("Accept", media::OCI_INDEX)
            })
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Protocol {
            url: crate::error::redact(&url),
            reason: format!("reading the referrers list: {e}"),
        })?;
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                url: crate::error::redact(&url),
                reason: format!("the referrers list is not an OCI index: {e}"),
            })?;
        Ok(Some(index.manifests))
    }

    /// What the subject's fallback tag lists (nothing when there is no such tag).
    async fn fallback_entries(
        &self,
        target: &Reference,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>> {
        let tagged =
            target
                .with_tag(&fallback_tag(subject))
                .map_err(|e| RegistryError::Protocol {
                    url: target.to_string(),
                    reason: format!("fallback tag: {e}"),
                })?;
        match self.get_manifest(&tagged).await {
            Ok(f) => match f.document {
                oci::document::ManifestOrIndex::Index(i) => Ok(i.value().manifests.clone()),
                oci::document::ManifestOrIndex::Manifest(_) => Err(RegistryError::Protocol {
                    url: tagged.to_string(),
                    reason: "the referrers fallback tag holds a manifest, not an index".into(),
                }),
            },
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
