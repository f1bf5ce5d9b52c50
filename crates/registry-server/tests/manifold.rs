//! The conformance suite against manifold's registry, started in-process.

mod conformance;

use std::sync::Arc;

use conformance::Target;
use registry_server::{Config, Registry};

/// Start a registry on 127.0.0.1:0; returns its address and the state root.
pub async fn start(delete: bool) -> (String, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let reg = Registry::open(Config {
        root: root.path().to_owned(),
        delete,
        auth: None,
        access_log: None,
        limits: registry_server::Limits::default(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(registry_server::serve(listener, Arc::clone(&reg)));
    (addr, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_check_passes() {
    let (addr, _root) = start(true).await;
    let t = Target::new(&addr);
    let mut failed = Vec::new();
    for name in conformance::ALL {
        if let Err(e) = conformance::run(name, &t).await {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_refused_when_disabled() {
    let (addr, _root) = start(false).await;
    conformance::run("delete_disabled", &Target::new(&addr))
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let reg = Registry::open(Config {
        root: root.path().to_owned(),
        delete: false,
        auth: None,
        access_log: None,
        limits: registry_server::Limits::default(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = registry_server::serve(listener, reg).await.unwrap_err();
    assert!(err.to_string().contains("multi-threaded"), "{err}");
}

/// Distribution's router answers an invalid reference with a plain-text 404; ours
/// carries the spec's envelope, and a push under such a tag stays a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reference_is_an_unknown_manifest_to_read_and_an_invalid_tag_to_write() {
    use reqwest::{Method, StatusCode};
    let (addr, _root) = start(true).await;
    let t = Target::new(&addr);
    let path = "/v2/c/badtag/manifests/.INVALID_MANIFEST_NAME";
    let r = t.req(Method::GET, path).await.unwrap();
    conformance::expect_error(r, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "GET")
        .await
        .unwrap();
    let r = t.req(Method::HEAD, path).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.bytes().await.unwrap().len(), 0, "HEAD has no body");

    let (m, _) = t.image_manifest("c/badtag", "badtag", None).await.unwrap();
    let r = t
        .put_manifest(
            "c/badtag",
            ".INVALID_MANIFEST_NAME",
            oci::media::OCI_MANIFEST,
            &m,
        )
        .await
        .unwrap();
    conformance::expect_error(r, StatusCode::BAD_REQUEST, "TAG_INVALID", "PUT")
        .await
        .unwrap();
    let (status, body) = conformance::raw_get(&t, "/v2/c/badtag/tags/list")
        .await
        .unwrap();
    let tags: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &tags["tags"]), (200, &serde_json::json!([])));
}
