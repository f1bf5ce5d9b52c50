//! Fixtures for manifold's tests. Only ever a dev-dependency.

pub mod base;
pub mod binfmt;
pub mod daemon;
pub mod docker;
pub mod golden;
pub mod http;
pub mod registry;
pub mod rootless;
pub mod token;

use oci::document::{ContainerConfig, History, RootFs};
use oci::{
    Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform, RawDocument, media,
};

use content::{Lease, Store};

/// An uncompressed layer tar holding one file `path` with `content`, built with fixed
/// metadata so the same inputs give the same bytes.
pub fn layer_tar(path: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, content)
        .expect("writing to a Vec cannot fail");
    b.into_inner().expect("writing to a Vec cannot fail")
}

/// A single-platform image (one layer with `/hello` saying `greeting`) written to the
/// store under `lease`; returns the manifest descriptor (with its platform).
pub fn write_image(
    store: &Store,
    lease: &Lease,
    platform: &Platform,
    greeting: &str,
) -> Descriptor {
    let container = ContainerConfig {
        cmd: Some(vec!["/hello".into()]),
        ..ContainerConfig::default()
    };
    let layer = layer_tar("hello", greeting.as_bytes());
    single_layer_image(store, lease, platform, &layer, container, "test fixture")
}

/// An image of one uncompressed `layer` for `platform` with `container` settings,
/// written to the store under `lease`; returns the manifest descriptor (with its
/// platform).
pub fn single_layer_image(
    store: &Store,
    lease: &Lease,
    platform: &Platform,
    layer: &[u8],
    container: ContainerConfig,
    created_by: &str,
) -> Descriptor {
    let layer_desc = store
        .put_bytes(lease, media::OCI_LAYER_TAR, layer)
        .expect("store layer");
    let config = ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(container),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![Digest::sha256(layer)],
        },
        history: vec![History {
            created_by: Some(created_by.into()),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    let config = RawDocument::from_value(config);
    let config_desc = store
        .put_bytes(lease, media::OCI_CONFIG, config.bytes())
        .expect("store config");
    let manifest = RawDocument::from_value(ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: config_desc,
        layers: vec![layer_desc],
        subject: None,
        annotations: Default::default(),
    });
    let mut desc = store
        .put_bytes(lease, media::OCI_MANIFEST, manifest.bytes())
        .expect("store manifest");
    desc.platform = Some(platform.clone());
    desc
}

/// A multi-platform image: one manifest per platform behind an OCI index.
pub fn write_index(store: &Store, lease: &Lease, platforms: &[&str]) -> Descriptor {
    let manifests = platforms
        .iter()
        .map(|p| {
            let p = Platform::parse(p).expect("fixture platforms are valid");
            write_image(store, lease, &p, &format!("hello from {p}"))
        })
        .collect();
    let index = RawDocument::from_value(ImageIndex {
        manifests,
        ..ImageIndex::new()
    });
    store
        .put_bytes(lease, media::OCI_INDEX, index.bytes())
        .expect("store index")
}

/// A `runc` wrapper script in `dir` that appends a line to `counter` for every
/// `runc run` it passes on (a build's `--runtime`, to count containers started).
pub fn counting_runtime(dir: &std::path::Path, counter: &std::path::Path) -> std::path::PathBuf {
    let runc = require_tool("runc");
    let script = dir.join("counting-runc");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = run ] && echo run >> {}; done\nexec {} \"$@\"\n",
            counter.display(),
            runc.display()
        ),
    )
    .expect("write the runc wrapper");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make the runc wrapper executable");
    script
}

/// Containers a [`counting_runtime`] started so far.
pub fn counted_runs(counter: &std::path::Path) -> usize {
    std::fs::read_to_string(counter)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// `len` deterministic pseudo-random bytes (xorshift from `seed`): a flat byte
/// histogram, so gzip stores them rather than compressing.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Fail loudly when an external tool a test needs is missing (tests never skip).
pub fn require_tool(name: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("this test needs `{name}` on PATH; run scripts/setup.sh (CI installs it)")
        })
}

/// The Python of the virtual environment scripts/setup.sh makes for the validators
/// tests run (`in-toto-attestation`, `spdx-tools`, `jsonschema`, pinned in
/// scripts/python-requirements.txt); fails loudly when it is missing.
pub fn python_validators() -> std::path::PathBuf {
    let p = base::cache_dir().join("venv/bin/python3");
    assert!(
        p.is_file(),
        "this test needs {} with scripts/python-requirements.txt installed; run scripts/setup.sh (CI does)",
        p.display()
    );
    p
}

/// Fail loudly unless the test runs as root with runc on PATH: it runs containers
/// (tests never skip).
pub fn require_root_and_runc() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it runs containers with runc)"
    );
    require_tool("runc");
}
