//! The build protocol against a daemon serving its Unix socket: another protocol
//! version is refused naming both, and a hostile peer gets an error, not a crash
//! (that every field of a request arrives unchanged is tested against a `manifold
//! daemon` process, in the binary's `daemon_request.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use builder::BuildRequest;
use remote::protocol::{BuildCall, PROTOCOL, Reply};
use remote::{Admission, DaemonConfig, Endpoint};
use tokio::io::AsyncWriteExt;

/// A daemon on `dir/daemon.sock` whose admission hands every request to `seen` and
/// refuses it (so nothing is built).
struct Daemon {
    endpoint: Endpoint,
    seen: Arc<Mutex<Vec<BuildRequest>>>,
    stop: solver::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), remote::RemoteError>>,
}

const REFUSED: &str = "seen by the test, not built";

async fn daemon(dir: &Path) -> Daemon {
    let seen: Arc<Mutex<Vec<BuildRequest>>> = Arc::default();
    let into = seen.clone();
    let config = DaemonConfig {
        root: dir.join("root"),
        // The request below asks for both; a daemon refuses what it does not grant.
        grants: worker::Entitlements {
            network_host: true,
            security_insecure: true,
        },
        tls: None,
        registry: registry::RegistryConfig::default(),
        runtime: PathBuf::from("runc"),
        admit: Some(Admission(Arc::new(move |req: &BuildRequest| {
            into.lock().unwrap().push(req.clone());
            Err(REFUSED.to_owned())
        }))),
        after_build: None,
    };
    let path = dir.join("daemon.sock");
    let endpoint = Endpoint::Unix(path.clone());
    let stop = solver::CancellationToken::new();
    let task = tokio::spawn({
        let (endpoint, stop) = (endpoint.clone(), stop.clone());
        async move { remote::serve(&endpoint, config, stop).await }
    });
    for _ in 0..500 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        path.exists(),
        "the daemon did not listen on {}",
        path.display()
    );
    Daemon {
        endpoint,
        seen,
        stop,
        task,
    }
}

impl Daemon {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_protocol_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path()).await;
    let info = remote::info(&d.endpoint, None).await.unwrap();
    assert_eq!(info.protocol, PROTOCOL);
    remote::check_protocol(&d.endpoint, &info).unwrap();

    // A newer client's build.
    let mut call = BuildCall::new(BuildRequest {
        dockerfile: "FROM scratch\n".into(),
        ..BuildRequest::default()
    });
    call.protocol = PROTOCOL + 1;
    call.client_version = "99.0.0".into();
    let message = exchange(
        &d.endpoint,
        &serde_json::to_value(remote::protocol::Request::Build(Box::new(call))).unwrap(),
    )
    .await;
    assert!(
        message.contains(&format!("protocol {} (manifold 99.0.0)", PROTOCOL + 1)),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "protocol {PROTOCOL} (manifold {})",
            env!("CARGO_PKG_VERSION")
        )),
        "{message}"
    );
    // A client from before versions were sent.
    let old = serde_json::json!({"op": "build", "dockerfile": "FROM scratch",
                                 "platforms": ["linux/amd64"], "network": "default"});
    let message = exchange(&d.endpoint, &old).await;
    assert!(
        message.contains("protocol 1 (manifold unknown)"),
        "{message}"
    );
    // Nothing of either reached the builder.
    assert!(d.seen.lock().unwrap().is_empty());

    // And a daemon of another protocol, as the client sees its answer.
    let other = remote::Info {
        protocol: PROTOCOL + 1,
        version: "99.0.0".into(),
        ..info
    };
    let e = remote::check_protocol(&d.endpoint, &other).unwrap_err();
    assert!(e.to_string().contains("the daemon protocol"), "{e}");
    assert!(e.to_string().contains("99.0.0"), "{e}");
    d.stop().await;
}

/// Send one JSON frame, return the daemon's error message.
async fn exchange(endpoint: &Endpoint, frame: &serde_json::Value) -> String {
    let Endpoint::Unix(path) = endpoint else {
        unreachable!()
    };
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    remote::wire::write_json(&mut s, frame).await.unwrap();
    match remote::wire::read_json::<_, Reply>(&mut s).await.unwrap() {
        Some(Reply::Error { message }) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_gets_an_error_and_the_daemon_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path()).await;
    let Endpoint::Unix(path) = &d.endpoint else {
        unreachable!()
    };
    // Not JSON.
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    let garbage = b"{not json";
    s.write_all(&(garbage.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&[1]).await.unwrap();
    s.write_all(garbage).await.unwrap();
    match remote::wire::read_json::<_, Reply>(&mut s).await.unwrap() {
        Some(Reply::Error { .. }) => {}
        other => panic!("{other:?}"),
    }
    // A frame claiming 4 GiB: refused from its header, nothing allocated.
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    s.write_all(&[1]).await.unwrap();
    match remote::wire::read_json::<_, Reply>(&mut s).await.unwrap() {
        Some(Reply::Error { message }) => assert!(message.contains("limit"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A frame kind that does not exist.
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(&[0, 0, 0, 0, 77]).await.unwrap();
    match remote::wire::read_json::<_, Reply>(&mut s).await.unwrap() {
        Some(Reply::Error { message }) => assert!(message.contains("kind 77"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A well-formed request of the wrong shape, and a `Want` out of turn.
    let message = exchange(
        &d.endpoint,
        &serde_json::json!({"op": "build", "protocol": PROTOCOL}),
    )
    .await;
    assert!(message.contains("invalid request"), "{message}");
    let message = exchange(
        &d.endpoint,
        &serde_json::json!({"op": "want", "digests": []}),
    )
    .await;
    assert!(message.contains("comes only after"), "{message}");
    // A peer that leaves mid-frame.
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(&[0, 0, 1]).await.unwrap();
    drop(s);
    // The daemon still answers.
    let info = remote::info(&d.endpoint, None).await.unwrap();
    assert_eq!(info.protocol, PROTOCOL);
    assert!(d.seen.lock().unwrap().is_empty());
    d.stop().await;
}
