//! Helpers shared by the fault-injection suites (`faults*.rs`): clients with tiny
//! retry delays, a small valid image, and a static "registry" of paths for
//! `testkit::http::Server`.

#![allow(dead_code)] // each suite uses its own part

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use content::Store;
use oci::{Descriptor, ImageManifest, Platform, RawDocument, Reference};
use registry::{Anonymous, Client, DockerConfig, RegistryConfig, RetryPolicy, Secret};
use testkit::http::{Exchange, Server};

pub const USER: &str = "faultuser";
pub const PASSWORD: &str = "fault-pw";

/// Retries that take milliseconds, not seconds.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(1),
        max: Duration::from_millis(20),
    }
}

pub fn client() -> Client {
    let mut c = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
    c.retry = fast_retries();
    c
}

/// A client holding `USER`/`PASSWORD` for `registry` (as `host:port`).
pub fn client_with_password(registry: &str) -> (tempfile::TempDir, Client) {
    let conf = tempfile::tempdir().unwrap();
    DockerConfig::load(conf.path())
        .unwrap()
        .store(registry, USER, &Secret::new(PASSWORD))
        .unwrap();
    let creds = DockerConfig::load(conf.path()).unwrap();
    let mut c = Client::new(RegistryConfig::default(), Arc::new(creds)).unwrap();
    c.retry = fast_retries();
    (conf, c)
}

/// `Basic` header value for `USER`/`PASSWORD`.
pub fn basic_header() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

/// `reference` (`repo:tag` or `repo@digest`) on `server`.
pub fn at(server: &Server, reference: &str) -> Reference {
    Reference::parse(&format!("{}/{reference}", server.addr())).unwrap()
}

pub fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

/// Files in the store's `blobs/` and `ingest/` directories.
pub fn stored_files(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        store.layout_dir().join("blobs/sha256"),
        store.root().join("ingest"),
    ] {
        for e in std::fs::read_dir(&dir).unwrap() {
            out.push(e.unwrap().path().display().to_string());
        }
    }
    out
}

/// A valid single-platform image: its manifest, config and layer, with bytes.
#[derive(Debug)]
pub struct Image {
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub manifest: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub config: Descriptor,
    pub config_bytes: Vec<u8>,
    pub layer: Descriptor,
    pub layer_bytes: Vec<u8>,
}

pub fn image() -> Image {
    let (dir, store) = store();
    let lease = store.lease().unwrap();
    let manifest = testkit::write_image(
        &store,
        &lease,
        &Platform::parse("linux/amd64").unwrap(),
        "faults",
    );
    let manifest_bytes = store.read_document(&manifest.digest).unwrap();
    let m = RawDocument::<ImageManifest>::parse(manifest_bytes.clone()).unwrap();
    let config = m.value().config.clone();
    let layer = m.value().layers[0].clone();
    let config_bytes = store.read_document(&config.digest).unwrap();
    let layer_bytes = std::fs::read(store.blob_path(&layer.digest)).unwrap();
    Image {
        _dir: dir,
        store,
        manifest,
        manifest_bytes,
        config,
        config_bytes,
        layer,
        layer_bytes,
    }
}

/// `len` bytes that do not compress or repeat.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Path → (content type, bytes); GET and HEAD answer from it, anything else 404.
pub type Files = HashMap<String, (String, Vec<u8>)>;

pub fn serve_file(ex: Exchange, files: &Files) {
    let mut ex = ex;
    let _ = ex.body();
    let req = ex.request.clone();
    match (req.method.as_str(), files.get(req.path())) {
        ("GET", Some((ctype, bytes))) => ex.respond(200, &[("Content-Type", ctype)], bytes),
        ("HEAD", Some((ctype, bytes))) => {
            let _ = ex.head(200, &[("Content-Type", ctype)], Some(bytes.len() as u64));
        }
        _ => ex.respond(
            404,
            &[("Content-Type", "application/json")],
            br#"{"errors":[{"code":"NOT_FOUND","message":"not here"}]}"#,
        ),
    }
}

/// A server answering from `files` on `ip`.
pub fn static_server(ip: &str, files: Files) -> Server {
    Server::start(ip, move |ex| serve_file(ex, &files))
}

/// The files of `image` as a registry serves them under `/v2/<repo>/`, with the
/// manifest under `tag`.
pub fn image_files(image: &Image, repo: &str, tag: &str) -> Files {
    let mut files = Files::new();
    files.insert(
        format!("/v2/{repo}/manifests/{tag}"),
        (
            image.manifest.media_type.clone(),
            image.manifest_bytes.clone(),
        ),
    );
    files.insert(
        format!("/v2/{repo}/manifests/{}", image.manifest.digest),
        (
            image.manifest.media_type.clone(),
            image.manifest_bytes.clone(),
        ),
    );
    for (d, b) in [
        (&image.config, &image.config_bytes),
        (&image.layer, &image.layer_bytes),
    ] {
        files.insert(
            format!("/v2/{repo}/blobs/{}", d.digest),
            ("application/octet-stream".into(), b.clone()),
        );
    }
    files
}

/// Run `fut`, failing the test if it takes more than 30 s (a hang is a bug too).
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("the client call returned within 30 s")
}
