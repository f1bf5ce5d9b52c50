//! Cache that travels: `--cache-to` writes a build's cache records with the layers
//! of their step snapshots (and the base images they stand on) as one OCI artifact;
//! `--cache-from` reads it back on another state root, where a step is a hit when
//! its full cache key matches, exactly as with the records the root made itself.
//!
//! The artifact (`type=local`: an OCI image layout; `type=registry`: pushed under
//! its reference) is an index over
//! * the cache manifest: `artifactType` [`CACHE_ARTIFACT`], its config the records
//!   document ([`RECORDS_MEDIA_TYPE`]: each record's key and description, and the
//!   layer of every step snapshot they name), its layers those layers;
//! * the base images' manifests, as they are.
//!
//! Import writes the records into the local cache store and remembers each step's
//! layer; from a registry it fetches the documents only, and each layer when a
//! build needs it ([`fetch_missing`]). A step snapshot is made from its layer only when something has to run
//! on it ([`materialize`]); an image export takes the layers as they are. A record
//! is trusted as far as write access to the cache is: a damaged or unknown document
//! is a warning, and the build runs its steps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use content::{Lease, Store};
use export::{LayerDesc, LayerOptions};
use oci::{Descriptor, Digest, ImageIndex, ImageManifest, RawDocument, media};
use serde::{Deserialize, Serialize};
use solver::{CacheRecord, CacheStore};
use worker::snapshot::{Key, Snapshotter};

use crate::error::BuildError;
use crate::refs::FsRef;
use crate::request::{CacheKind, CacheSpec, ExportOptions};

/// The `artifactType` of a cache manifest.
pub const CACHE_ARTIFACT: &str = "application/vnd.manifold.cache.v1";
/// The media type of the records document (the cache manifest's config).
pub const RECORDS_MEDIA_TYPE: &str = "application/vnd.manifold.cache.records.v1+json";
/// The version of the records document this build writes and reads.
const VERSION: u32 = 1;
/// The largest records document read (a build has hundreds of records, not
/// millions).
const MAX_RECORDS_BYTES: u64 = 32 << 20;

/// The records document.
#[derive(Debug, Serialize, Deserialize)]
struct Records {
    version: u32,
    /// How the layers were encoded (what an image export of the same build uses).
    layers_made_with: LayerEncoding,
    records: Vec<CacheRecord>,
    /// Each step snapshot the records name, with its layer (`None`: the step
    /// changed nothing).
    steps: BTreeMap<String, Option<StepLayer>>,
    /// `mounts=true`: the contents of the build's cache mounts, by id and platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<MountLayer>,
}

/// One cache mount's contents as a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MountLayer {
    id: String,
    platform: String,
    layer: StepLayer,
}

/// A cache mount a build used: its id and the platform of the steps that used it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CacheMount {
    pub(crate) id: String,
    pub(crate) platform: oci::Platform,
}

