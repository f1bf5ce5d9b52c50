//! Image configs, manifests and indexes.
//!
//! Every document is serialised once ([`RawDocument::from_value`]) and stored as
//! those bytes; nothing here re-serialises a stored document.

use std::collections::BTreeMap;

use content::{Lease, Store};
use oci::document::{History, RootFs};
use oci::{Descriptor, ImageConfig, ImageIndex, ImageManifest, RawDocument, media};

use crate::error::{ExportError, Result};
use crate::layer::{LayerDesc, convert_layer_media_type};

/// The comment of a history entry the exporter adds for a layer that had none.
pub const ADDED_HISTORY_COMMENT: &str = "manifold.exporter.image.v0";

/// The image a build started from.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// Its manifest (which must be in the store).
    pub manifest: Descriptor,
    /// Its config.
    pub config: ImageConfig,
}

/// Options of [`assemble_image`]. The default is OCI media types, no annotations, no
/// fixed time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    /// OCI media types for manifest, config and layers; else Docker schema 2.
    pub oci_mediatypes: bool,
    /// Manifest-level annotations (OCI only).
    pub annotations: BTreeMap<String, String>,
    /// `SOURCE_DATE_EPOCH`: the config's `created` and that of every history entry
    /// the build added. Takes precedence over `created`.
    pub source_date_epoch: Option<i64>,
    /// An RFC 3339 time for the config's `created` (and history entries the build
    /// added that have none), when no `source_date_epoch` is given.
    pub created: Option<String>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            oci_mediatypes: true,
            annotations: BTreeMap::new(),
            source_date_epoch: None,
            created: None,
        }
    }
}

/// Assemble an image: config and manifest, stored under `lease`. Returns the
/// manifest's descriptor with the config's platform.
///
/// * Layers: the base's (same digests and sizes; the media type is switched to the
///   other family when the base uses it, as BuildKit does), then each present entry
///   of `new_layers`.
/// * `rootfs.diff_ids`: the base config's, then the new layers'.
/// * History: `config.history` holds the base's entries followed by the build's.
///   The last `new_layers.len()` entries that add a layer are the build's steps;
///   the entry of a step whose layer is `None` (it changed nothing) is marked
///   `empty_layer`. When the base's part names fewer layers than the base has, an
///   entry per missing layer is inserted before the build's steps (comment
///   [`ADDED_HISTORY_COMMENT`]). More entries than layers is an error.
pub fn assemble_image(
    store: &Store,
    lease: &Lease,
    base: Option<&BaseImage>,
    new_layers: &[Option<LayerDesc>],
    mut config: ImageConfig,
    opts: &ImageOptions,
) -> Result<Descriptor> {
    if !opts.oci_mediatypes && !opts.annotations.is_empty() {
        return Err(ExportError::AnnotationsNeedOci);
    }
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut base_history = 0;
    if let Some(base) = base {
        let manifest = read_manifest(store, &base.manifest)?;
        let m = manifest.value();
        if m.layers.len() != base.config.rootfs.diff_ids.len() {
            return Err(ExportError::BaseLayers {
                manifest: base.manifest.digest.clone(),
                layers: m.layers.len(),
                diff_ids: base.config.rootfs.diff_ids.len(),
            });
        }
        store.protect(lease, &base.manifest.digest)?;
        for l in &m.layers {
            store.protect(lease, &l.digest)?;
            let mut l = l.clone();
            l.media_type = convert_layer_media_type(&l.media_type, opts.oci_mediatypes);
            layers.push(l);
        }
        diff_ids.extend(base.config.rootfs.diff_ids.iter().cloned());
        base_history = base.config.history.len().min(config.history.len());
    }
    let base_layers = layers.len();
    for l in new_layers.iter().flatten() {
        let mut d = l.descriptor.clone();
        d.media_type = convert_layer_media_type(&d.media_type, opts.oci_mediatypes);
        layers.push(d);
        diff_ids.push(l.diff_id.clone());
    }
    config.history = normalize_history(config.history, base_layers, new_layers)?;
    set_created(&mut config, base_history, opts);
    config.rootfs = RootFs {
        kind: "layers".to_owned(),
        diff_ids,
    };
    let platform = config.platform();
    let (config_type, manifest_type) = if opts.oci_mediatypes {
        (media::OCI_CONFIG, media::OCI_MANIFEST)
    } else {
        (media::DOCKER_CONFIG, media::DOCKER_MANIFEST)
    };
    let config = RawDocument::from_value(config);
    let config_desc = store.put_bytes(lease, config_type, config.bytes())?;
    let manifest = RawDocument::from_value(ImageManifest {
        schema_version: 2,
        media_type: Some(manifest_type.to_owned()),
        artifact_type: None,
        config: config_desc,
        layers,
        subject: None,
        annotations: opts.annotations.clone(),
    });
    let mut desc = store.put_bytes(lease, manifest_type, manifest.bytes())?;
    desc.platform = Some(platform);
    Ok(desc)
}

