//! Operations composed from the client: pull into the store, push from it, copy
//! between registries. Combining manifests into an index is in [`crate::create`].

use std::collections::BTreeSet;

use futures_util::{StreamExt, TryStreamExt};

use content::{Lease, Store};
use oci::document::ManifestOrIndex;
use oci::{Descriptor, Digest, ImageConfig, ImageIndex, Platform, RawDocument, Reference, media};

use crate::client::{Client, Repo};
use crate::error::{RegistryError, Result};
use crate::pull::manifest_target;
use crate::push::BlobPush;

fn not_json(reference: &Reference, what: &str, e: &serde_json::Error) -> RegistryError {
    RegistryError::Protocol {
        url: reference.to_string(),
        reason: format!("{what} is not JSON: {e}"),
    }
}

/// Which manifests of an index to take.
#[derive(Debug, Clone)]
pub enum Platforms {
    /// Every manifest: the index is kept as it is (digest-preserving).
    All,
    /// The best match for a host of this platform.
    Best(Platform),
    /// Exactly these platforms (each must be present).
    Only(Vec<Platform>),
}

/// Counts of what a transfer did, for users and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransferStats {
    pub blobs_uploaded: usize,
    pub blobs_mounted: usize,
    pub blobs_existing: usize,
    pub manifests: usize,
    /// The target already named this very document: nothing was sent (one HEAD).
    pub already_there: bool,
}

impl Client {
    /// What `imagetools inspect --format json` shows of `reference` (`fetched` is its
    /// manifest or index): name, digest, media type, size, the document as JSON, and
    /// each platform's image config (`image`, by platform).
    pub async fn inspect_json(
        &self,
        reference: &Reference,
        fetched: &crate::Fetched,
    ) -> Result<serde_json::Value> {
        let manifest: serde_json::Value = serde_json::from_slice(fetched.document.bytes())
            .map_err(|e| not_json(reference, "the manifest", &e))?;
        let mut images = serde_json::Map::new();
        for (m, config) in self.image_configs(reference, fetched).await? {
            let key = m
                .platform
                .as_ref()
                .map_or_else(|| "image".to_owned(), ToString::to_string);
            images.insert(key, config);
        }
        Ok(serde_json::json!({
            "name": reference.to_string(),
            "digest": fetched.descriptor.digest.to_string(),
            "mediaType": fetched.descriptor.media_type,
            "size": fetched.descriptor.size,
            "manifest": manifest,
            "image": images,
        }))
    }

    /// The image config of each image manifest `fetched` (the manifest or index of
    /// `reference`) is or lists, as JSON, after the manifest's descriptor (for a
    /// manifest, `fetched.descriptor`). Nested indexes are skipped.
    pub async fn image_configs(
        &self,
        reference: &Reference,
        fetched: &crate::Fetched,
    ) -> Result<Vec<(Descriptor, serde_json::Value)>> {
        let repo = self.repo(reference);
        let manifests: Vec<Descriptor> = match &fetched.document {
            ManifestOrIndex::Index(i) => i.value().manifests.clone(),
            ManifestOrIndex::Manifest(_) => vec![fetched.descriptor.clone()],
        };
        let mut out = Vec::new();
        for m in manifests {
            let doc = self
                .get_manifest(&reference.with_digest(m.digest.clone()))
                .await?;
            if let ManifestOrIndex::Manifest(man) = &doc.document {
                let bytes = self.get_blob_bytes(&repo, &man.value().config).await?;
                let config = serde_json::from_slice(&bytes)
                    .map_err(|e| not_json(reference, "an image config", &e))?;
                out.push((m, config));
            }
        }
        Ok(out)
    }

    /// Pull `reference` into `store` under `lease`. Returns the descriptor of what was
    /// stored: the index (with `Platforms::All`) or the chosen manifest.
    pub async fn pull(
        &self,
        store: &Store,
        lease: &Lease,
        reference: &Reference,
        platforms: &Platforms,
    ) -> Result<Descriptor> {
        // The source that serves the top document (a mirror, or the registry) is
        // asked first for the rest of the image.
        let (repo, top) = self
            .fetch_manifest(
                &self.repo(reference),
                &manifest_target(reference),
                reference.digest(),
            )
            .await?;
        match (&top.document, platforms) {
            (ManifestOrIndex::Index(index), Platforms::All) => {
                for m in &index.value().manifests {
                    self.pull_manifest(&repo, store, lease, m).await?;
                }
                store.put_bytes(lease, &top.descriptor.media_type, top.document.bytes())?;
                Ok(top.descriptor)
            }
            (ManifestOrIndex::Index(index), Platforms::Best(p)) => {
                let m = select(reference, index.value(), p)?;
                self.pull_manifest(&repo, store, lease, m).await?;
                Ok(m.clone())
            }
            (ManifestOrIndex::Index(index), Platforms::Only(ps)) => {
                let mut chosen = Vec::new();
                for p in ps {
                    let m = select(reference, index.value(), p)?;
                    self.pull_manifest(&repo, store, lease, m).await?;
                    chosen.push(m.clone());
                }
                let doc = RawDocument::from_value(ImageIndex {
                    manifests: chosen,
                    annotations: index.value().annotations.clone(),
                    ..ImageIndex::new()
                });
                store
                    .put_bytes(lease, media::OCI_INDEX, doc.bytes())
                    .map_err(Into::into)
            }
            (ManifestOrIndex::Manifest(_), _) => {
                let mut desc = top.descriptor.clone();
                self.pull_manifest(&repo, store, lease, &desc).await?;
                desc.platform = self.platform_of(store, &desc);
                Ok(desc)
            }
        }
    }