/// The cache mounts the `RUN` steps of `graph` use, each once.
pub(crate) fn cache_mounts_of(graph: &graph::Graph) -> Vec<CacheMount> {
    let mut out = BTreeSet::new();
    for (_, v) in graph.vertices() {
        if let graph::op::Op::Exec(e) = &v.op {
            for m in &e.mounts {
                if let graph::op::MountKind::Cache { id, .. } = &m.kind {
                    out.insert(CacheMount {
                        id: id.clone(),
                        platform: e.platform.clone(),
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The default largest cache mount `mounts=true` exports (`mounts-max-size=`).
pub const MOUNTS_MAX_SIZE: u64 = 1 << 30;

/// The directory of cache mount `id` on `platform` under the state root's
/// `cache-mounts` (ids are hashed: never used as paths; the shared instance).
pub(crate) fn mount_dir(cache_mounts: &Path, id: &str, platform: &str) -> PathBuf {
    cache_mounts.join(Digest::sha256(format!("{id}\n{platform}").as_bytes()).hex())
}

/// Bytes under `dir` (files' lengths; links and directories count nothing).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// The cache mounts `mounts` as layers (`mounts=true`), each at most `max` bytes
/// (larger ones are left out and named in the returned notes).
fn mount_layers(
    store: &Store,
    lease: &Lease,
    cache_mounts: &Path,
    mounts: &[CacheMount],
    lopts: &LayerOptions,
    max: u64,
) -> Result<(Vec<MountLayer>, Vec<String>), BuildError> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    // The empty tree the mounts are diffed against.
    let empty = store.root().join("tmp").join(format!(
        "empty-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&empty).map_err(|e| BuildError::io(&empty, e))?;
    let made = mount_layers_from(store, lease, cache_mounts, mounts, lopts, max, &empty);
    let _ = std::fs::remove_dir(&empty);
    let (layers, skipped) = made?;
    out.extend(layers);
    notes.extend(skipped);
    Ok((out, notes))
}

fn mount_layers_from(
    store: &Store,
    lease: &Lease,
    cache_mounts: &Path,
    mounts: &[CacheMount],
    lopts: &LayerOptions,
    max: u64,
    empty: &Path,
) -> Result<(Vec<MountLayer>, Vec<String>), BuildError> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for m in mounts {
        let platform = m.platform.to_string();
        let dir = mount_dir(cache_mounts, &m.id, &platform);
        if !dir.is_dir() {
            continue;
        }
        let size = tree_size(&dir);
        if size > max {
            notes.push(format!(
                "cache mount {:?} ({platform}) is {size} bytes, over mounts-max-size={max}: left out",
                m.id
            ));
            continue;
        }
        let changes = archive::diff_dirs(empty, &dir)?;
        let Some(l) = export::export_layer_once(store, lease, changes, lopts, None)? else {
            continue;
        };
        out.push(MountLayer {
            id: m.id.clone(),
            platform,
            layer: StepLayer {
                descriptor: l.descriptor,
                diff_id: l.diff_id,
            },
        });
    }
    Ok((out, notes))
}

/// Seed each cache mount of `doc` this root does not have from its layer: unpacked
/// in-root under a temporary name, then renamed into place (a mount that appeared
/// meanwhile wins). Layers left in a registry are fetched first.
fn seed_mounts(
    store: &Store,
    client: Option<&registry::Client>,
    mounts: &[MountLayer],
) -> Result<usize, BuildError> {
    let cache_mounts = store.root().join("cache-mounts");
    let mut seeded = 0;
    for m in mounts {
        let dir = mount_dir(&cache_mounts, &m.id, &m.platform);
        if dir.exists() {
            continue;
        }
        std::fs::create_dir_all(&cache_mounts).map_err(|e| BuildError::io(&cache_mounts, e))?;
        let lease = store.lease()?;
        fetch_missing(
            store,
            client,
            &lease,
            std::slice::from_ref(&m.layer.descriptor),
        )?;
        let tmp = cache_mounts.join(format!(
            ".import-{}-{}",
            m.layer.descriptor.digest.hex(),
            std::process::id()
        ));
        let blob = store.open_blob(&m.layer.descriptor.digest)?;
        let expected = archive::Expected {
            digest: Some(m.layer.descriptor.digest.clone()),
            size: Some(m.layer.descriptor.size),
            diff_id: Some(m.layer.diff_id.clone()),
        };
        archive::apply_into_new_dir(&tmp, |root| {
            archive::apply_blob(
                root,
                blob,
                Some(&m.layer.descriptor.media_type),
                &expected,
                &archive::ApplyOptions::privileged(),
            )
        })?;
        if std::fs::rename(&tmp, &dir).is_err() {
            // Made by a build meanwhile: it wins.
            let _ = archive::Root::open(&tmp)
                .and_then(|r| r.remove_all(&archive::CleanPath::default()));
            let _ = std::fs::remove_dir(&tmp);
        } else {
            seeded += 1;
        }
    }
    Ok(seeded)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LayerEncoding {
    compression: export::Compression,
    source_date_epoch: Option<i64>,
    oci_mediatypes: bool,
}

impl LayerEncoding {
    fn options(&self) -> LayerOptions {
        LayerOptions {
            compression: self.compression,
            source_date_epoch: self.source_date_epoch,
            oci_mediatypes: self.oci_mediatypes,
            use_cache: false,
        }
    }
}

/// A step snapshot's layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StepLayer {
    pub(crate) descriptor: Descriptor,
    pub(crate) diff_id: Digest,
}

/// Where a cache is written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// `type=local`: an OCI layout directory.
    Local(PathBuf),
    /// `type=registry`: a reference in a registry.
    Registry(oci::Reference),
}

impl Place {
    /// Where `spec` (of `--cache-to` when `to`) points: checked by [`check_specs`].
    pub(crate) fn of(spec: &CacheSpec, to: bool) -> Place {
        match spec.kind {
            CacheKind::Local => {
                Place::Local(PathBuf::from(&spec.attrs[if to { "dest" } else { "src" }]))
            }
            _ => Place::Registry(
                oci::Reference::parse(&spec.attrs["ref"])
                    .expect("invariant: checked by check_specs"),
            ),
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Local(d) => write!(f, "{}", d.display()),
            Place::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// Check `--cache-to` and `--cache-from` before anything is built: the types this
/// builder can export and import, and their keys.
pub fn check_specs(to: &[CacheSpec], from: &[CacheSpec]) -> Result<(), BuildError> {
    let bad = |message: String, hint: &str| {
        BuildError::Request(export::output::SpecError::new(message, hint))
    };
    for (flag, specs, exporting) in [("--cache-to", to, true), ("--cache-from", from, false)] {
        for s in specs {
            let ty = s.kind.name();
            let place_key = match (s.kind, exporting) {
                (CacheKind::Local, true) => "dest",
                (CacheKind::Local, false) => "src",
                (CacheKind::Registry, _) => "ref",
                (CacheKind::Gha | CacheKind::S3 | CacheKind::Azblob, _) => {
                    return Err(bad(
                        format!(
                            "{flag} type={ty}: not supported here (it needs its cloud service)"
                        ),
                        &format!("use {flag} type=registry,ref=REGISTRY/REPOSITORY:TAG"),
                    ));
                }
                (CacheKind::Inline, true) => {
                    // In the image's config: nothing to name, min only.
                    for (k, v) in &s.attrs {
                        match (k.as_str(), v.as_str()) {
                            ("mode", "min") => {}
                            ("mode", _) => {
                                return Err(bad(
                                    format!(
                                        "{flag} type=inline,mode={v}: an image carries mode=min only"
                                    ),
                                    "use type=registry,ref=…,mode=max for every step",
                                ));
                            }
                            ("ignore-error", _) => {
                                export::output::parse_bool("ignore-error", v)
                                    .map_err(BuildError::Request)?;
                            }
                            _ => {
                                return Err(bad(
                                    format!("{flag} type=inline does not take {k}="),
                                    &format!("{flag} type=inline takes mode=min"),
                                ));
                            }
                        }
                    }
                    continue;
                }
                (CacheKind::Inline, false) => {
                    return Err(bad(
                        format!("{flag} type=inline: an inline cache is read from its image"),
                        &format!("use {flag} type=registry,ref=IMAGE"),
                    ));
                }
            };
            let Some(place) = s.attrs.get(place_key).filter(|d| !d.is_empty()) else {
                let what = if place_key == "ref" { "REF" } else { "DIR" };
                return Err(bad(
                    format!("{flag} type={ty} needs {place_key}={what}"),
                    &format!("write {flag} type={ty},{place_key}={what}"),
                ));
            };
            if place_key == "ref" {
                oci::Reference::parse(place).map_err(|e| {
                    bad(
                        format!("{flag} ref={place}: {e}"),
                        "write ref=REGISTRY/REPOSITORY:TAG",
                    )
                })?;
            }
            let registry_to = exporting && s.kind == CacheKind::Registry;
            for (k, v) in &s.attrs {
                let boolean = |k: &str| {
                    export::output::parse_bool(k, v)
                        .map(drop)
                        .map_err(BuildError::Request)
                };
                match k.as_str() {
                    _ if k == place_key => {}
                    "mode" if exporting && (v == "min" || v == "max") => {}
                    "mode" if exporting => {
                        return Err(bad(
                            format!("{flag} mode={v}: not min or max"),
                            "write mode=min or mode=max",
                        ));
                    }
                    "ignore-error" => boolean(k)?,
                    "oci-mediatypes" | "image-manifest" | "force-compression" if registry_to => {
                        boolean(k)?;
                    }
                    "mounts" if exporting => boolean(k)?,
                    "mounts-max-size" if exporting => {
                        crate::run_flags::parse_size(&format!("{flag} mounts-max-size"), v)
                            .map_err(BuildError::Request)?;
                    }
                    "compression" if registry_to => {
                        if !matches!(v.as_str(), "gzip" | "zstd" | "uncompressed") {
                            return Err(bad(
                                format!("{flag} compression={v}: unknown"),
                                "compression is gzip, zstd or uncompressed",
                            ));
                        }
                    }
                    "compression-level" if registry_to => {
                        v.parse::<i32>().map_err(|_| {
                            bad(
                                format!("{flag} compression-level={v}: not a number"),
                                "gzip takes 0-9, zstd 1-22",
                            )
                        })?;
                    }
                    _ => {
                        let takes = match (s.kind, exporting) {
                            (CacheKind::Registry, true) => {
                                "ref, mode, ignore-error, mounts, mounts-max-size, compression, \
                                 compression-level, force-compression, oci-mediatypes and \
                                 image-manifest"
                            }
                            (CacheKind::Local, true) => {
                                "dest, mode, ignore-error, mounts and mounts-max-size"
                            }
                            (CacheKind::Local, false) => "src and ignore-error",
                            _ => "ref and ignore-error",
                        };
                        return Err(bad(
                            format!("{flag} type={ty} does not take {k}="),
                            &format!("{flag} type={ty} takes {takes}"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The layer encoding of a cache export: the image's, unless the registry cache
/// sets its own (`compression`, `compression-level`, `oci-mediatypes`).
pub(crate) fn encoding_for(spec: &CacheSpec, image: &ExportOptions) -> ExportOptions {
    use export::Compression;
    let level = spec
        .attrs
        .get("compression-level")
        .and_then(|l| l.parse::<i32>().ok());
    let compression = match spec.attrs.get("compression").map(String::as_str) {
        Some("zstd") => Compression::Zstd {
            level: level.unwrap_or(3),
        },
        Some("uncompressed") => Compression::Uncompressed,
        Some("gzip") => Compression::Gzip {
            level: level.map_or(export::DEFAULT_GZIP_LEVEL, |l| l.clamp(0, 9) as u32),
        },
        _ => image.compression,
    };
    ExportOptions {
        compression,
        oci_mediatypes: spec
            .attrs
            .get("oci-mediatypes")
            .map_or(image.oci_mediatypes, |v| v != "false" && v != "0"),
        ..image.clone()
    }
}

/// Where the layers of imported step snapshots are remembered, by snapshot key.
#[derive(Debug, Clone)]
pub(crate) struct ImportedSteps {
    dir: PathBuf,
}

impl ImportedSteps {
    pub(crate) fn for_store(store: &Store) -> ImportedSteps {
        ImportedSteps {
            dir: store.root().join("cache").join("imported-steps"),
        }
    }

    fn path(&self, step: &str) -> PathBuf {
        self.dir
            .join(Digest::sha256(step.as_bytes()).hex())
            .with_extension("json")
    }

    /// The layer of step snapshot `step`, if imported: `Some(None)` when it made
    /// none.
    pub(crate) fn get(&self, step: &str) -> Option<Option<StepLayer>> {
        let bytes = std::fs::read(self.path(step)).ok()?;
        let (name, layer): (String, Option<StepLayer>) = serde_json::from_slice(&bytes).ok()?;
        (name == step).then_some(layer)
    }

    fn put(&self, step: &str, layer: Option<&StepLayer>) -> Result<(), BuildError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| BuildError::io(&self.dir, e))?;
        let bytes = serde_json::to_vec(&(step, layer)).expect("invariant: a step entry serialises");
        let path = self.path(step);
        content::atomic::write_atomic(&path, &bytes).map_err(|e| BuildError::io(&path, e.source))
    }
}

/// Blobs a registry import left in their registry, by digest: where to fetch each
/// when a build needs it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteBlobs {
    dir: PathBuf,
}

impl RemoteBlobs {
    pub(crate) fn for_store(store: &Store) -> RemoteBlobs {
        RemoteBlobs {
            dir: store.root().join("cache").join("remote-blobs"),
        }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// The repository (`REGISTRY/REPOSITORY`) that holds `digest`.
    pub(crate) fn get(&self, digest: &Digest) -> Option<oci::Reference> {
        let text = std::fs::read_to_string(self.path(digest)).ok()?;
        let (d, repo) = text.split_once('\n')?;
        (d == digest.to_string()).then(|| oci::Reference::parse(repo.trim()).ok())?
    }

    fn put(&self, digest: &Digest, repo: &oci::Reference) -> Result<(), std::io::Error> {
        std::fs::create_dir_all(&self.dir)?;
        let text = format!("{digest}\n{}/{}\n", repo.registry(), repo.repository());
        content::atomic::write_atomic(&self.path(digest), text.as_bytes()).map_err(|e| e.source)
    }
}

/// Fetch the blobs of `descs` the store lacks and a lazy import left in their
/// registry, under `lease`. Runs on a blocking thread of the runtime.
pub(crate) fn fetch_missing(
    store: &Store,
    client: Option<&registry::Client>,
    lease: &Lease,
    descs: &[Descriptor],
) -> Result<(), BuildError> {
    let remote = RemoteBlobs::for_store(store);
    for d in descs {
        if store.contains(&d.digest) {
            continue;
        }
        let Some(repo) = remote.get(&d.digest) else {
            continue;
        };
        let Some(client) = client else {
            return Err(BuildError::Offline {
                reference: format!("{repo}@{}", d.digest),
            });
        };
        let handle = tokio::runtime::Handle::current();
        handle
            .block_on(client.fetch_blob(&client.repo(&repo), d, store, lease))
            .map_err(|e| BuildError::Pull {
                reference: format!("{}/{}@{}", repo.registry(), repo.repository(), d.digest),
                source: Box::new(e),
            })?;
    }
    Ok(())
}

/// The configs and layers of `image` (a manifest, or an index of manifests the store
/// holds).
pub(crate) fn image_blobs(
    store: &Store,
    image: &Descriptor,
) -> Result<Vec<Descriptor>, BuildError> {
    let manifests = export::sink::index_manifests(store, image)?;
    let mut out = Vec::new();
    for m in manifests {
        let bytes = store.read_document(&m.digest)?;
        let doc = RawDocument::<ImageManifest>::parse(bytes).map_err(|e| {
            BuildError::Internal(format!("manifest {} in the store: {e}", m.digest))
        })?;
        out.push(doc.value().config.clone());
        out.extend(
            doc.value()
                .layers
                .iter()
                .filter(|l| l.urls.is_empty())
                .cloned(),
        );
    }
    Ok(out)
}

/// Before `image` is pushed to `target`: the blobs a lazy import left in a registry
/// are fetched, except those the target's registry can mount from the repository
/// that holds them; that repository is returned, to mount from.
pub(crate) fn prepare_push(
    store: &Store,
    client: &registry::Client,
    image: &Descriptor,
    target: &oci::Reference,
) -> Result<Option<String>, BuildError> {
    let remote = RemoteBlobs::for_store(store);
    let mut mount: Option<String> = None;
    let mut fetch = Vec::new();
    for d in image_blobs(store, image)? {
        if store.contains(&d.digest) {
            continue;
        }
        match remote.get(&d.digest) {
            Some(repo)
                if repo.registry() == target.registry()
                    && mount.as_deref().is_none_or(|m| m == repo.repository()) =>
            {
                mount = Some(repo.repository().to_owned());
            }
            _ => fetch.push(d),
        }
    }
    let lease = store.lease()?;
    fetch_missing(store, Some(client), &lease, &fetch)?;
    Ok(mount)
}

/// The layers `fs` is made of that may have been left in a registry: its base
/// image's and its imported steps'.
pub(crate) fn layers_of(store: &Store, fs: &FsRef) -> Vec<Descriptor> {
    let mut out = Vec::new();
    if let Some(base) = &fs.base
        && let Ok(bytes) = store.read_document(&base.digest)
        && let Ok(m) = RawDocument::<ImageManifest>::parse(bytes)
    {
        out.extend(m.value().layers.iter().cloned());
    }
    let imported = ImportedSteps::for_store(store);
    for step in &fs.steps {
        if let Some(Some(l)) = imported.get(step) {
            out.push(l.descriptor.clone());
        }
    }
    out
}

/// The documents of the cache `reference` fetched into `store` (its index, the
/// cache manifest and its records, the base manifests and configs); every layer
/// is left in the registry and remembered in [`RemoteBlobs`]. Returns the index.
pub(crate) async fn fetch_documents(
    store: &Store,
    client: &registry::Client,
    lease: &Lease,
    reference: &oci::Reference,
) -> Result<Descriptor, String> {
    use oci::document::ManifestOrIndex;
    let top = client
        .get_manifest(reference)
        .await
        .map_err(|e| solver::error_chain(&e))?;
    let ManifestOrIndex::Index(index) = &top.document else {
        return Err(format!(
            "{reference} is an image manifest, not a cache index"
        ));
    };
    let repo = client.repo(reference);
    let remote = RemoteBlobs::for_store(store);
    for m in &index.value().manifests {
        let fetched = client
            .get_manifest(&reference.with_digest(m.digest.clone()))
            .await
            .map_err(|e| solver::error_chain(&e))?;
        let ManifestOrIndex::Manifest(man) = &fetched.document else {
            return Err(format!("{} in the cache is not a manifest", m.digest));
        };
        let man = man.value();
        if !store.contains(&man.config.digest) {
            let bytes = client
                .get_blob_bytes(&repo, &man.config)
                .await
                .map_err(|e| solver::error_chain(&e))?;
            store
                .put_bytes(lease, &man.config.media_type, &bytes)
                .map_err(|e| e.to_string())?;
        }
        for l in &man.layers {
            if !store.contains(&l.digest) {
                remote
                    .put(&l.digest, reference)
                    .map_err(|e| e.to_string())?;
            }
        }
        store
            .put_bytes(
                lease,
                &fetched.descriptor.media_type,
                fetched.document.bytes(),
            )
            .map_err(|e| e.to_string())?;
    }
    store
        .put_bytes(lease, &top.descriptor.media_type, top.document.bytes())
        .map_err(|e| e.to_string())
}

/// Whether `fs` exists here, or can be made from imported layers whose blobs the
/// store has or a lazy import left in a registry (`exists` says which snapshots
/// exist).
pub(crate) fn can_materialize(
    store: &Store,
    imported: &ImportedSteps,
    fs: &FsRef,
    exists: impl Fn(&Key) -> bool,
) -> bool {
    if fs.top_key().is_none_or(|k| exists(&k)) {
        return true;
    }
    if fs.base.as_ref().is_some_and(|b| !store.contains(&b.digest)) {
        return false;
    }
    fs.steps.iter().all(|s| {
        Key::new(s.clone()).is_ok_and(|k| exists(&k))
            || match imported.get(s) {
                Some(Some(l)) => {
                    store.contains(&l.descriptor.digest)
                        || RemoteBlobs::for_store(store)
                            .get(&l.descriptor.digest)
                            .is_some()
                }
                Some(None) => true,
                None => false,
            }
    })
}

/// Make the snapshots of `fs` that do not exist here from their imported layers:
/// the base image unpacked, then each missing step's layer applied on its parent.
pub(crate) fn materialize(
    store: &Store,
    snapshotter: &dyn Snapshotter,
    client: Option<&registry::Client>,
    fs: &FsRef,
) -> Result<(), BuildError> {
    let Some(top) = fs.top_key() else {
        return Ok(());
    };
    if snapshotter.get(&top)?.is_some() {
        return Ok(());
    }
    let lease = store.lease()?;
    fetch_missing(store, client, &lease, &layers_of(store, fs))?;
    let imported = ImportedSteps::for_store(store);
    let mut parent = match &fs.base {
        Some(base) => worker::image::unpack(store, snapshotter, base)?.top,
        None => None,
    };
    for step in &fs.steps {
        let key = Key::new(step.clone())?;
        if snapshotter.get(&key)?.is_none() {
            match imported.get(step) {
                Some(Some(l)) => {
                    let mut blob = store.open_blob(&l.descriptor.digest)?;
                    let expected = archive::Expected {
                        digest: Some(l.descriptor.digest.clone()),
                        size: Some(l.descriptor.size),
                        diff_id: Some(l.diff_id.clone()),
                    };
                    snapshotter.apply_layer(
                        parent.as_ref(),
                        &key,
                        &mut blob,
                        Some(&l.descriptor.media_type),
                        &expected,
                    )?;
                }
                Some(None) => {
                    snapshotter.prepare(parent.as_ref())?.commit(&key)?;
                }
                None => {
                    return Err(BuildError::Internal(format!(
                        "step snapshot {step} is neither here nor imported"
                    )));
                }
            }
        }
        parent = Some(key);
    }
    Ok(())
}

/// A step snapshot's layer in the given encoding, under the export's lease.
pub(crate) type StepLayerFn<'a> =
    dyn Fn(&Lease, &str, &LayerOptions) -> Result<Option<LayerDesc>, BuildError> + Sync + 'a;

/// `f` of each item, in order, computed on one thread per core.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len());
    if threads < 2 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return out;
                        };
                        out.push((i, f(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// What a cache export or import did, for progress notes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheReport {
    pub records: usize,
    pub layers: usize,
    /// Cache mounts exported or seeded.
    pub mounts: usize,
    /// What to tell the user (cache mounts left out).
    pub notes: Vec<String>,
}

/// The records of `keys` whose results are filesystems (context reads are made
/// again from the context on the other side), each once, with their results.
pub(crate) fn records_of(
    records: &CacheStore,
    keys: &[Digest],
) -> Result<Vec<(CacheRecord, FsRef)>, BuildError> {
    let mut chosen = Vec::new();
    let mut seen = BTreeSet::new();
    for key in keys {
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(record) = records.get(key)?.found() else {
            continue;
        };
        if let Some(fs) = record
            .value
            .get("fs")
            .and_then(|v| serde_json::from_value::<FsRef>(v.clone()).ok())
        {
            chosen.push((record, fs));
        }
    }
    // By key: the same records make the same document, in any solve order.
    chosen.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    Ok(chosen)
}

/// `--cache-to type=inline`: the records document an image of `fs` carries in its
/// config: the records whose results it is made of (its base and a prefix of its
/// steps), with `layers`, the layers of its steps, in `encoding`.
pub(crate) fn inline_document(
    chosen: &[(CacheRecord, FsRef)],
    fs: &FsRef,
    layers: &[Option<LayerDesc>],
    encoding: &ExportOptions,
) -> serde_json::Value {
    let records = chosen
        .iter()
        .filter(|(_, r)| r.base == fs.base && fs.steps.starts_with(&r.steps))
        .map(|(record, _)| CacheRecord {
            // The image's config is part of its digest: no build times in it.
            created: 0,
            ..record.clone()
        })
        .collect();
    let steps = fs
        .steps
        .iter()
        .zip(layers)
        .map(|(step, l)| {
            let layer = l.as_ref().map(|l| StepLayer {
                descriptor: l.descriptor.clone(),
                diff_id: l.diff_id.clone(),
            });
            (step.clone(), layer)
        })
        .collect();
    let doc = Records {
        version: VERSION,
        layers_made_with: LayerEncoding {
            compression: encoding.compression,
            source_date_epoch: encoding.source_date_epoch,
            oci_mediatypes: encoding.oci_mediatypes,
        },
        records,
        steps,
        mounts: Vec::new(),
    };
    serde_json::to_value(doc).expect("invariant: records serialise")
}

/// Import the inline caches of the image `reference` (each platform's config's
/// records document), lazily: its layers stay in the registry until needed.
pub(crate) async fn import_inline(
    store: &Store,
    records: &CacheStore,
    client: &registry::Client,
    reference: &oci::Reference,
    top: &registry::Fetched,
) -> Result<CacheReport, ImportError> {
    use oci::document::ManifestOrIndex;
    let place = reference.to_string();
    let read = |message: String| ImportError::Read {
        dir: place.clone(),
        message,
    };
    let format = |message: String| ImportError::Format {
        dir: place.clone(),
        message,
    };
    let manifests: Vec<Descriptor> = match &top.document {
        ManifestOrIndex::Index(i) => i
            .value()
            .manifests
            .iter()
            .filter(|m| !export::attest::is_attestation(m))
            .cloned()
            .collect(),
        ManifestOrIndex::Manifest(_) => vec![top.descriptor.clone()],
    };
    let repo = client.repo(reference);
    let remote = RemoteBlobs::for_store(store);
    let mut report = CacheReport::default();
    let mut found = false;
    for m in manifests {
        let fetched = client
            .get_manifest(&reference.with_digest(m.digest.clone()))
            .await
            .map_err(|e| read(solver::error_chain(&e)))?;
        let ManifestOrIndex::Manifest(man) = &fetched.document else {
            continue;
        };
        let man = man.value();
        if man.config.size > MAX_RECORDS_BYTES + (1 << 20) {
            return Err(format(format!(
                "its config is {} bytes (at most {})",
                man.config.size,
                MAX_RECORDS_BYTES + (1 << 20)
            )));
        }
        let bytes = client
            .get_blob_bytes(&repo, &man.config)
            .await
            .map_err(|e| read(solver::error_chain(&e)))?;
        let config: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
        let Some(inline) = config.get("manifold.cache.v1") else {
            continue;
        };
        found = true;
        let doc: Records =
            serde_json::from_value(inline.clone()).map_err(|e| format(e.to_string()))?;
        for l in &man.layers {
            if !store.contains(&l.digest) {
                remote
                    .put(&l.digest, reference)
                    .map_err(|e| read(e.to_string()))?;
            }
        }
        let leave = |_: &Descriptor| Ok(());
        // An image carries no cache mounts: nothing is fetched in here.
        let r = apply_records(store, records, &doc, &man.layers, &leave, (&place, None))?;
        report.records += r.records;
        report.layers += r.layers;
    }
    if !found {
        return Err(format(
            "it is an image without an inline cache (build it with --cache-to type=inline)".into(),
        ));
    }
    Ok(report)
}

impl CacheReport {
    /// `5 record(s), 4 layer(s)[, 1 cache mount(s)]`, for progress.
    pub fn line(&self) -> String {
        let mut s = format!("{} record(s), {} layer(s)", self.records, self.layers);
        if self.mounts > 0 {
            s.push_str(&format!(", {} cache mount(s)", self.mounts));
        }
        s
    }
}

/// A cache assembled in the store, to be written where its spec says.
#[derive(Debug)]
pub(crate) struct Assembled {
    /// The cache index.
    pub(crate) index: Descriptor,
    /// Holds the index and what it references until it is written.
    pub(crate) _lease: Lease,
    pub(crate) report: CacheReport,
}

/// Export the records of `keys` (every vertex the build resolved) to `spec`, with
/// the layers of the step snapshots they name, taken from the layer cache or
/// exported with `encoding` (the image's, so the image's layers are shared).
///
/// `mode=min` and `mode=max` write the same: a cache key names its inputs'
/// results, so the final image's records are reached only through the records of
/// every stage it copies from, and a solve resolves nothing else.
pub(crate) fn assemble(
    store: &Store,
    records: &CacheStore,
    keys: &[Digest],
    encoding: &ExportOptions,
    step_layer: &StepLayerFn<'_>,
    mounts: Option<(&[CacheMount], u64)>,
) -> Result<Assembled, BuildError> {
    let encoding = LayerEncoding {
        compression: encoding.compression,
        source_date_epoch: encoding.source_date_epoch,
        oci_mediatypes: encoding.oci_mediatypes,
    };
    let lopts = encoding.options();
    let lease = store.lease()?;
    let chosen = records_of(records, keys)?;
    let mut bases: Vec<Descriptor> = Vec::new();
    let mut order: Vec<&String> = Vec::new();
    let mut seen = BTreeSet::new();
    for (_, fs) in &chosen {
        if let Some(b) = &fs.base
            && !bases.iter().any(|x| x.digest == b.digest)
        {
            bases.push(b.clone());
        }
        order.extend(fs.steps.iter().filter(|s| seen.insert(*s)));
    }
    // The layers of steps no image exported (mode=max's other stages) are made
    // here: side by side, each step's in its own right.
    let made = in_parallel(&order, |step| step_layer(&lease, step, &lopts));
    let mut steps: BTreeMap<String, Option<StepLayer>> = BTreeMap::new();
    let mut layers: Vec<Descriptor> = Vec::new();
    for (step, layer) in order.into_iter().zip(made) {
        let layer = layer?.map(|l| StepLayer {
            descriptor: l.descriptor,
            diff_id: l.diff_id,
        });
        if let Some(l) = &layer
            && !layers.iter().any(|x| x.digest == l.descriptor.digest)
        {
            layers.push(l.descriptor.clone());
        }
        steps.insert(step.clone(), layer);
    }
    let (mounts, notes) = match mounts {
        Some((list, max)) => mount_layers(
            store,
            &lease,
            &store.root().join("cache-mounts"),
            list,
            &lopts,
            max,
        )?,
        None => (Vec::new(), Vec::new()),
    };
    for m in &mounts {
        if !layers.iter().any(|x| x.digest == m.layer.descriptor.digest) {
            layers.push(m.layer.descriptor.clone());
        }
    }
    let doc = Records {
        version: VERSION,
        layers_made_with: encoding,
        records: chosen.iter().map(|(r, _)| r.clone()).collect(),
        steps,
        mounts,
    };
    let bytes = serde_json::to_vec(&doc).expect("invariant: records serialise");
    let config = store.put_bytes(&lease, RECORDS_MEDIA_TYPE, &bytes)?;
    let manifest = RawDocument::from_value(ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_owned()),
        artifact_type: Some(CACHE_ARTIFACT.to_owned()),
        config,
        layers: layers.clone(),
        subject: None,
        annotations: BTreeMap::new(),
    });
    let mut manifest = store.put_bytes(&lease, media::OCI_MANIFEST, manifest.bytes())?;
    manifest.artifact_type = Some(CACHE_ARTIFACT.to_owned());
    let mut entries = vec![manifest];
    for b in bases {
        store.protect(&lease, &b.digest)?;
        entries.push(b);
    }
    let index = RawDocument::from_value(ImageIndex {
        media_type: Some(media::OCI_INDEX.to_owned()),
        manifests: entries,
        ..ImageIndex::new()
    });
    let index = store.put_bytes(&lease, media::OCI_INDEX, index.bytes())?;
    Ok(Assembled {
        index,
        _lease: lease,
        report: CacheReport {
            records: doc.records.len(),
            layers: layers.len(),
            mounts: doc.mounts.len(),
            notes,
        },
    })
}

/// Why an import was skipped: said as a warning, and the build goes on.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the cache at {dir}: {message}")]
    Read { dir: String, message: String },
    #[error("the cache at {dir} is not a manifold cache: {message}")]
    Format { dir: String, message: String },
}

/// The cache index of the OCI layout `dir` (its `index.json`'s entry), and the
/// layout as a store to import from.
pub(crate) fn open_layout(dir: &Path) -> Result<(Store, Descriptor), ImportError> {
    let place = dir.display().to_string();
    let layout = Store::read_layout(dir).map_err(|e| ImportError::Read {
        dir: place.clone(),
        message: e.to_string(),
    })?;
    let top = layout.index().map_err(|e| ImportError::Read {
        dir: place.clone(),
        message: e.to_string(),
    })?;
    let Some(entry) = top.manifests.first() else {
        return Err(ImportError::Format {
            dir: place,
            message: "its index.json lists nothing".into(),
        });
    };
    Ok((layout.clone(), entry.clone()))
}

/// Import the cache index `entry`, which `layout` holds (an OCI layout, or the
/// store itself after a pull from `place`), into `store` and `records`: bases and
/// step layers copied (each verified), records added, step layers remembered.
pub(crate) fn import(
    store: &Store,
    records: &CacheStore,
    (layout, entry): (&Store, &Descriptor),
    place: &str,
    client: Option<&registry::Client>,
) -> Result<CacheReport, ImportError> {
    let dir = place.to_owned();
    let read = |message: String| ImportError::Read {
        dir: dir.clone(),
        message,
    };
    let format = |message: String| ImportError::Format {
        dir: dir.clone(),
        message,
    };
    if entry.media_type != media::OCI_INDEX {
        return Err(format(format!("its entry is a {}", entry.media_type)));
    }
    let bytes = layout
        .read_document(&entry.digest)
        .map_err(|e| read(e.to_string()))?;
    let index = RawDocument::<ImageIndex>::parse(bytes).map_err(|e| format(e.to_string()))?;
    let index = index.value();
    let Some(cache) = index
        .manifests
        .iter()
        .find(|m| m.artifact_type.as_deref() == Some(CACHE_ARTIFACT))
    else {
        return Err(format(format!("no manifest of type {CACHE_ARTIFACT}")));
    };
    let bytes = layout
        .read_document(&cache.digest)
        .map_err(|e| read(e.to_string()))?;
    let manifest = RawDocument::<ImageManifest>::parse(bytes).map_err(|e| format(e.to_string()))?;
    let manifest = manifest.value();
    if manifest.config.media_type != RECORDS_MEDIA_TYPE {
        return Err(format(format!(
            "its records are a {}",
            manifest.config.media_type
        )));
    }
    if manifest.config.size > MAX_RECORDS_BYTES {
        return Err(format(format!(
            "its records document is {} bytes (at most {MAX_RECORDS_BYTES})",
            manifest.config.size
        )));
    }
    let lease = store.lease().map_err(|e| read(e.to_string()))?;
    let remote = RemoteBlobs::for_store(store);
    let copy = |d: &Descriptor| -> Result<(), ImportError> {
        if store.contains(&d.digest) {
            return Ok(());
        }
        // Left in its registry by a lazy import: fetched when a build needs it.
        if !layout.contains(&d.digest) && remote.get(&d.digest).is_some() {
            return Ok(());
        }
        let mut f = layout
            .open_blob(&d.digest)
            .map_err(|e| read(e.to_string()))?;
        store
            .write_blob(&lease, &mut f, Some(&content::Expected::from(d)))
            .map_err(|e| format(format!("blob {}: {e}", d.digest)))?;
        Ok(())
    };
    copy(&manifest.config)?;
    let bytes = store
        .read_document(&manifest.config.digest)
        .map_err(|e| read(e.to_string()))?;
    let doc: Records = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
    // The bases: every manifest besides the cache's, with its config and layers.
    for m in index.manifests.iter().filter(|m| m.digest != cache.digest) {
        let bytes = layout
            .read_document(&m.digest)
            .map_err(|e| read(e.to_string()))?;
        let image =
            RawDocument::<ImageManifest>::parse(bytes).map_err(|e| format(e.to_string()))?;
        copy(&image.value().config)?;
        for l in &image.value().layers {
            copy(l)?;
        }
        copy(m)?;
    }
    apply_records(
        store,
        records,
        &doc,
        &manifest.layers,
        &copy,
        (place, client),
    )
}

/// Put `doc`'s records into `records` and remember its step layers, each of which
/// must be one of `holds` (the layers of the cache or image it came with); `copy`
/// brings a layer into the store (or leaves it in its registry).
fn apply_records(
    store: &Store,
    records: &CacheStore,
    doc: &Records,
    holds: &[Descriptor],
    copy: &dyn Fn(&Descriptor) -> Result<(), ImportError>,
    (place, client): (&str, Option<&registry::Client>),
) -> Result<CacheReport, ImportError> {
    let read = |message: String| ImportError::Read {
        dir: place.to_owned(),
        message,
    };
    let format = |message: String| ImportError::Format {
        dir: place.to_owned(),
        message,
    };
    if doc.version != VERSION {
        return Err(format(format!(
            "records version {} (this build reads {VERSION})",
            doc.version
        )));
    }
    let imported = ImportedSteps::for_store(store);
    let cache = export::LayerCache::for_store(store);
    let lopts = doc.layers_made_with.options();
    let mut layers = 0;
    for (step, layer) in &doc.steps {
        if Key::new(step.clone()).is_err() {
            return Err(format(format!("step snapshot name {step:?} is not valid")));
        }
        if let Some(l) = layer {
            if !holds.iter().any(|d| d.digest == l.descriptor.digest) {
                return Err(format(format!(
                    "step {step} names layer {} the cache does not hold",
                    l.descriptor.digest
                )));
            }
            copy(&l.descriptor)?;
            layers += 1;
        }
        imported
            .put(step, layer.as_ref())
            .map_err(|e| read(e.to_string()))?;
        let desc = layer.as_ref().map(|l| LayerDesc {
            descriptor: l.descriptor.clone(),
            diff_id: l.diff_id.clone(),
            from_cache: true,
        });
        cache
            .remember_step(step, &lopts, desc.as_ref())
            .map_err(|e| read(e.to_string()))?;
    }
    for m in &doc.mounts {
        if !holds.iter().any(|d| d.digest == m.layer.descriptor.digest) {
            return Err(format(format!(
                "cache mount {:?} names layer {} the cache does not hold",
                m.id, m.layer.descriptor.digest
            )));
        }
        copy(&m.layer.descriptor)?;
    }
    for r in &doc.records {
        if records
            .get(&r.key)
            .map_err(|e| read(e.to_string()))?
            .found()
            .is_none()
        {
            records.put(r).map_err(|e| read(e.to_string()))?;
        }
    }
    let mounts = seed_mounts(store, client, &doc.mounts).map_err(|e| read(e.to_string()))?;
    Ok(CacheReport {
        records: doc.records.len(),
        layers,
        mounts,
        notes: Vec::new(),
    })
}
