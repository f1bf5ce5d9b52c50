//! The validator catches broken images; each breakage is its own test.

mod common;

use common::*;
use export::{Compression, Problem, validate};
use oci::{Descriptor, ImageConfig, ImageManifest, Platform, RawDocument, media};

fn manifest(store: &content::Store, d: &Descriptor) -> ImageManifest {
    RawDocument::<ImageManifest>::parse(store.read_document(&d.digest).unwrap())
        .unwrap()
        .value()
        .clone()
}

/// Store a manifest by hand (bypassing assemble_image and its checks).
fn put_image(
    store: &content::Store,
    lease: &content::Lease,
    config: ImageConfig,
    layers: Vec<Descriptor>,
) -> Descriptor {
    let config = RawDocument::from_value(config);
    let config = store
        .put_bytes(lease, media::OCI_CONFIG, config.bytes())
        .unwrap();
    let m = RawDocument::from_value(ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: Default::default(),
    });
    store
        .put_bytes(lease, media::OCI_MANIFEST, m.bytes())
        .unwrap()
}

fn one_problem(store: &content::Store, desc: &Descriptor) -> Problem {
    let mut p = validate(store, desc);
    assert_eq!(p.len(), 1, "{p:#?}");
    p.remove(0)
}

#[test]
fn a_missing_layer_blob_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_image(&store, &lease, "linux/amd64", Compression::GZIP, true);
    let layer = manifest(&store, &desc).layers[1].clone();
    std::fs::remove_file(store.blob_path(&layer.digest)).unwrap();
    let p = one_problem(&store, &desc);
    assert_eq!(
        p,
        Problem::MissingBlob {
            what: "layer",
            digest: layer.digest
        }
    );
}

#[test]
fn a_missing_config_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_image(&store, &lease, "linux/amd64", Compression::GZIP, true);
    let config = manifest(&store, &desc).config;
    std::fs::remove_file(store.blob_path(&config.digest)).unwrap();
    assert!(matches!(
        one_problem(&store, &desc),
        Problem::MissingBlob { what: "config", .. }
    ));
}

#[test]
fn a_corrupted_layer_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_image(
        &store,
        &lease,
        "linux/amd64",
        Compression::Uncompressed,
        true,
    );
    let layer = manifest(&store, &desc).layers[0].clone();
    let path = store.blob_path(&layer.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 5000] ^= 0xff; // inside the file data, not a header
    std::fs::write(&path, &bytes).unwrap();
    let problems = validate(&store, &desc);
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::DigestMismatch { what: "layer", .. })),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::DiffIdMismatch { .. })),
        "{problems:#?}"
    );
}

#[test]
fn a_wrong_diff_id_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let mut layers = export_steps(&store, &lease, "x", &layer_opts(Compression::GZIP, true));
    let (a, b) = (layers[0].clone().unwrap(), layers[1].clone().unwrap());
    layers[0].as_mut().unwrap().diff_id = b.diff_id.clone();
    let p = Platform::parse("linux/amd64").unwrap();
    let desc = export::assemble_image(
        &store,
        &lease,
        None,
        &layers,
        config(&p, 2),
        &image_opts(true),
    )
    .unwrap();
    assert_eq!(
        one_problem(&store, &desc),
        Problem::DiffIdMismatch {
            layer: a.descriptor.digest,
            expected: b.diff_id,
            actual: a.diff_id,
        }
    );
}

#[test]
fn a_history_that_does_not_match_the_layers_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let layers = export_steps(&store, &lease, "x", &layer_opts(Compression::GZIP, true));
    let p = Platform::parse("linux/amd64").unwrap();
    let mut cfg = config(&p, 3); // three steps that add a layer, two layers
    cfg.rootfs.diff_ids = layers.iter().flatten().map(|l| l.diff_id.clone()).collect();
    let descs = layers
        .iter()
        .flatten()
        .map(|l| l.descriptor.clone())
        .collect();
    let desc = put_image(&store, &lease, cfg, descs);
    assert!(matches!(
        one_problem(&store, &desc),
        Problem::HistoryMismatch {
            history: 3,
            layers: 2,
            ..
        }
    ));
}

