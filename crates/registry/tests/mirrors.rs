//! Registry mirrors (`mirrors = [...]` in a `[registry."HOST"]` table): pulls read
//! from each mirror in order, then from the registry; what a mirror serves is
//! verified like anything else; pushes and login checks never go to a mirror.
//!
//! Registries are the real distribution registry (`DistRegistry`) or
//! `testkit::http` servers that fail on purpose and count requests; "down" is a
//! closed port on 127.0.0.1. Every address is on this machine.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use content::Store;
use oci::{Digest, Reference};
use registry::ops::Platforms;
use registry::{Anonymous, Client, CredentialSource, DockerConfig, RegistryConfig, RegistryError};
use testkit::http::Server;
use testkit::registry::{Auth, DistRegistry, free_port};

/// A client whose config gives `registry` the mirrors `mirrors`, in order.
fn mirrored(registry: &str, mirrors: &[String], creds: Arc<dyn CredentialSource>) -> Client {
    let list: Vec<String> = mirrors.iter().map(|m| format!("{m:?}")).collect();
    let text = format!("[registry.{registry:?}]\nmirrors = [{}]\n", list.join(", "));
    let config = RegistryConfig::parse(&text, Path::new("config.toml")).unwrap();
    let mut c = Client::new(config, creds).unwrap();
    c.retry = fast_retries();
    c
}

/// `127.0.0.1:PORT` with nothing listening.
fn down() -> String {
    format!("127.0.0.1:{}", free_port("127.0.0.1"))
}

/// A mirror that answers every request with 503.
fn busy() -> Server {
    Server::start("127.0.0.1", |mut ex| {
        let _ = ex.body();
        ex.respond(503, &[("Content-Type", "text/plain")], b"mirror busy");
    })
}

fn reference(registry: &str, rest: &str) -> Reference {
    Reference::parse(&format!("{registry}/{rest}")).unwrap()
}

/// A distribution registry holding `image` as `r:v1`.
async fn registry_with(image: &Image) -> DistRegistry {
    let reg = DistRegistry::start(Auth::Open);
    client()
        .push(
            &image.store,
            &image.manifest,
            &reference(&reg.addr, "r:v1"),
            None,
        )
        .await
        .unwrap();
    reg
}