/// Mark skipped steps `empty_layer` and add entries for base layers without one.
fn normalize_history(
    mut history: Vec<History>,
    base_layers: usize,
    new_layers: &[Option<LayerDesc>],
) -> Result<Vec<History>> {
    let adding: Vec<usize> = (0..history.len())
        .filter(|&i| !history[i].empty_layer)
        .collect();
    let total = base_layers + new_layers.iter().flatten().count();
    if adding.len() < new_layers.len() {
        return Err(ExportError::HistoryMismatch {
            history: adding.len(),
            layers: base_layers + new_layers.len(),
        });
    }
    let steps = &adding[adding.len() - new_layers.len()..];
    for (&i, layer) in steps.iter().zip(new_layers) {
        if layer.is_none() {
            history[i].empty_layer = true;
        }
    }
    let base_part = adding.len() - new_layers.len();
    if base_part > base_layers {
        return Err(ExportError::HistoryMismatch {
            history: base_part + new_layers.iter().flatten().count(),
            layers: total,
        });
    }
    let at = steps.first().copied().unwrap_or(history.len());
    let missing = (0..base_layers - base_part).map(|_| History {
        comment: Some(ADDED_HISTORY_COMMENT.to_owned()),
        ..History::default()
    });
    history.splice(at..at, missing);
    Ok(history)
}

fn set_created(config: &mut ImageConfig, base_history: usize, opts: &ImageOptions) {
    let (time, force) = match (opts.source_date_epoch, &opts.created) {
        (Some(epoch), _) => (rfc3339(epoch), true),
        (None, Some(t)) => (t.clone(), false),
        (None, None) => return,
    };
    for h in config.history.iter_mut().skip(base_history) {
        if force || h.created.is_none() {
            h.created = Some(time.clone());
        }
    }
    config.created = Some(time);
}

pub use oci::rfc3339;

/// Combine image manifests (each with a platform) into an index, stored under
/// `lease`. All OCI manifests give an OCI index; all Docker ones a Docker manifest
/// list (which cannot carry `annotations`). Entries keep the given order.
pub fn assemble_index(
    store: &Store,
    lease: &Lease,
    manifests: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
) -> Result<Descriptor> {
    let docker = manifests
        .first()
        .is_some_and(|m| m.media_type == media::DOCKER_MANIFEST);
    for m in &manifests {
        match media::kind(&m.media_type) {
            media::Kind::Manifest => {}
            media::Kind::Index => {
                return Err(ExportError::NestedIndex {
                    digest: m.digest.clone(),
                });
            }
            _ => {
                return Err(ExportError::NotAnImage {
                    digest: m.digest.clone(),
                    media_type: m.media_type.clone(),
                });
            }
        }
        if (m.media_type == media::DOCKER_MANIFEST) != docker {
            let family = |d: bool| if d { "docker" } else { "oci" };
            return Err(ExportError::MixedMediaTypes {
                digest: m.digest.clone(),
                found: family(!docker),
                expected: family(docker),
            });
        }
        if m.platform.is_none() {
            return Err(ExportError::MissingPlatform {
                digest: m.digest.clone(),
            });
        }
        store.protect(lease, &m.digest)?;
    }
    if docker && !annotations.is_empty() {
        return Err(ExportError::AnnotationsNeedOci);
    }
    let media_type = if docker {
        media::DOCKER_MANIFEST_LIST
    } else {
        media::OCI_INDEX
    };
    let index = RawDocument::from_value(ImageIndex {
        media_type: Some(media_type.to_owned()),
        manifests,
        annotations,
        ..ImageIndex::new()
    });
    Ok(store.put_bytes(lease, media_type, index.bytes())?)
}

/// Name `desc` `name` in the store (its `index.json`).
pub fn tag(store: &Store, name: &str, desc: &Descriptor) -> Result<()> {
    Ok(store.set_name(name, desc)?)
}

pub(crate) fn read_manifest(
    store: &Store,
    desc: &Descriptor,
) -> Result<RawDocument<ImageManifest>> {
    let bytes = store.read_document(&desc.digest)?;
    RawDocument::parse(bytes).map_err(|source| ExportError::Document {
        what: "manifest",
        digest: desc.digest.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str) -> History {
        History {
            created_by: Some(name.to_owned()),
            ..History::default()
        }
    }

    fn layer() -> Option<LayerDesc> {
        Some(LayerDesc {
            descriptor: Descriptor::for_bytes(media::OCI_LAYER_TAR, b"x"),
            diff_id: oci::Digest::sha256(b"x"),
            from_cache: false,
        })
    }

    #[test]
    fn a_skipped_step_is_marked_empty() {
        let h = normalize_history(
            vec![step("base"), step("a"), step("b")],
            1,
            &[layer(), None],
        )
        .unwrap();
        let empty: Vec<bool> = h.iter().map(|h| h.empty_layer).collect();
        assert_eq!(empty, [false, false, true]);
    }

    #[test]
    fn base_layers_without_history_get_entries_before_the_steps() {
        let h = normalize_history(vec![step("a")], 2, &[layer()]).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].comment.as_deref(), Some(ADDED_HISTORY_COMMENT));
        assert_eq!(h[1].comment.as_deref(), Some(ADDED_HISTORY_COMMENT));
        assert_eq!(h[2].created_by.as_deref(), Some("a"));
    }

    #[test]
    fn more_history_than_layers_is_an_error() {
        let e =
            normalize_history(vec![step("x"), step("y"), step("a")], 1, &[layer()]).unwrap_err();
        assert!(
            matches!(
                e,
                ExportError::HistoryMismatch {
                    history: 3,
                    layers: 2
                }
            ),
            "{e}"
        );
        let e = normalize_history(vec![], 0, &[layer()]).unwrap_err();
        assert!(matches!(e, ExportError::HistoryMismatch { .. }), "{e}");
    }
}
