//! `imagetools create`: one index over manifests and indexes already in registries, or
//! a carbon copy of a lone source, as `docker buildx imagetools create` makes them.
//!
//! Sources are references, bare digests and descriptor files ([`SourceSpec`]); a
//! digest or a descriptor names content in the target's repository. In order:
//!
//! 1. with `append`, the target's manifests; then each source's: an index's entries,
//!    or the manifest itself, its platform taken from its descriptor (file) or else
//!    from its image config; an entry met twice is kept once;
//! 2. `platforms` keeps those platforms, and the manifests that refer to a kept one
//!    (attestations: annotation [`REFERENCE_DIGEST`]);
//! 3. the `manifest-descriptor` annotations are set on the entries;
//! 4. one source (no `append`) that comes through unchanged is copied as it is: an
//!    index always, a manifest when `prefer_index` is false. Anything else is a new
//!    index, serialised as a build serialises its index, so the same manifests in the
//!    same order give the same digest as a multi-platform build.
//!
//! Entries from other repositories are copied (mounted when on the same registry)
//! into the target's before the index is pushed.

use std::collections::BTreeMap;
use std::path::Path;

use content::Store;
use oci::document::ManifestOrIndex;
use oci::{
    Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform, RawDocument, Reference,
    media,
};

use crate::client::{Client, Repo};
use crate::error::{RegistryError, Result};
use crate::ops::TransferStats;
use crate::pull::{Fetched, manifest_target};

/// The annotation by which an attestation manifest names the image manifest it is
/// about (BuildKit's).
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// The key of the pushed image's descriptor in a build's `--metadata-file`.
const METADATA_DESCRIPTOR: &str = "containerimage.descriptor";
/// The key of the pushed image's digest in a build's `--metadata-file`.
const METADATA_DIGEST: &str = "containerimage.digest";

/// What a SOURCE argument or a descriptor file names.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Reference(Reference),
    /// In the target's repository.
    Digest(Digest),
    /// In the target's repository; its platform and annotations are kept.
    Descriptor(Descriptor),
}

/// A descriptor file or SOURCE argument that names nothing usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("cannot read descriptor file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("descriptor file {path} is not JSON: {reason}")]
    NotJson { path: String, reason: String },
    #[error("descriptor file {path} holds no descriptor: {reason}")]
    NoDescriptor { path: String, reason: String },
    #[error("descriptor file {path} holds an invalid descriptor: {reason}")]
    BadDescriptor { path: String, reason: String },
    #[error("invalid source {value:?}{}: {reason}", in_file(.path.as_deref()))]
    BadSource {
        value: String,
        path: Option<String>,
        reason: String,
    },
}

fn in_file(path: Option<&str>) -> String {
    path.map(|p| format!(" in descriptor file {p}"))
        .unwrap_or_default()
}

impl SourceError {
    /// The fix, for the CLI's `hint:` line.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SourceError::Read { .. } => None,
            SourceError::BadSource { path: None, .. } => Some(
                "name a source as NAME[:TAG|@DIGEST], or as sha256:… in the first -t's repository",
            ),
            _ => Some(
                "give -f an OCI descriptor (JSON with mediaType, digest and size), the \
                 --metadata-file of a build, a digest or a reference",
            ),
        }
    }
}

impl SourceSpec {
    /// A SOURCE argument: a bare digest (`sha256:…`) or a reference.
    pub fn parse_arg(s: &str) -> Result<SourceSpec, SourceError> {
        parse_text(s.trim(), None)
    }

