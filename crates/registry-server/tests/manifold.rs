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
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = registry_server::serve(listener, reg).await.unwrap_err();
    assert!(err.to_string().contains("multi-threaded"), "{err}");
}
