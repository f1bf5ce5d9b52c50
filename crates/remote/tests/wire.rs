//! The build request on the wire, against a daemon serving its Unix socket: every
//! field arrives unchanged, another protocol version is refused naming both, and a
//! hostile peer gets an error, not a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use builder::{
    Attestation, AttestationKind, BuildRequest, CacheKind, CacheSpec, ExportOptions, Secret,
};
use export::output::{Codec, Dest, ExportSettings, Kind, Output};
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

/// A request with every field set to something other than its default. Written as
/// literals without `..`, so a field added to any of these types fails to compile
/// here until the test sets it.
fn full_request() -> BuildRequest {
    let options = frontend::BuildOptions {
        target: Some("release".into()),
        platforms: vec![
            oci::Platform::parse("linux/arm64").unwrap(),
            oci::Platform::parse("linux/arm/v7").unwrap(),
        ],
        build_platform: Some(oci::Platform::parse("linux/amd64").unwrap()),
        build_args: vec![
            ("VERSION".into(), Some("1.2".into())),
            ("FROM_ENV".into(), None),
        ],
        named_contexts: BTreeMap::from([
            (
                "assets".into(),
                frontend::NamedContext::Local {
                    name: "context:assets".into(),
                },
            ),
            (
                "alpine".into(),
                frontend::NamedContext::Image {
                    reference: "registry.example/alpine:3".into(),
                },
            ),
        ]),
        labels: BTreeMap::from([("org.example.team".into(), "platform".into())]),
        no_cache: true,
        no_cache_filter: vec!["deps".into()],
        source_date_epoch: Some(1_700_000_000),
        context_excludes: vec!["target".into(), "!target/keep".into()],
        network: graph::op::Network::Host,
    };
    BuildRequest {
        dockerfile: "FROM scratch\nCOPY . /\n".into(),
        options,
        secrets: BTreeMap::from([(
            "token".into(),
            Secret(Arc::new(b"s3cr3t\0bytes\xff".to_vec())),
        )]),
        allow: worker::Entitlements {
            network_host: true,
            security_insecure: true,
        },
        pull: true,
        tags: vec!["registry.example/app:1".into()],
        outputs: vec![
            Output {
                kind: Kind::Image { push: true },
                dest: None,
                names: vec!["registry.example/app:edge".into()],
                export: ExportSettings {
                    compression: Some(Codec::Zstd),
                    level: Some(9),
                    force: true,
                    oci_mediatypes: Some(true),
                },
                push_by_digest: true,
            },
            Output {
                kind: Kind::Oci { tar: false },
                dest: Some(Dest::Path("/tmp/layout".into())),
                names: Vec::new(),
                export: ExportSettings::default(),
                push_by_digest: false,
            },
            Output {
                kind: Kind::Tar,
                dest: Some(Dest::Stdout),
                names: Vec::new(),
                export: ExportSettings::default(),
                push_by_digest: false,
            },
        ],
        export: ExportOptions {
            compression: export::Compression::Zstd { level: 9 },
            oci_mediatypes: false,
            source_date_epoch: Some(1_700_000_000),
        },
        cache_from: vec![CacheSpec {
            kind: CacheKind::Registry,
            attrs: BTreeMap::from([("ref".into(), "registry.example/app:cache".into())]),
        }],
        cache_to: vec![CacheSpec {
            kind: CacheKind::Local,
            attrs: BTreeMap::from([
                ("dest".into(), "/tmp/cache".into()),
                ("mode".into(), "max".into()),
            ]),
        }],
        attestations: vec![
            Attestation {
                kind: AttestationKind::Provenance,
                disabled: false,
                attrs: BTreeMap::from([("mode".into(), "max".into())]),
            },
            Attestation {
                kind: AttestationKind::Sbom,
                disabled: true,
                attrs: BTreeMap::new(),
            },
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_a_build_request_reaches_the_daemon_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path()).await;
    let sent = full_request();
    // Every field differs from its default: a field the wire dropped would
    // arrive as its default and fail the comparison below.
    let BuildRequest {
        dockerfile,
        options,
        secrets,
        allow,
        pull,
        tags,
        outputs,
        export,
        cache_from,
        cache_to,
        attestations,
    } = &sent;
    let blank = BuildRequest::default();
    assert_ne!(*dockerfile, blank.dockerfile);
    assert_ne!(*options, blank.options);
    assert_ne!(*secrets, blank.secrets);
    assert_ne!(*allow, blank.allow);
    assert_ne!(*pull, blank.pull);
    assert_ne!(*tags, blank.tags);
    assert_ne!(*outputs, blank.outputs);
    assert_ne!(*export, blank.export);
    assert_ne!(*cache_from, blank.cache_from);
    assert_ne!(*cache_to, blank.cache_to);
    assert_ne!(*attestations, blank.attestations);
    let fetch_into = dir.path().join("client");
    let store = content::Store::open(&fetch_into).unwrap();
    let lease = Arc::new(store.lease().unwrap());
    let handle = remote::BuildHandle {
        call: BuildCall::new(sent.clone()),
        dirs: Vec::new(),
        layouts: Vec::new(),
        fetch: Some(remote::Fetch { store, lease }),
    };
    let err = remote::build(&d.endpoint, None, handle, |_| {})
        .await
        .expect_err("the admission refuses every build");
    assert!(err.to_string().contains(REFUSED), "{err}");
    let seen = d.seen.lock().unwrap().clone();
    assert_eq!(seen, [sent]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_protocol_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path()).await;
    let info = remote::info(&d.endpoint, None).await.unwrap();
    assert_eq!(info.protocol, PROTOCOL);
    remote::check_protocol(&d.endpoint, &info).unwrap();

    // A newer client's build.
    let mut call = BuildCall::new(full_request());
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