    /// The source a descriptor file names (see [`SourceSpec::parse_file`]).
    pub fn read_file(path: &Path) -> Result<SourceSpec, SourceError> {
        let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
            path: path.display().to_string(),
            source,
        })?;
        SourceSpec::parse_file(&path.display().to_string(), &bytes)
    }

    /// The source `bytes` (the file `path`) names: a JSON OCI descriptor, a build's
    /// `--metadata-file` document (its `containerimage.descriptor`, else its
    /// `containerimage.digest`), or a digest or reference as text.
    pub fn parse_file(path: &str, bytes: &[u8]) -> Result<SourceSpec, SourceError> {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if !text.starts_with(['{', '[', '"']) {
            return parse_text(text, Some(path));
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SourceError::NotJson {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let no_descriptor = |reason: &str| SourceError::NoDescriptor {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let object = match value {
            serde_json::Value::String(s) => return parse_text(&s, Some(path)),
            serde_json::Value::Object(o) => o,
            _ => return Err(no_descriptor("it is not a JSON object")),
        };
        let descriptor = if let Some(d) = object.get(METADATA_DESCRIPTOR) {
            d.clone()
        } else if object.contains_key("digest") {
            serde_json::Value::Object(object)
        } else if let Some(d) = object.get(METADATA_DIGEST) {
            let d = d.as_str().unwrap_or_default();
            return parse_text(d, Some(path));
        } else {
            return Err(no_descriptor(&format!(
                "no \"digest\", \"{METADATA_DESCRIPTOR}\" or \"{METADATA_DIGEST}\""
            )));
        };
        let d: Descriptor =
            serde_json::from_value(descriptor).map_err(|e| SourceError::BadDescriptor {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(SourceSpec::Descriptor(d))
    }
}

fn parse_text(text: &str, path: Option<&str>) -> Result<SourceSpec, SourceError> {
    let bad = |reason: String| SourceError::BadSource {
        value: text.to_owned(),
        path: path.map(str::to_owned),
        reason,
    };
    if text.is_empty() {
        return Err(bad("it is empty".to_owned()));
    }
    // `sha256:…` alone is a digest; a reference has a name before any `@`.
    let looks_like_digest = text
        .split_once(':')
        .is_some_and(|(alg, _)| matches!(alg, "sha256" | "sha512"));
    if looks_like_digest {
        return Digest::parse(text)
            .map(SourceSpec::Digest)
            .map_err(|e| bad(e.to_string()));
    }
    Reference::parse(text)
        .map(SourceSpec::Reference)
        .map_err(|e| bad(e.to_string()))
}

/// One source of [`Client::create`].
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it is: a repository with a tag or a digest.
    pub reference: Reference,
    /// The descriptor a file gave: its platform and annotations win over what the
    /// registry has.
    pub descriptor: Option<Descriptor>,
    /// The descriptor file that named it, for messages.
    pub file: Option<String>,
    /// Whether the repository is the target's because the source named a digest only.
    in_target: bool,
}

impl Source {
    /// The image or index `reference` names.
    pub fn reference(reference: Reference) -> Source {
        Source {
            reference,
            descriptor: None,
            file: None,
            in_target: false,
        }
    }

    /// What `spec` (read from `file`, if any) names; digests and descriptors are in
    /// `target`'s repository.
    pub fn new(spec: SourceSpec, target: &Reference, file: Option<&Path>) -> Source {
        let file = file.map(|f| f.display().to_string());
        let (reference, descriptor) = match spec {
            SourceSpec::Reference(r) => {
                return Source {
                    file,
                    ..Source::reference(r)
                };
            }
            SourceSpec::Digest(d) => (target.with_digest(d), None),
            SourceSpec::Descriptor(d) => (target.with_digest(d.digest.clone()), Some(d)),
        };
        Source {
            reference,
            descriptor,
            file,
            in_target: true,
        }
    }
}

/// A `manifest-descriptor` annotation: on every entry of the index, or with a
/// platform only on that platform's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorAnnotation {
    pub platform: Option<Platform>,
    pub key: String,
    pub value: String,
}

/// How [`Client::create`] combines its sources.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The target's manifests come first.
    pub append: bool,
    /// Keep only these platforms (and what refers to them); empty keeps everything.
    pub platforms: Vec<Platform>,
    /// Annotations of the index.
    pub index_annotations: BTreeMap<String, String>,
    /// Annotations of the index's entries.
    pub descriptor_annotations: Vec<DescriptorAnnotation>,
    /// With one source that is a manifest and nothing to change: wrap it in an index
    /// (else push the manifest itself).
    pub prefer_index: bool,
    /// Write nothing.
    pub dry_run: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            append: false,
            platforms: Vec::new(),
            index_annotations: BTreeMap::new(),
            descriptor_annotations: Vec::new(),
            prefer_index: true,
            dry_run: false,
        }
    }
}

/// What [`Client::create`] made (and, unless a dry run, pushed).
#[derive(Debug, Clone)]
pub struct Created {
    /// Of the document: its media type, digest and size.
    pub descriptor: Descriptor,
    /// The exact bytes pushed.
    pub bytes: Vec<u8>,
    /// The manifests it lists (for a manifest, itself).
    pub manifests: Vec<Descriptor>,
    /// Whether it is a source's own document, unchanged.
    pub carbon_copy: bool,
}