    /// Store one image manifest and everything it references.
    pub(crate) async fn pull_manifest(
        &self,
        repo: &Repo,
        store: &Store,
        lease: &Lease,
        desc: &Descriptor,
    ) -> Result<()> {
        let fetched = self
            .get_manifest_at(repo, &desc.digest.to_string(), Some(&desc.digest))
            .await?;
        let ManifestOrIndex::Manifest(m) = &fetched.document else {
            return Err(RegistryError::Protocol {
                url: repo.base.to_string(),
                reason: format!(
                    "{} is an index inside an index; nested indexes are not supported",
                    desc.digest
                ),
            });
        };
        // The config first: a broken image is refused before any layer is fetched.
        self.fetch_config(repo, m.value(), store, lease).await?;
        let blobs: Vec<Descriptor> = m
            .value()
            .layers
            .iter()
            .filter(|l| l.urls.is_empty())
            .cloned()
            .collect();
        futures_util::stream::iter(blobs.iter().map(|b| self.fetch_blob(repo, b, store, lease)))
            .buffer_unordered(self.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        store.put_bytes(
            lease,
            &fetched.descriptor.media_type,
            fetched.document.bytes(),
        )?;
        Ok(())
    }

    fn platform_of(&self, store: &Store, manifest: &Descriptor) -> Option<Platform> {
        let bytes = store.read_document(&manifest.digest).ok()?;
        let m = RawDocument::<oci::ImageManifest>::parse(bytes).ok()?;
        let cfg = store.read_document(&m.value().config.digest).ok()?;
        Some(
            RawDocument::<ImageConfig>::parse(cfg)
                .ok()?
                .value()
                .platform(),
        )
    }

    /// Push what `desc` names in `store` to `target`: blobs first (bounded
    /// concurrency, mounted from `mount_from` when given), then manifests by digest,
    /// then the top document under the target's tag (or digest).
    pub async fn push(
        &self,
        store: &Store,
        desc: &Descriptor,
        target: &Reference,
        mount_from: Option<&str>,
    ) -> Result<TransferStats> {
        self.push_known(store, desc, target, mount_from, &BTreeSet::new())
            .await
    }

    /// [`Client::push`], taking the blobs in `present` as there already (this
    /// client uploaded them to the target's repository moments ago): they are
    /// counted as existing without asking.
    pub async fn push_known(
        &self,
        store: &Store,
        desc: &Descriptor,
        target: &Reference,
        mount_from: Option<&str>,
        present: &BTreeSet<Digest>,
    ) -> Result<TransferStats> {
        let repo = self.repo(target);
        let mut stats = TransferStats::default();
        let tag = target
            .digest()
            .map(ToString::to_string)
            .or_else(|| target.tag().map(str::to_owned))
            .unwrap_or_else(|| desc.digest.to_string());
        // A registry stores a manifest only once everything it names is there (it
        // checks on PUT), so a target that already serves this digest is complete: a
        // no-op rebuild pushes with one HEAD. Any failure to ask means a full push.
        if let Ok(Some(served)) = self.manifest_digest(&repo, &tag).await
            && served == desc.digest
        {
            stats.already_there = true;
            return Ok(stats);
        }
        let bytes = store.read_document(&desc.digest)?;
        let doc = ManifestOrIndex::parse(&desc.media_type, bytes).map_err(|source| {
            RegistryError::Document {
                url: format!("local store {}", desc.digest),
                source,
            }
        })?;
        if let ManifestOrIndex::Index(index) = &doc {
            // Every child's blobs in one pool, each once, then the children's
            // manifests side by side: no child waits for the one before it.
            let children = &index.value().manifests;
            let mut blobs: Vec<Descriptor> = Vec::new();
            let mut seen = BTreeSet::new();
            for m in children {
                for b in blobs_of(store, m)? {
                    if !seen.insert(b.digest.clone()) {
                        continue;
                    }
                    match present.contains(&b.digest) {
                        true => stats.blobs_existing += 1,
                        false => blobs.push(b),
                    }
                }
            }
            self.push_blob_set(store, &repo, &blobs, mount_from, &mut stats)
                .await?;
            content::crash::point("push");
            let repo = &repo;
            futures_util::stream::iter(children.iter().map(|m| async move {
                let bytes = store.read_document(&m.digest)?;
                self.put_manifest(repo, &m.digest.to_string(), &m.media_type, &bytes)
                    .await
            }))
            .buffer_unordered(self.concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await?;
            stats.manifests += children.len();
        } else {
            let (known, blobs): (Vec<_>, Vec<_>) = blobs_of(store, desc)?
                .into_iter()
                .partition(|b| present.contains(&b.digest));
            stats.blobs_existing += known.len();
            self.push_blob_set(store, &repo, &blobs, mount_from, &mut stats)
                .await?;
            content::crash::point("push");
        }
        self.put_manifest(&repo, &tag, doc.media_type(), doc.bytes())
            .await?;
        stats.manifests += 1;
        Ok(stats)
    }

    /// Push image manifest `m` (from `store`) and its blobs to `repo`, by digest.
    pub(crate) async fn push_manifest_tree(
        &self,
        store: &Store,
        repo: &Repo,
        m: &Descriptor,
        mount_from: Option<&str>,
        stats: &mut TransferStats,
    ) -> Result<()> {
        self.push_blobs_of(store, repo, m, mount_from, stats)
            .await?;
        let bytes = store.read_document(&m.digest)?;
        self.put_manifest(repo, &m.digest.to_string(), &m.media_type, &bytes)
            .await?;
        stats.manifests += 1;
        Ok(())
    }

    async fn push_blobs_of(
        &self,
        store: &Store,
        repo: &Repo,
        manifest: &Descriptor,
        mount_from: Option<&str>,
        stats: &mut TransferStats,
    ) -> Result<()> {
        let blobs = blobs_of(store, manifest)?;
        self.push_blob_set(store, repo, &blobs, mount_from, stats)
            .await
    }

    /// Push `blobs` from `store`, [`Client::concurrency`] at a time.
    async fn push_blob_set(
        &self,
        store: &Store,
        repo: &Repo,
        blobs: &[Descriptor],
        mount_from: Option<&str>,
        stats: &mut TransferStats,
    ) -> Result<()> {
        let results: Vec<BlobPush> = futures_util::stream::iter(
            blobs
                .iter()
                .map(|b| self.push_blob(repo, b, store, mount_from)),
        )
        .buffer_unordered(self.concurrency.max(1))
        .try_collect()
        .await?;
        for r in results {
            match r {
                BlobPush::Exists => stats.blobs_existing += 1,
                BlobPush::Mounted => stats.blobs_mounted += 1,
                BlobPush::Uploaded => stats.blobs_uploaded += 1,
            }
        }
        Ok(())
    }

    /// Copy `src` to `dst` through `store`. With `Platforms::All` the index digest is
    /// preserved. Blobs are mounted when both are on one registry.
    pub async fn copy(
        &self,
        store: &Store,
        src: &Reference,
        dst: &Reference,
        platforms: &Platforms,
    ) -> Result<(Descriptor, TransferStats)> {
        let lease = store.lease()?;
        let desc = self.pull(store, &lease, src, platforms).await?;
        let mount = (src.registry() == dst.registry()).then(|| src.repository());
        let stats = self.push(store, &desc, dst, mount).await?;
        Ok((desc, stats))
    }
}

/// The manifest of `manifests` best for `platform`.
fn select<'a>(
    reference: &Reference,
    index: &'a ImageIndex,
    platform: &Platform,
) -> Result<&'a Descriptor> {
    index
        .manifest_for(platform)
        .ok_or_else(|| RegistryError::NoMatchingPlatform {
            reference: reference.to_string(),
            platform: platform.to_string(),
            available: index
                .platforms()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The blobs image manifest `manifest` (in `store`) names: its layers that have no
/// foreign `urls`, then its config.
fn blobs_of(store: &Store, manifest: &Descriptor) -> Result<Vec<Descriptor>> {
    let bytes = store.read_document(&manifest.digest)?;
    let m = RawDocument::<oci::ImageManifest>::parse(bytes).map_err(|source| {
        RegistryError::Document {
            url: format!("local store {}", manifest.digest),
            source,
        }
    })?;
    let mut blobs: Vec<Descriptor> = m
        .value()
        .layers
        .iter()
        .filter(|l| l.urls.is_empty())
        .cloned()
        .collect();
    blobs.push(m.value().config.clone());
    Ok(blobs)
}