#[test]
fn a_diff_id_count_that_does_not_match_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let layers = export_steps(&store, &lease, "x", &layer_opts(Compression::GZIP, true));
    let p = Platform::parse("linux/amd64").unwrap();
    let mut cfg = config(&p, 2);
    cfg.rootfs.diff_ids = vec![layers[0].as_ref().unwrap().diff_id.clone()];
    let descs = layers
        .iter()
        .flatten()
        .map(|l| l.descriptor.clone())
        .collect();
    let desc = put_image(&store, &lease, cfg, descs);
    assert!(matches!(
        one_problem(&store, &desc),
        Problem::DiffIdCount {
            layers: 2,
            diff_ids: 1,
            ..
        }
    ));
}

#[test]
fn a_layer_with_a_path_twice_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for content in [&b"one"[..], b"two"] {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "./etc/file", content).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let layer = export::export_tar(
        &store,
        &lease,
        &tar[..],
        &layer_opts(Compression::GZIP, true),
    )
    .unwrap();
    let p = Platform::parse("linux/amd64").unwrap();
    let desc = export::assemble_image(
        &store,
        &lease,
        None,
        &[Some(layer.clone())],
        config(&p, 1),
        &image_opts(true),
    )
    .unwrap();
    assert_eq!(
        one_problem(&store, &desc),
        Problem::DuplicatePath {
            layer: layer.descriptor.digest,
            path: "etc/file".into()
        }
    );
}

#[test]
fn mixed_media_types_are_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let layers = export_steps(&store, &lease, "x", &layer_opts(Compression::GZIP, false));
    let p = Platform::parse("linux/amd64").unwrap();
    let mut cfg = config(&p, 2);
    cfg.rootfs.diff_ids = layers.iter().flatten().map(|l| l.diff_id.clone()).collect();
    // Docker layers in an OCI manifest.
    let descs = layers
        .iter()
        .flatten()
        .map(|l| l.descriptor.clone())
        .collect();
    let desc = put_image(&store, &lease, cfg, descs);
    let problems = validate(&store, &desc);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems.iter().all(|p| matches!(
        p,
        Problem::MixedMediaTypes {
            what: "layer",
            family: "oci",
            ..
        }
    )));
}

#[test]
fn an_index_entry_with_the_wrong_platform_or_none_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let mut amd = build_image(&store, &lease, "linux/amd64", Compression::GZIP, true);
    amd.platform = Some(Platform::parse("linux/arm64").unwrap());
    let idx =
        export::assemble_index(&store, &lease, vec![amd.clone()], Default::default()).unwrap();
    assert_eq!(
        one_problem(&store, &idx),
        Problem::PlatformMismatch {
            manifest: amd.digest.clone(),
            index: "linux/arm64".into(),
            config: "linux/amd64".into(),
        }
    );
    // An index made by hand without platforms.
    amd.platform = None;
    let bare = RawDocument::from_value(oci::ImageIndex {
        manifests: vec![amd.clone()],
        ..oci::ImageIndex::new()
    });
    let bare = store
        .put_bytes(&lease, media::OCI_INDEX, bare.bytes())
        .unwrap();
    assert_eq!(
        one_problem(&store, &bare),
        Problem::MissingPlatform {
            manifest: amd.digest
        }
    );
}

#[test]
fn a_descriptor_with_the_wrong_size_is_reported() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let layers = export_steps(&store, &lease, "x", &layer_opts(Compression::GZIP, true));
    let p = Platform::parse("linux/amd64").unwrap();
    let mut cfg = config(&p, 2);
    cfg.rootfs.diff_ids = layers.iter().flatten().map(|l| l.diff_id.clone()).collect();
    let mut descs: Vec<Descriptor> = layers
        .iter()
        .flatten()
        .map(|l| l.descriptor.clone())
        .collect();
    descs[1].size += 1;
    let desc = put_image(&store, &lease, cfg, descs.clone());
    assert_eq!(
        one_problem(&store, &desc),
        Problem::SizeMismatch {
            what: "layer",
            digest: descs[1].digest.clone(),
            expected: descs[1].size,
            actual: descs[1].size - 1,
        }
    );
}