/// A source as the registry has it.
struct Resolved {
    /// Where it was read from (and the rest of it is read).
    repo: Repo,
    reference: Reference,
    fetched: Fetched,
    /// An index's entries, or the manifest with its platform.
    entries: Vec<Descriptor>,
    index: bool,
}

impl Client {
    /// Combine `sources` into what is pushed as `target` (see the module's
    /// documentation). With `opts.dry_run` nothing is written.
    pub async fn create(
        &self,
        store: &Store,
        sources: &[Source],
        target: &Reference,
        opts: &CreateOptions,
    ) -> Result<Created> {
        let target_repo = self.repo(target);
        let mut resolved = Vec::new();
        if opts.append {
            // The target's index is read from the registry alone: it is about to
            // be replaced there, and a mirror may hold an older one.
            let own = Source::reference(target.clone());
            resolved.push(self.resolve(&own, target_repo.registry_only()).await?);
        }
        for s in sources {
            resolved.push(self.resolve(s, self.repo(&s.reference)).await?);
        }
        let lists: Vec<&[Descriptor]> = resolved.iter().map(|r| r.entries.as_slice()).collect();
        let (from, mut entries) = merge(&lists);
        let kept = select_platforms(&entries, &opts.platforms)?;
        let from: Vec<usize> = kept.iter().map(|&i| from[i]).collect();
        entries = kept.iter().map(|&i| entries[i].clone()).collect();
        annotate(&mut entries, &opts.descriptor_annotations);

        let lone = match resolved.as_slice() {
            [one] if !opts.append => Some(one),
            _ => None,
        };
        let copy = lone.filter(|one| {
            opts.index_annotations.is_empty()
                && entries == as_listed(one)
                && (one.index || !opts.prefer_index)
        });
        let (descriptor, bytes) = match copy {
            Some(one) => (
                one.fetched.descriptor.clone(),
                one.fetched.document.bytes().to_vec(),
            ),
            None => {
                let media_type = index_media_type(&entries, &opts.index_annotations);
                let index = RawDocument::from_value(ImageIndex {
                    media_type: Some(media_type.to_owned()),
                    manifests: entries.clone(),
                    annotations: opts.index_annotations.clone(),
                    ..ImageIndex::new()
                });
                (
                    Descriptor::for_bytes(media_type, index.bytes()),
                    index.bytes().to_vec(),
                )
            }
        };
        let created = Created {
            descriptor,
            bytes,
            manifests: entries,
            carbon_copy: copy.is_some(),
        };
        if opts.dry_run {
            return Ok(created);
        }
        let lease = store.lease()?;
        for (m, &i) in created.manifests.iter().zip(&from) {
            let src = &resolved[i];
            if same_repository(&src.reference, target) {
                continue;
            }
            self.pull_manifest(&src.repo, store, &lease, m).await?;
            let mount =
                (src.reference.registry() == target.registry()).then(|| src.reference.repository());
            self.push_manifest_tree(store, &target_repo, m, mount, &mut TransferStats::default())
                .await?;
        }
        self.put_manifest(
            &target_repo,
            target.tag().unwrap_or("latest"),
            &created.descriptor.media_type,
            &created.bytes,
        )
        .await?;
        Ok(created)
    }

    /// Put `created` (pushed as `first`) under `extra` too: by its bytes in the same
    /// repository, else with the manifests it lists copied from `first`'s.
    pub async fn tag_created(
        &self,
        store: &Store,
        created: &Created,
        first: &Reference,
        extra: &Reference,
    ) -> Result<()> {
        let repo = self.repo(extra);
        if !same_repository(first, extra) {
            let lease = store.lease()?;
            let from = self.repo(first);
            let mount = (first.registry() == extra.registry()).then(|| first.repository());
            for m in &created.manifests {
                self.pull_manifest(&from, store, &lease, m).await?;
                self.push_manifest_tree(store, &repo, m, mount, &mut TransferStats::default())
                    .await?;
            }
        }
        self.put_manifest(
            &repo,
            extra.tag().unwrap_or("latest"),
            &created.descriptor.media_type,
            &created.bytes,
        )
        .await?;
        Ok(())
    }

