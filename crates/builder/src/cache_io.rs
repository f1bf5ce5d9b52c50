//! Cache that travels: `--cache-to` writes a build's cache records with the layers
//! of their step snapshots (and the base images they stand on) as one OCI artifact;
//! `--cache-from` reads it back on another state root, where a step is a hit when
//! its full cache key matches, exactly as with the records the root made itself.
//!
//! The artifact (`type=local`: an OCI image layout) is an index over
//! * the cache manifest: `artifactType` [`CACHE_ARTIFACT`], its config the records
//!   document ([`RECORDS_MEDIA_TYPE`]: each record's key and description, and the
//!   layer of every step snapshot they name), its layers those layers;
//! * the base images' manifests, as they are.
//!
//! Import writes the records into the local cache store and remembers each step's
//! layer. A step snapshot is made from its layer only when something has to run
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

/// Check `--cache-to` and `--cache-from` before anything is built: the types this
/// builder can export and import, and their keys.
pub fn check_specs(to: &[CacheSpec], from: &[CacheSpec]) -> Result<(), BuildError> {
    let bad = |message: String, hint: &str| {
        BuildError::Request(export::output::SpecError::new(message, hint))
    };
    for (flag, specs, dir_key) in [("--cache-to", to, "dest"), ("--cache-from", from, "src")] {
        for s in specs {
            match s.kind {
                CacheKind::Local => {}
                CacheKind::Gha | CacheKind::S3 | CacheKind::Azblob => {
                    return Err(bad(
                        format!(
                            "{flag} type={}: not supported here (it needs its cloud service)",
                            s.kind.name()
                        ),
                        &format!("use {flag} type=local,{dir_key}=DIR on a directory CI keeps"),
                    ));
                }
                CacheKind::Registry | CacheKind::Inline => {
                    return Err(bad(
                        format!("{flag} type={}: not supported yet", s.kind.name()),
                        &format!("use {flag} type=local,{dir_key}=DIR"),
                    ));
                }
            }
            let Some(dir) = s.attrs.get(dir_key).filter(|d| !d.is_empty()) else {
                return Err(bad(
                    format!("{flag} type=local needs {dir_key}=DIR"),
                    &format!("write {flag} type=local,{dir_key}=DIR"),
                ));
            };
            let _ = dir;
            for (k, v) in &s.attrs {
                match (k.as_str(), flag) {
                    ("dest", "--cache-to") | ("src", "--cache-from") => {}
                    ("mode", "--cache-to") if v == "min" || v == "max" => {}
                    ("mode", "--cache-to") => {
                        return Err(bad(
                            format!("{flag} mode={v}: not min or max"),
                            "write mode=min or mode=max",
                        ));
                    }
                    ("ignore-error", _) => {
                        export::output::parse_bool("ignore-error", v)
                            .map_err(BuildError::Request)?;
                    }
                    _ => {
                        return Err(bad(
                            format!("{flag} type=local does not take {k}="),
                            &format!("{flag} type=local takes {dir_key}, mode and ignore-error"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
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

/// Whether `fs` exists here, or can be made from imported layers whose blobs the
/// store has (`exists` says which snapshots exist).
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
                Some(Some(l)) => store.contains(&l.descriptor.digest),
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
    imported: &ImportedSteps,
    fs: &FsRef,
) -> Result<(), BuildError> {
    let Some(top) = fs.top_key() else {
        return Ok(());
    };
    if snapshotter.get(&top)?.is_some() {
        return Ok(());
    }
    let mut parent = match &fs.base {
        Some(base) => worker::image::unpack(store, snapshotter, base)?.0,
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
    dyn Fn(&Lease, &str, &LayerOptions) -> Result<Option<LayerDesc>, BuildError> + 'a;

/// What a cache export or import did, for progress notes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheReport {
    pub records: usize,
    pub layers: usize,
}

/// Export the records of `keys` (every vertex the build resolved) to `spec`, with
/// the layers of the step snapshots they name, taken from the layer cache or
/// exported with `encoding` (the image's, so the image's layers are shared).
///
/// `mode=min` and `mode=max` write the same: a cache key names its inputs'
/// results, so the final image's records are reached only through the records of
/// every stage it copies from, and a solve resolves nothing else.
pub(crate) fn export(
    store: &Store,
    records: &CacheStore,
    keys: &[Digest],
    encoding: &ExportOptions,
    spec: &CacheSpec,
    step_layer: &StepLayerFn<'_>,
) -> Result<CacheReport, BuildError> {
    let encoding = LayerEncoding {
        compression: encoding.compression,
        source_date_epoch: encoding.source_date_epoch,
        oci_mediatypes: encoding.oci_mediatypes,
    };
    let lopts = encoding.options();
    let lease = store.lease()?;
    let mut chosen = Vec::new();
    let mut seen = BTreeSet::new();
    for key in keys {
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(record) = records.get(key)?.found() else {
            continue;
        };
        let Some(fs) = record
            .value
            .get("fs")
            .and_then(|v| serde_json::from_value::<FsRef>(v.clone()).ok())
        else {
            // Context reads are made again from the context on the other side.
            continue;
        };
        chosen.push((record, fs));
    }
    let mut steps: BTreeMap<String, Option<StepLayer>> = BTreeMap::new();
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut bases: Vec<Descriptor> = Vec::new();
    for (_, fs) in &chosen {
        if let Some(b) = &fs.base
            && !bases.iter().any(|x| x.digest == b.digest)
        {
            bases.push(b.clone());
        }
        for step in &fs.steps {
            if steps.contains_key(step) {
                continue;
            }
            let layer = step_layer(&lease, step, &lopts)?.map(|l| StepLayer {
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
    }
    let doc = Records {
        version: VERSION,
        layers_made_with: encoding,
        records: chosen.iter().map(|(r, _)| r.clone()).collect(),
        steps,
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
    let dir = Path::new(&spec.attrs["dest"]);
    export::rotate_oci_layout(store, &index, dir, "latest")?;
    Ok(CacheReport {
        records: doc.records.len(),
        layers: layers.len(),
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

/// Import the cache `spec` names into `store` and `records`: bases and step
/// layers copied (each verified), records added, step layers remembered.
pub(crate) fn import(
    store: &Store,
    records: &CacheStore,
    spec: &CacheSpec,
) -> Result<CacheReport, ImportError> {
    let dir = spec.attrs["src"].clone();
    let read = |message: String| ImportError::Read {
        dir: dir.clone(),
        message,
    };
    let format = |message: String| ImportError::Format {
        dir: dir.clone(),
        message,
    };
    let layout = Store::read_layout(&dir).map_err(|e| read(e.to_string()))?;
    let top = layout.index().map_err(|e| read(e.to_string()))?;
    let Some(entry) = top.manifests.first() else {
        return Err(format("its index.json lists nothing".into()));
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
    let copy = |d: &Descriptor| -> Result<(), ImportError> {
        if store.contains(&d.digest) {
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
    if doc.version != VERSION {
        return Err(format(format!(
            "records version {} (this build reads {VERSION})",
            doc.version
        )));
    }
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
    let imported = ImportedSteps::for_store(store);
    let cache = export::LayerCache::for_store(store);
    let lopts = doc.layers_made_with.options();
    let mut layers = 0;
    for (step, layer) in &doc.steps {
        if Key::new(step.clone()).is_err() {
            return Err(format(format!("step snapshot name {step:?} is not valid")));
        }
        if let Some(l) = layer {
            if !manifest
                .layers
                .iter()
                .any(|d| d.digest == l.descriptor.digest)
            {
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
    Ok(CacheReport {
        records: doc.records.len(),
        layers,
    })
}