/// `image` is in `store` whole, every part verified against its digest, and `got`
/// names its manifest.
fn assert_stored(store: &Store, image: &Image, got: &oci::Descriptor) {
    assert_eq!(got.digest, image.manifest.digest, "the registry's image");
    let manifest = store.read_document(&got.digest).unwrap();
    assert_eq!(Digest::sha256(&manifest), image.manifest.digest);
    for d in [&image.config, &image.layer] {
        let bytes = std::fs::read(store.blob_path(&d.digest)).unwrap();
        assert_eq!(
            Digest::sha256(&bytes),
            d.digest,
            "blob {} verified",
            d.digest
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_mirror_falls_through_to_the_registry() {
    let img = image();
    let upstream = registry_with(&img).await;
    let mirror = busy();
    let c = mirrored(&upstream.addr, &[mirror.addr()], Arc::new(Anonymous));
    let (_d, store) = common::store();
    let lease = store.lease().unwrap();
    let got = within(c.pull(
        &store,
        &lease,
        &reference(&upstream.addr, "r:v1"),
        &Platforms::All,
    ))
    .await
    .unwrap();
    assert_stored(&store, &img, &got);
    let asked = mirror.requests();
    assert_eq!(
        asked.len(),
        1,
        "one attempt at the mirror, no retries; the rest of the image comes from \
         the source that served its manifest: {asked:?}"
    );
    assert_eq!(asked[0].path(), "/v2/r/manifests/v1");
}

#[tokio::test]
async fn a_busy_mirror_falls_through_to_the_next_mirror() {
    let img = image();
    let first = busy();
    let second = static_server("127.0.0.1", image_files(&img, "r", "v1"));
    let upstream = down();
    let c = mirrored(
        &upstream,
        &[first.addr(), second.addr()],
        Arc::new(Anonymous),
    );
    let (_d, store) = common::store();
    let lease = store.lease().unwrap();
    let got = within(c.pull(
        &store,
        &lease,
        &reference(&upstream, "r:v1"),
        &Platforms::All,
    ))
    .await
    .unwrap();
    assert_stored(&store, &img, &got);
    assert_eq!(first.requests().len(), 1, "{:?}", first.requests());
    let paths: Vec<String> = second
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    for want in [
        "/v2/r/manifests/v1".to_owned(),
        format!("/v2/r/blobs/{}", img.config.digest),
        format!("/v2/r/blobs/{}", img.layer.digest),
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_mirror_serves_the_pull_while_the_registry_is_down() {
    let img = image();
    let mirror = registry_with(&img).await;
    let upstream = down();
    let c = mirrored(
        &upstream,
        std::slice::from_ref(&mirror.addr),
        Arc::new(Anonymous),
    );

    let by_tag = reference(&upstream, "r:v1");
    let fetched = within(c.get_manifest(&by_tag)).await.unwrap();
    assert_eq!(
        fetched.descriptor.digest,
        Digest::sha256(fetched.document.bytes()),
        "a manifest by tag from a mirror: its digest is computed from its bytes"
    );
    assert_eq!(fetched.descriptor.digest, img.manifest.digest);

    for r in [
        by_tag.clone(),
        by_tag.with_digest(img.manifest.digest.clone()),
    ] {
        let (_d, store) = common::store();
        let lease = store.lease().unwrap();
        let got = within(c.pull(&store, &lease, &r, &Platforms::All))
            .await
            .unwrap_or_else(|e| panic!("{r}: {}", oci::error_chain(&e)));
        assert_stored(&store, &img, &got);
    }
}

#[tokio::test]
async fn a_mirror_path_prefixes_the_repository() {
    let img = image();
    let mirror = static_server("127.0.0.1", image_files(&img, "proxy/hub/r", "v1"));
    let upstream = down();
    let c = mirrored(
        &upstream,
        &[format!("{}/proxy/hub", mirror.addr())],
        Arc::new(Anonymous),
    );
    let r = reference(&upstream, "r:v1");
    let sources: Vec<String> = c.repo(&r).sources().map(ToString::to_string).collect();
    assert_eq!(
        sources,
        [
            format!("http://{}/v2/proxy/hub/r/", mirror.addr()),
            format!("http://{upstream}/v2/r/"),
        ]
    );
    let (_d, store) = common::store();
    let lease = store.lease().unwrap();
    let got = within(c.pull(&store, &lease, &r, &Platforms::All))
        .await
        .unwrap();
    assert_stored(&store, &img, &got);
    for req in mirror.requests() {
        assert!(req.path().starts_with("/v2/proxy/hub/r/"), "{req:?}");
    }
}

/// `image_files` with the bytes of one blob changed (same length).
fn tampered_files(img: &Image, blob: &oci::Descriptor) -> (Files, Vec<u8>) {
    let mut files = image_files(img, "r", "v1");
    let entry = files
        .get_mut(&format!("/v2/r/blobs/{}", blob.digest))
        .unwrap();
    entry.1[0] ^= 0xff;
    let bad = entry.1.clone();
    (files, bad)
}

/// The choice made (and tested here): a mirror serving bytes that do not match
/// their digest is a failure of that mirror like any other. The bytes never reach
/// the store; the read moves on to the next source, and if none serves the right
/// bytes the pull fails with the digest mismatch at the mirror in its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_serving_a_tampered_blob_is_not_trusted() {
    let img = image();
    let upstream = registry_with(&img).await;
    for blob in [&img.layer, &img.config] {
        let (files, bad) = tampered_files(&img, blob);
        let mirror = static_server("127.0.0.1", files);
        let c = mirrored(&upstream.addr, &[mirror.addr()], Arc::new(Anonymous));
        let (_d, store) = common::store();
        let lease = store.lease().unwrap();
        let got = within(c.pull(
            &store,
            &lease,
            &reference(&upstream.addr, "r:v1"),
            &Platforms::All,
        ))
        .await
        .unwrap();
        assert_stored(&store, &img, &got);
        assert!(!store.contains(&Digest::sha256(&bad)));
        let blob_path = format!("/v2/r/blobs/{}", blob.digest);
        assert!(
            mirror.requests().iter().any(|r| r.path() == blob_path),
            "the mirror was asked for the blob first"
        );
    }
}

#[tokio::test]
async fn a_tampered_blob_with_no_other_source_fails_and_stores_no_image() {
    let img = image();
    let (files, bad) = tampered_files(&img, &img.layer);
    let mirror = static_server("127.0.0.1", files);
    let upstream = down();
    let c = mirrored(&upstream, &[mirror.addr()], Arc::new(Anonymous));
    let (_d, store) = common::store();
    let lease = store.lease().unwrap();
    let err = within(c.pull(
        &store,
        &lease,
        &reference(&upstream, "r:v1"),
        &Platforms::All,
    ))
    .await
    .unwrap_err();
    let RegistryError::AllSources { mirrors, .. } = &err else {
        panic!("{}", oci::error_chain(&err));
    };
    assert!(
        matches!(&mirrors[0].error, RegistryError::DigestMismatch { expected, .. } if *expected == img.layer.digest),
        "{:?}",
        mirrors[0].error
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&mirror.addr()) && msg.contains("expected"),
        "{msg}"
    );
    assert!(!store.contains(&img.manifest.digest), "no image stored");
    assert!(!store.contains(&img.layer.digest));
    assert!(!store.contains(&Digest::sha256(&bad)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_login_checks_never_touch_the_mirror() {
    let img = image();
    let upstream = DistRegistry::start(Auth::Open);
    let mirror = static_server("127.0.0.1", Files::new());
    let c = mirrored(&upstream.addr, &[mirror.addr()], Arc::new(Anonymous));
    let target = reference(&upstream.addr, "r:v1");
    c.push(&img.store, &img.manifest, &target, None)
        .await
        .unwrap();
    // Again: every blob is found present (HEAD) at the registry.
    c.push(&img.store, &img.manifest, &target, None)
        .await
        .unwrap();
    // A cross-repository mount.
    c.push(
        &img.store,
        &img.manifest,
        &reference(&upstream.addr, "other:v1"),
        Some("r"),
    )
    .await
    .unwrap();
    // Appending to an index reads the target's current manifest: from the
    // registry, which is about to be written, not from a mirror.
    c.create_index(&img.store, &[], &target, true, Default::default(), false)
        .await
        .unwrap();
    c.check_login(&upstream.addr).await.unwrap();
    assert_eq!(mirror.requests(), [], "the mirror saw none of it");

    // The mirror is configured: a pull asks it first.
    let (_d, store) = common::store();
    let lease = store.lease().unwrap();
    within(c.pull(&store, &lease, &target, &Platforms::All))
        .await
        .unwrap();
    assert!(!mirror.requests().is_empty());
}

/// A mirror that wants `USER`/`PASSWORD` (Basic), then serves `img`.
fn basic_mirror(img: &Image) -> Server {
    let files = image_files(img, "r", "v1");
    Server::start("127.0.0.1", move |mut ex| {
        if ex.request.header("authorization") != Some(basic_header().as_str()) {
            let _ = ex.body();
            ex.respond(401, &[("WWW-Authenticate", "Basic realm=\"mirror\"")], b"");
            return;
        }
        serve_file(ex, &files);
    })
}

/// A credential source holding `USER`/`PASSWORD` for `registry` only.
fn password_for(registry: &str) -> (tempfile::TempDir, Arc<dyn CredentialSource>) {
    let dir = tempfile::tempdir().unwrap();
    DockerConfig::load(dir.path())
        .unwrap()
        .store(registry, USER, &registry::Secret::new(PASSWORD))
        .unwrap();
    let creds = DockerConfig::load(dir.path()).unwrap();
    (dir, Arc::new(creds))
}

#[tokio::test]
async fn a_mirror_is_sent_its_own_credentials() {
    let img = image();
    let mirror = basic_mirror(&img);
    let upstream = down();
    let (_conf, creds) = password_for(&mirror.addr());
    let c = mirrored(&upstream, &[mirror.addr()], creds);
    let fetched = within(c.get_manifest(&reference(&upstream, "r:v1")))
        .await
        .unwrap();
    assert_eq!(fetched.descriptor.digest, img.manifest.digest);
}

#[tokio::test]
async fn the_registrys_credentials_never_go_to_a_mirror() {
    let img = image();
    let mirror = basic_mirror(&img);
    let upstream = down();
    let (_conf, creds) = password_for(&upstream);
    let c = mirrored(&upstream, &[mirror.addr()], creds);
    let err = within(c.get_manifest(&reference(&upstream, "r:v1")))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::AllSources { .. }), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    let asked = mirror.requests();
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|r| r.header("authorization").is_none()),
        "{asked:?}"
    );
}

#[tokio::test]
async fn when_every_source_fails_the_error_names_each_one() {
    let first = busy();
    let second = down();
    let upstream = down();
    let c = mirrored(
        &upstream,
        &[first.addr(), second.clone()],
        Arc::new(Anonymous),
    );
    let err = within(c.get_manifest(&reference(&upstream, "r:v1")))
        .await
        .unwrap_err();
    let RegistryError::AllSources { mirrors, .. } = &err else {
        panic!("{}", oci::error_chain(&err));
    };
    assert_eq!(mirrors.len(), 2);
    let msg = err.to_string();
    for part in [
        "manifest v1 of",
        first.addr().as_str(),
        "503",
        "mirror busy",
        second.as_str(),
        "then the registry failed too",
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg}");
    }
    let chain = oci::error_chain(&err);
    assert!(
        chain.contains(&format!("http://{upstream}/v2/r/manifests/v1")),
        "the registry's own error is the cause: {chain}"
    );

    // Not found everywhere is still "not found".
    let empty = static_server("127.0.0.1", Files::new());
    let nowhere = static_server("127.0.0.1", Files::new());
    let c = mirrored(&nowhere.addr(), &[empty.addr()], Arc::new(Anonymous));
    let err = within(c.get_manifest(&reference(&nowhere.addr(), "r:v1")))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::AllSources { .. }), "{err}");
    assert!(err.is_not_found(), "{err}");
}