    /// Combine `sources` (manifests or indexes) into one index pushed as `target`
    /// ([`Client::create`] with `prefer_index`). With `append`, the target's existing
    /// manifests come first. With `dry_run`, nothing is written.
    pub async fn create_index(
        &self,
        store: &Store,
        sources: &[Reference],
        target: &Reference,
        append: bool,
        annotations: BTreeMap<String, String>,
        dry_run: bool,
    ) -> Result<RawDocument<ImageIndex>> {
        let sources: Vec<Source> = sources.iter().cloned().map(Source::reference).collect();
        let opts = CreateOptions {
            append,
            index_annotations: annotations,
            dry_run,
            ..CreateOptions::default()
        };
        let created = self.create(store, &sources, target, &opts).await?;
        RawDocument::parse(created.bytes).map_err(|source| RegistryError::Document {
            url: target.to_string(),
            source,
        })
    }

    /// Fetch `source` from `repo` and list what it holds.
    async fn resolve(&self, source: &Source, repo: Repo) -> Result<Resolved> {
        let r = &source.reference;
        let (repo, fetched) = self
            .fetch_manifest(&repo, &manifest_target(r), r.digest())
            .await
            .map_err(|e| {
                if !e.is_not_found() {
                    return e;
                }
                RegistryError::SourceNotFound {
                    what: match (r.digest(), r.tag()) {
                        (Some(d), _) => d.to_string(),
                        (None, t) => format!("tag {}", t.unwrap_or("latest")),
                    },
                    repository: r.name(),
                    file: source.file.clone(),
                    in_target: source.in_target,
                    source: Box::new(e),
                }
            })?;
        if let Some(given) = &source.descriptor
            && given.size != fetched.descriptor.size
        {
            return Err(RegistryError::DescriptorSize {
                file: source.file.clone(),
                digest: given.digest.clone(),
                repository: r.name(),
                expected: given.size,
                actual: fetched.descriptor.size,
            });
        }
        let (entries, index) = match &fetched.document {
            ManifestOrIndex::Index(i) => (i.value().manifests.clone(), true),
            ManifestOrIndex::Manifest(m) => {
                let mut d = fetched.descriptor.clone();
                if let Some(given) = &source.descriptor {
                    d.platform.clone_from(&given.platform);
                    d.annotations.clone_from(&given.annotations);
                    d.urls.clone_from(&given.urls);
                    d.artifact_type.clone_from(&given.artifact_type);
                }
                if d.platform.is_none() {
                    d.platform = self.config_platform(&repo, r, m.value()).await?;
                }
                (vec![d], false)
            }
        };
        Ok(Resolved {
            repo,
            reference: r.clone(),
            fetched,
            entries,
            index,
        })
    }

    /// The platform the image config of `manifest` declares; `None` for an artifact.
    async fn config_platform(
        &self,
        repo: &Repo,
        reference: &Reference,
        manifest: &ImageManifest,
    ) -> Result<Option<Platform>> {
        let config = &manifest.config;
        if !matches!(
            config.media_type.as_str(),
            media::OCI_CONFIG | media::DOCKER_CONFIG
        ) {
            return Ok(None);
        }
        let bytes = self.get_blob_bytes(repo, config).await?;
        let parsed =
            RawDocument::<ImageConfig>::parse(bytes).map_err(|source| RegistryError::Document {
                url: format!("{}@{}", reference.name(), config.digest),
                source,
            })?;
        Ok(Some(parsed.value().platform()))
    }
}

fn same_repository(a: &Reference, b: &Reference) -> bool {
    a.registry() == b.registry() && a.repository() == b.repository()
}

/// The entries of `lists` in order, each digest once; with the list each came from.
fn merge(lists: &[&[Descriptor]]) -> (Vec<usize>, Vec<Descriptor>) {
    let mut from = Vec::new();
    let mut out: Vec<Descriptor> = Vec::new();
    for (i, list) in lists.iter().enumerate() {
        for d in *list {
            if out.iter().any(|m| m.digest == d.digest) {
                continue;
            }
            from.push(i);
            out.push(d.clone());
        }
    }
    (from, out)
}

/// The entries a lone source gives when nothing changes it: an index's entries, or
/// the manifest (its descriptor carries no annotations of its own).
fn as_listed(one: &Resolved) -> Vec<Descriptor> {
    let mut listed = one.entries.clone();
    if !one.index {
        for d in &mut listed {
            d.annotations.clear();
        }
    }
    listed
}

