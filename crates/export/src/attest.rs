//! Attestation manifests in BuildKit's layout, so the tools that read buildx's read
//! manifold's: per image manifest, one OCI manifest whose layers are in-toto
//! statements (`application/vnd.in-toto+json`, each annotated with its predicate
//! type), listed in the index with platform `unknown/unknown` and annotations that
//! name the image manifest it is about.

use std::collections::BTreeMap;

use content::{Lease, Store};
use oci::document::{ContainerConfig, ImageConfig, ImageManifest, RootFs};
use oci::{Descriptor, Digest, Platform, RawDocument, media};

use crate::error::Result;

/// The media type of an in-toto statement layer.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The annotation of a statement layer naming its predicate type.
pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// The index annotation naming the image manifest an attestation manifest is about.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The index annotation saying what the manifest is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// [`REFERENCE_TYPE`]'s value for an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// One in-toto statement, serialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub predicate_type: String,
    pub bytes: Vec<u8>,
}

/// Whether an index entry is an attestation manifest rather than an image.
pub fn is_attestation(d: &Descriptor) -> bool {
    d.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some(ATTESTATION_MANIFEST)
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// Store the attestation manifest of `statements` about the image manifest
/// `subject`; returns its descriptor as the index lists it. As a `referrer`, it is
/// an OCI 1.1 artifact instead (artifact type [`IN_TOTO`], the empty config, and
/// `subject` naming the image), found through the referrers API rather than the
/// index, and its descriptor is the one a referrers list gives.
pub fn assemble_attestation_manifest(
    store: &Store,
    lease: &Lease,
    subject: &Descriptor,
    statements: &[Statement],
    referrer: bool,
) -> Result<Descriptor> {
    if referrer {
        return assemble_referrer(store, lease, subject, statements);
    }
    let layers = statement_layers(store, lease, statements)?;
    let diff_ids = layers.iter().map(|l| l.digest.clone()).collect();
    let config = RawDocument::from_value(ImageConfig {
        architecture: "unknown".into(),
        os: "unknown".into(),
        config: Some(ContainerConfig::default()),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..ImageConfig::default()
    });
    let config = store.put_bytes(lease, media::OCI_CONFIG, config.bytes())?;
    let manifest = RawDocument::from_value(ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    });
    let mut d = store.put_bytes(lease, media::OCI_MANIFEST, manifest.bytes())?;
    d.annotations
        .insert(REFERENCE_DIGEST.to_owned(), subject.digest.to_string());
    d.annotations
        .insert(REFERENCE_TYPE.to_owned(), ATTESTATION_MANIFEST.to_owned());
    d.platform = Some(Platform::new("unknown", "unknown", None));
    Ok(d)
}

fn statement_layers(
    store: &Store,
    lease: &Lease,
    statements: &[Statement],
) -> Result<Vec<Descriptor>> {
    let mut layers = Vec::new();
    for s in statements {
        let mut d = store.put_bytes(lease, IN_TOTO, &s.bytes)?;
        d.annotations
            .insert(PREDICATE_TYPE.to_owned(), s.predicate_type.clone());
        layers.push(d);
    }
    Ok(layers)
}

fn assemble_referrer(
    store: &Store,
    lease: &Lease,
    subject: &Descriptor,
    statements: &[Statement],
) -> Result<Descriptor> {
    let layers = statement_layers(store, lease, statements)?;
    let mut config = store.put_bytes(lease, media::OCI_EMPTY, b"{}")?;
    config.data = Some("e30=".to_owned());
    let mut about = Descriptor::new(&subject.media_type, subject.digest.clone(), subject.size);
    about.platform = None;
    let manifest = RawDocument::from_value(ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_owned()),
        artifact_type: Some(IN_TOTO.to_owned()),
        config,
        layers,
        subject: Some(about),
        annotations: BTreeMap::new(),
    });
    let mut d = store.put_bytes(lease, media::OCI_MANIFEST, manifest.bytes())?;
    d.artifact_type = Some(IN_TOTO.to_owned());
    Ok(d)
}

/// The statements of the attestation manifest `desc` (layers of [`IN_TOTO`]).
pub fn read_statements(store: &Store, desc: &Descriptor) -> Result<Vec<(Digest, Statement)>> {
    let m = crate::image::read_manifest(store, desc)?;
    let mut out = Vec::new();
    for l in &m.value().layers {
        if l.media_type != IN_TOTO {
            continue;
        }
        let bytes = store.read_document(&l.digest)?;
        out.push((
            l.digest.clone(),
            Statement {
                predicate_type: l
                    .annotations
                    .get(PREDICATE_TYPE)
                    .cloned()
                    .unwrap_or_default(),
                bytes,
            },
        ));
    }
    Ok(out)
}
