//! Every field of a build request reaches a `manifold daemon` process unchanged: the
//! request is sent over the daemon's socket, and the daemon's request log
//! (`--log-requests`, written as the builder is handed the request) is compared with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use builder::{
    Attestation, AttestationKind, BuildRequest, CacheKind, CacheSpec, ExportOptions, Secret,
};
use export::annotation::{Annotation, Level};
use export::output::{Codec, Dest, ExportSettings, Kind, Output};
use remote::protocol::BuildCall;
use testkit::daemon::Daemon;

const MANIFOLD: &str = env!("CARGO_BIN_EXE_manifold");

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
        extra_hosts: vec![graph::op::HostEntry {
            name: "db".into(),
            ip: "fd00::5".parse().unwrap(),
        }],
        ulimits: vec![graph::op::Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        }],
        shm_size: Some(128 << 20),
    };
    BuildRequest {
        dockerfile: "FROM scratch\nCOPY . /\n".into(),
        dockerfile_name: "build.Dockerfile".into(),
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
                name_canonical: true,
                annotations: vec![Annotation {
                    level: Level::ManifestDescriptor,
                    platform: Some(oci::Platform::parse("linux/arm64").unwrap()),
                    key: "org.example.part".into(),
                    value: "arm".into(),
                }],
            },
            Output {
                kind: Kind::Oci { tar: false },
                dest: Some(Dest::Path("/tmp/layout".into())),
                names: Vec::new(),
                export: ExportSettings::default(),
                push_by_digest: false,
                name_canonical: false,
                annotations: Vec::new(),
            },
            Output {
                kind: Kind::Tar,
                dest: Some(Dest::Stdout),
                names: Vec::new(),
                export: ExportSettings::default(),
                push_by_digest: false,
                name_canonical: false,
                annotations: Vec::new(),
            },
        ],
        export: ExportOptions {
            compression: export::Compression::Zstd { level: 9 },
            oci_mediatypes: false,
            source_date_epoch: Some(1_700_000_000),
            annotations: vec![Annotation {
                level: Level::Index,
                platform: None,
                key: "org.opencontainers.image.title".into(),
                value: "app".into(),
            }],
        },
        cache_from: vec![CacheSpec {
            kind: CacheKind::Registry,
            attrs: BTreeMap::from([("ref".into(), "registry.example/app:cache".into())]),
        }],
        // Registry caches: a daemon refuses type=local (the directory would be its own).
        cache_to: vec![CacheSpec {
            kind: CacheKind::Registry,
            attrs: BTreeMap::from([
                ("ref".into(), "registry.example/app:cache".into()),
                ("mode".into(), "max".into()),
                ("compression".into(), "zstd".into()),
            ]),
        }],
        attestations: vec![
            // Disabled: the request's images use Docker media types, which
            // cannot carry attestations.
            Attestation {
                kind: AttestationKind::Provenance,
                disabled: true,
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
    testkit::require_root_and_runc();
    // The request asks for both entitlements: a daemon refuses what it does not grant.
    let d = Daemon::start_with(
        Path::new(MANIFOLD),
        &[
            "--allow",
            "network.host,security.insecure",
            "--log-requests",
            "{dir}/requests.jsonl",
        ],
    );
    let endpoint = remote::Endpoint::parse(&d.endpoint()).unwrap();
    let sent = full_request();
    // Every field differs from its default: a field the wire dropped would
    // arrive as its default and fail the comparison below.
    let BuildRequest {
        dockerfile,
        dockerfile_name,
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
    assert_ne!(*dockerfile_name, blank.dockerfile_name);
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
    let client = tempfile::tempdir().unwrap();
    let store = content::Store::open(client.path()).unwrap();
    let lease = Arc::new(store.lease().unwrap());
    let handle = remote::BuildHandle {
        call: BuildCall::new(sent.clone()),
        dirs: Vec::new(),
        layouts: Vec::new(),
        fetch: Some(remote::Fetch { store, lease }),
    };
    // The build itself fails (no stage is named `release`): what counts is what the
    // daemon's builder was given.
    let err = remote::build(&endpoint, None, handle, |_| {})
        .await
        .expect_err("the Dockerfile has no stage release");
    assert!(err.to_string().contains("release"), "{err}");
    let log = std::fs::read_to_string(d.dir().join("requests.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    let received: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(received, sent.audit_json());
    // And the log itself holds no secret's bytes.
    assert!(!log.contains("s3cr3t"), "{log}");
}