/// The positions of the entries to keep for `platforms` (all when empty): those of
/// each platform (there must be one), then those that refer to a kept one
/// ([`REFERENCE_DIGEST`]: attestations), in their order.
pub fn select_platforms(entries: &[Descriptor], platforms: &[Platform]) -> Result<Vec<usize>> {
    if platforms.is_empty() {
        return Ok((0..entries.len()).collect());
    }
    let mut keep = vec![false; entries.len()];
    for want in platforms {
        let mut found = false;
        for (i, e) in entries.iter().enumerate() {
            if e.platform.as_ref().is_some_and(|p| want.matches(p)) {
                keep[i] = true;
                found = true;
            }
        }
        if !found {
            let mut available: Vec<String> = Vec::new();
            for p in entries.iter().filter_map(|e| e.platform.as_ref()) {
                let p = p.to_string();
                if p != "unknown/unknown" && !available.contains(&p) {
                    available.push(p);
                }
            }
            return Err(RegistryError::PlatformNotInSources {
                platform: want.to_string(),
                available: if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                },
            });
        }
    }
    let kept: Vec<&Digest> = entries
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(e, _)| &e.digest)
        .collect();
    let refers = |e: &Descriptor| {
        e.annotations
            .get(REFERENCE_DIGEST)
            .and_then(|d| Digest::parse(d).ok())
            .is_some_and(|d| kept.contains(&&d))
    };
    Ok((0..entries.len())
        .filter(|&i| keep[i] || refers(&entries[i]))
        .collect())
}

/// Set `annotations` on the entries they apply to (later ones win).
pub fn annotate(entries: &mut [Descriptor], annotations: &[DescriptorAnnotation]) {
    for a in annotations {
        for e in entries.iter_mut() {
            let applies = match (&a.platform, &e.platform) {
                (None, _) => true,
                (Some(want), Some(p)) => want.matches(p),
                (Some(_), None) => false,
            };
            if applies {
                e.annotations.insert(a.key.clone(), a.value.clone());
            }
        }
    }
}

/// A Docker manifest list over Docker manifests without annotations (it has no
/// room for them); else an OCI index.
fn index_media_type(
    entries: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> &'static str {
    let docker = !entries.is_empty()
        && annotations.is_empty()
        && entries
            .iter()
            .all(|e| e.media_type == media::DOCKER_MANIFEST && e.annotations.is_empty());
    if docker {
        media::DOCKER_MANIFEST_LIST
    } else {
        media::OCI_INDEX
    }
}

