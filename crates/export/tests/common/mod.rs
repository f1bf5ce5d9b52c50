//! Hand-made change lists and images for the export tests (no container needed).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use archive::{Change, ContentSource, Entry, EntryKind, Metadata};
use content::{Lease, Store};
use export::{Compression, ImageOptions, LayerDesc, LayerOptions};
use oci::document::{ContainerConfig, History, RootFs};
use oci::{Descriptor, ImageConfig, Platform};

/// `SOURCE_DATE_EPOCH` of the reproducibility tests: 2023-11-14T22:13:20Z.
pub const EPOCH: i64 = 1_700_000_000;

pub fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("root")).unwrap();
    (d, s)
}

fn meta(mode: u32, mtime: i64) -> Metadata {
    Metadata {
        mode,
        mtime,
        ..Metadata::default()
    }
}

pub fn dir(path: &str) -> Change {
    Change::Add(Entry {
        path: PathBuf::from(path),
        kind: EntryKind::Dir,
        meta: meta(0o755, 1_800_000_000),
    })
}

pub fn file(path: &str, content: &[u8]) -> Change {
    Change::Add(Entry {
        path: PathBuf::from(path),
        kind: EntryKind::File {
            size: content.len() as u64,
            content: ContentSource::Bytes(Arc::from(content)),
        },
        // Later than EPOCH: SOURCE_DATE_EPOCH clamps it.
        meta: meta(0o644, 1_800_000_000),
    })
}

/// Two steps' worth of changes for `platform`: an app directory, then a config file.
pub fn steps(platform: &str) -> Vec<Vec<Change>> {
    vec![
        vec![
            dir("app"),
            file("app/hello", format!("hello from {platform}\n").as_bytes()),
            file("app/data.bin", &vec![7u8; 64 * 1024]),
        ],
        vec![
            dir("etc"),
            file("etc/app.conf", b"answer = 42\n"),
            Change::Delete(PathBuf::from("tmp/old")),
        ],
    ]
}

pub fn layer_opts(compression: Compression, oci: bool) -> LayerOptions {
    LayerOptions {
        compression,
        source_date_epoch: Some(EPOCH),
        oci_mediatypes: oci,
        use_cache: true,
    }
}

pub fn image_opts(oci: bool) -> ImageOptions {
    ImageOptions {
        oci_mediatypes: oci,
        source_date_epoch: Some(EPOCH),
        ..ImageOptions::default()
    }
}

/// A config as the frontend hands it over: one history entry per step (plus a
/// metadata-only `CMD`), rootfs still empty.
pub fn config(platform: &Platform, steps: usize) -> ImageConfig {
    let mut history: Vec<History> = (0..steps)
        .map(|i| History {
            created_by: Some(format!("RUN step {i}")),
            created: Some("2030-01-01T00:00:00Z".into()),
            ..History::default()
        })
        .collect();
    history.push(History {
        created_by: Some("CMD [\"/app/hello\"]".into()),
        empty_layer: true,
        ..History::default()
    });
    ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(ContainerConfig {
            cmd: Some(vec!["/app/hello".into()]),
            env: Some(vec!["PATH=/usr/bin:/bin".into()]),
            ..ContainerConfig::default()
        }),
        rootfs: RootFs::default(),
        history,
        ..ImageConfig::default()
    }
}

pub fn export_steps(
    store: &Store,
    lease: &Lease,
    platform: &str,
    opts: &LayerOptions,
) -> Vec<Option<LayerDesc>> {
    steps(platform)
        .into_iter()
        .map(|c| export::export_layer(store, lease, c, opts).unwrap())
        .collect()
}

/// One image for `platform` built from [`steps`].
pub fn build_image(
    store: &Store,
    lease: &Lease,
    platform: &str,
    compression: Compression,
    oci: bool,
) -> Descriptor {
    let layers = export_steps(store, lease, platform, &layer_opts(compression, oci));
    let p = Platform::parse(platform).unwrap();
    export::assemble_image(
        store,
        lease,
        None,
        &layers,
        config(&p, layers.len()),
        &image_opts(oci),
    )
    .unwrap()
}

/// An index of one image per platform.
pub fn build_index(store: &Store, lease: &Lease, platforms: &[&str], oci: bool) -> Descriptor {
    let manifests = platforms
        .iter()
        .map(|p| build_image(store, lease, p, Compression::GZIP, oci))
        .collect();
    export::assemble_index(store, lease, manifests, Default::default()).unwrap()
}

pub fn assert_valid(store: &Store, desc: &Descriptor) {
    let problems = export::validate(store, desc);
    assert!(
        problems.is_empty(),
        "{}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