impl Client {
    /// The in-toto statements attached to `reference`'s images: the attestation
    /// manifests its index lists (BuildKit's layout), else the in-toto referrers of
    /// each image (OCI 1.1, through the referrers API or its fallback tag). Each as
    /// (the digest of the image it is about, its predicate type, the statement).
    pub async fn attestation_statements(
        &self,
        reference: &Reference,
        fetched: &crate::Fetched,
    ) -> Result<Vec<(Digest, String, serde_json::Value)>> {
        let entries: Vec<Descriptor> = match &fetched.document {
            ManifestOrIndex::Index(index) => index.value().manifests.clone(),
            ManifestOrIndex::Manifest(_) => vec![fetched.descriptor.clone()],
        };
        let mut out = Vec::new();
        for m in &entries {
            let about = m
                .annotations
                .get(REFERENCE_DIGEST)
                .and_then(|d| Digest::parse(d).ok());
            if let (Some(about), Some("attestation-manifest")) = (
                about,
                m.annotations
                    .get("vnd.docker.reference.type")
                    .map(String::as_str),
            ) {
                out.extend(self.statements_of(reference, m, &about).await?);
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        for m in entries.iter().filter(|m| {
            m.platform
                .as_ref()
                .is_none_or(|p| p.os != "unknown" || p.architecture != "unknown")
        }) {
            for r in self.referrers(reference, &m.digest).await? {
                if r.artifact_type.as_deref() == Some("application/vnd.in-toto+json") {
                    out.extend(self.statements_of(reference, &r, &m.digest).await?);
                }
            }
        }
        Ok(out)
    }

    /// The in-toto statements that are layers of the manifest `m`, about `about`.
    async fn statements_of(
        &self,
        reference: &Reference,
        m: &Descriptor,
        about: &Digest,
    ) -> Result<Vec<(Digest, String, serde_json::Value)>> {
        let repo = self.repo(reference);
        let doc = self
            .get_manifest(&reference.with_digest(m.digest.clone()))
            .await?;
        let ManifestOrIndex::Manifest(man) = &doc.document else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for layer in &man.value().layers {
            if layer.media_type != "application/vnd.in-toto+json" {
                continue;
            }
            let bytes = self.get_blob_bytes(&repo, layer).await?;
            let statement: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                crate::error::RegistryError::Protocol {
                    url: reference.to_string(),
                    reason: format!("an in-toto statement is not JSON: {e}"),
                }
            })?;
            let predicate_type = statement["predicateType"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            out.push((about.clone(), predicate_type, statement));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(platform: &str, seed: &str) -> Descriptor {
        let mut d = Descriptor::for_bytes(media::OCI_MANIFEST, seed.as_bytes());
        d.platform = Some(Platform::parse(platform).unwrap());
        d
    }

    /// An attestation manifest for `of`, as BuildKit lists it.
    fn attestation(of: &Descriptor) -> Descriptor {
        let mut d = Descriptor::for_bytes(media::OCI_MANIFEST, of.digest.to_string().as_bytes());
        d.platform = Some(Platform {
            architecture: "unknown".into(),
            os: "unknown".into(),
            os_version: None,
            os_features: Vec::new(),
            variant: None,
        });
        d.annotations
            .insert(REFERENCE_DIGEST.into(), of.digest.to_string());
        d.annotations.insert(
            "vnd.docker.reference.type".into(),
            "attestation-manifest".into(),
        );
        d
    }

    fn platforms(list: &[&str]) -> Vec<Platform> {
        list.iter().map(|p| Platform::parse(p).unwrap()).collect()
    }

    #[test]
    fn a_platform_filter_keeps_the_attestations_of_what_it_keeps() {
        let amd = image("linux/amd64", "a");
        // As a registry may list it: not normalised.
        let mut arm = image("linux/arm64", "b");
        arm.platform.as_mut().unwrap().variant = Some("v8".into());
        let s390x = image("linux/s390x", "c");
        let index = [
            amd.clone(),
            arm.clone(),
            s390x.clone(),
            attestation(&amd),
            attestation(&arm),
            attestation(&s390x),
        ];
        // arm64 and arm64/v8 are one platform; the order is the index's.
        let kept = select_platforms(&index, &platforms(&["linux/s390x", "linux/arm64"])).unwrap();
        assert_eq!(kept, [1, 2, 4, 5]);
        assert_eq!(
            select_platforms(&index, &[]).unwrap(),
            (0..6).collect::<Vec<_>>()
        );
        // amd64 does not bring 386 along, as a host's preference list would.
        let with_386 = [image("linux/386", "d"), amd.clone()];
        assert_eq!(
            select_platforms(&with_386, &platforms(&["linux/amd64"])).unwrap(),
            [1]
        );

        let e = select_platforms(&index, &platforms(&["linux/amd64", "linux/riscv64"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "no source has platform linux/riscv64 (the sources have linux/amd64, \
             linux/arm64/v8, linux/s390x)"
        );
    }

    #[test]
    fn descriptor_annotations_narrow_by_platform() {
        let mut entries = [image("linux/amd64", "a"), image("linux/arm64", "b")];
        annotate(
            &mut entries,
            &[
                DescriptorAnnotation {
                    platform: None,
                    key: "all".into(),
                    value: "1".into(),
                },
                DescriptorAnnotation {
                    platform: Some(Platform::parse("linux/arm64").unwrap()),
                    key: "arm".into(),
                    value: "2".into(),
                },
            ],
        );
        assert_eq!(entries[0].annotations.len(), 1);
        assert_eq!(entries[1].annotations["arm"], "2");
        assert_eq!(entries[1].annotations["all"], "1");
    }

    #[test]
    fn duplicates_are_kept_once_where_first_met() {
        let a = image("linux/amd64", "a");
        let b = image("linux/arm64", "b");
        let second = [b.clone(), a.clone()];
        let (from, merged) = merge(&[std::slice::from_ref(&a), &second]);
        assert_eq!(merged, [a, b]);
        assert_eq!(from, [0, 1]);
    }

    #[test]
    fn docker_manifests_without_annotations_make_a_docker_list() {
        let mut d = image("linux/amd64", "a");
        d.media_type = media::DOCKER_MANIFEST.into();
        let none = BTreeMap::new();
        assert_eq!(
            index_media_type(&[d.clone()], &none),
            media::DOCKER_MANIFEST_LIST
        );
        let mut ann = BTreeMap::new();
        ann.insert("k".to_owned(), "v".to_owned());
        assert_eq!(index_media_type(&[d.clone()], &ann), media::OCI_INDEX);
        assert_eq!(
            index_media_type(&[d, image("linux/arm64", "b")], &none),
            media::OCI_INDEX
        );
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn descriptor_files_parse_in_every_form_buildx_takes() {
        let parse = |text: &str| SourceSpec::parse_file("f.json", text.as_bytes());
        let desc = format!(
            r#"{{"mediaType":"{}","digest":"{DIGEST}","size":42,
                 "platform":{{"os":"linux","architecture":"arm64"}},"annotations":{{"k":"v"}}}}"#,
            media::OCI_MANIFEST
        );
        let SourceSpec::Descriptor(d) = parse(&desc).unwrap() else {
            panic!("a descriptor")
        };
        assert_eq!((d.size, d.annotations["k"].as_str()), (42, "v"));
        assert_eq!(d.platform.unwrap().to_string(), "linux/arm64");

        // A build's --metadata-file: its descriptor, else its digest.
        let meta = format!(
            r#"{{"containerimage.config.digest":"{DIGEST}",
                 "containerimage.descriptor":{{"mediaType":"{}","digest":"{DIGEST}","size":7}},
                 "containerimage.digest":"{DIGEST}","image.name":"r/a@{DIGEST}"}}"#,
            media::OCI_MANIFEST
        );
        assert!(matches!(parse(&meta).unwrap(), SourceSpec::Descriptor(d) if d.size == 7));
        let old = format!(r#"{{"containerimage.digest":"{DIGEST}"}}"#);
        assert!(matches!(parse(&old).unwrap(), SourceSpec::Digest(_)));

        // Text: a digest or a reference.
        assert!(matches!(
            parse(&format!("{DIGEST}\n")).unwrap(),
            SourceSpec::Digest(_)
        ));
        assert!(matches!(
            parse("127.0.0.1:5000/a/b:1").unwrap(),
            SourceSpec::Reference(_)
        ));

        for (text, want) in [
            ("{not json", "descriptor file f.json is not JSON: "),
            (
                r#"{"hello":1}"#,
                "descriptor file f.json holds no descriptor: no \"digest\"",
            ),
            ("[1]", "holds no descriptor: it is not a JSON object"),
            (
                r#"{"digest":"sha256:00"}"#,
                "descriptor file f.json holds an invalid descriptor: ",
            ),
            (
                r#"{"mediaType":"x","digest":"sha256:00","size":1}"#,
                "holds an invalid descriptor",
            ),
            (
                "sha256:beef",
                "invalid source \"sha256:beef\" in descriptor file f.json",
            ),
            (
                "",
                "invalid source \"\" in descriptor file f.json: it is empty",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = SourceSpec::parse_arg("sha256:beef").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid source \"sha256:beef\": "),
            "{e}"
        );
        assert!(matches!(
            SourceSpec::parse_arg(DIGEST).unwrap(),
            SourceSpec::Digest(_)
        ));
    }

    #[test]
    fn digests_and_descriptors_name_the_targets_repository() {
        let target = Reference::parse("127.0.0.1:5000/ci/app:merged").unwrap();
        let digest = Digest::parse(DIGEST).unwrap();
        let s = Source::new(
            SourceSpec::Digest(digest.clone()),
            &target,
            Some(Path::new("m.json")),
        );
        assert_eq!(s.reference.name(), "127.0.0.1:5000/ci/app");
        assert_eq!(s.reference.digest(), Some(&digest));
        assert!(s.in_target);
        assert_eq!(s.file.as_deref(), Some("m.json"));
        let other = Reference::parse("127.0.0.1:5000/other:1").unwrap();
        let s = Source::new(SourceSpec::Reference(other.clone()), &target, None);
        assert_eq!(s.reference, other);
        assert!(!s.in_target);
    }
}
