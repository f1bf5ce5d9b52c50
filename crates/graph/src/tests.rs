use oci::{ImageConfig, Platform};

use crate::op::{
    CacheSharing, Chmod, Copy, EnvVar, Exec, File, FileAction, Mkdir, Mount, MountKind, Network,
    ResolveMode, Security, Source,
};
use crate::{Graph, GraphError, Location, Metadata, Op, Vertex, canonical};

fn amd64() -> Platform {
    Platform::new("linux", "amd64", None)
}

fn image(reference: &str) -> Op {
    Op::Source(Source::Image {
        reference: reference.to_owned(),
        platform: amd64(),
        resolve_mode: ResolveMode::Default,
    })
}

fn exec(args: &[&str]) -> Op {
    Op::Exec(Exec {
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        env: vec![EnvVar::new("PATH", "/usr/bin:/bin")],
        cwd: "/".to_owned(),
        user: String::new(),
        hostname: None,
        network: Network::Default,
        security: Security::Sandbox,
        proxy_env: Vec::new(),
        secret_env: Vec::new(),
        platform: amd64(),
        mounts: vec![
            Mount {
                input: Some(0),
                dest: "/".to_owned(),
                selector: "/".to_owned(),
                readonly: false,
                kind: MountKind::Bind,
            },
            Mount {
                input: None,
                dest: "/root/.cache".to_owned(),
                selector: "/".to_owned(),
                readonly: false,
                kind: MountKind::Cache {
                    id: "/root/.cache".to_owned(),
                    sharing: CacheSharing::Locked,
                },
            },
        ],
        extra_hosts: Vec::new(),
        ulimits: Vec::new(),
        shm_size: None,
    })
}

fn meta(description: &str) -> Metadata {
    Metadata {
        description: description.to_owned(),
        ..Metadata::default()
    }
}

/// Pins the canonical form: if this fails, every digest manifold ever
/// computed changed. Bump `canonical::PREFIX` on purpose, then update. The
/// first value was checked by hashing the documented bytes with `sha256sum`.
#[test]
fn digest_of_a_fixed_exec_is_stable() {
    let base = image("docker.io/library/busybox:latest");
    let base_digest = canonical::digest(&base, &[]);
    assert_eq!(
        base_digest.to_string(),
        "sha256:2c643fa683c45d327067c2b4b984fd148483cc561cecc6cdb8521b36e6fa8925"
    );
    let d = canonical::digest(&exec(&["/bin/sh", "-c", "echo hi"]), &[base_digest]);
    assert_eq!(
        d.to_string(),
        "sha256:b509a9da5dfb47fe406518b0b124b81658904d863788a095bf18b363f4161ae8"
    );
}

#[test]
fn canonical_bytes_are_compact_json_after_the_prefix() {
    let bytes = canonical::bytes(&Op::Source(Source::Scratch), &[]);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "manifold.graph.v1\n{\"op\":{\"source\":\"scratch\"},\"inputs\":[]}"
    );
}

#[test]
fn metadata_is_not_part_of_the_digest() {
    let a = Vertex::new(image("docker.io/library/a:1"), vec![], meta("FROM a"));
    let mut b = a.clone();
    b.metadata = Metadata {
        description: "[linux/arm64 stage-0 1/2] FROM a".to_owned(),
        location: Some(Location {
            start_line: 3,
            start_column: 1,
            end_line: 3,
            end_column: 9,
        }),
        platform: Some(Platform::new("linux", "arm64", None)),
        ignore_cache: true,
    };
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn op_fields_and_inputs_are_part_of_the_digest() {
    let a = image("docker.io/library/a:1");
    let b = image("docker.io/library/a:2");
    assert_ne!(canonical::digest(&a, &[]), canonical::digest(&b, &[]));
    let da = canonical::digest(&a, &[]);
    let db = canonical::digest(&b, &[]);
    let run = exec(&["true"]);
    assert_ne!(
        canonical::digest(&run, &[da]),
        canonical::digest(&run, &[db])
    );
}

#[test]
fn identical_vertices_are_stored_once() {
    let mut g = Graph::new();
    let first = g
        .add_op(image("docker.io/library/a:1"), vec![], meta("first"))
        .unwrap();
    let again = g
        .add_op(image("docker.io/library/a:1"), vec![], meta("second"))
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(g.len(), 1);
    assert_eq!(g.get(&first).unwrap().metadata.description, "first");
    let r1 = g
        .add_op(exec(&["true"]), vec![first.clone()], meta("x"))
        .unwrap();
    let r2 = g.add_op(exec(&["true"]), vec![first], meta("y")).unwrap();
    assert_eq!(r1, r2);
    assert_eq!(g.len(), 2);
}

#[test]
fn inputs_must_exist_and_be_enough() {
    let mut g = Graph::new();
    let base = canonical::digest(&image("docker.io/library/a:1"), &[]);
    let err = g.add_op(exec(&["true"]), vec![base], meta("")).unwrap_err();
    assert!(matches!(err, GraphError::UnknownInput { .. }), "{err}");
    let err = g.add_op(exec(&["true"]), vec![], meta("")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a exec vertex needs at least 1 inputs, got 0"
    );
    let s = g
        .add_op(Op::Source(Source::Scratch), vec![], meta(""))
        .unwrap();
    let err = g
        .add_op(Op::Source(Source::Scratch), vec![s], meta(""))
        .unwrap_err();
    assert!(matches!(err, GraphError::SourceWithInputs { got: 1 }));
}

#[test]
fn dump_is_deterministic_and_in_insertion_order() {
    let build = || {
        let mut g = Graph::new();
        let base = g
            .add_op(image("docker.io/library/a:1"), vec![], meta("FROM a"))
            .unwrap();
        let ctx = g
            .add_op(
                Op::Source(Source::Local {
                    name: "context".to_owned(),
                    include: vec![],
                    exclude: vec![],
                    follow_paths: vec!["src".to_owned()],
                }),
                vec![],
                meta("context"),
            )
            .unwrap();
        let file = Op::File(File {
            base: Some(0),
            actions: vec![
                FileAction::Mkdir(Mkdir {
                    path: "/app".to_owned(),
                    mode: 0o755,
                    make_parents: true,
                    chown: None,
                    created: None,
                }),
                FileAction::Copy(Copy {
                    src: 1,
                    src_path: "/src".to_owned(),
                    dest: "/app/".to_owned(),
                    chown: Some("1000:1000".to_owned()),
                    chmod: Some(Chmod::Symbolic("u+x".to_owned())),
                    follow_symlinks: true,
                    dir_contents_only: true,
                    create_dest_path: true,
                    allow_wildcard: true,
                    allow_empty_wildcard: true,
                    unpack: false,
                    parents: false,
                    include: vec![],
                    exclude: vec![],
                    created: None,
                }),
            ],
        });
        let root = g.add_op(file, vec![base, ctx], meta("COPY")).unwrap();
        let config = ImageConfig {
            architecture: "amd64".to_owned(),
            os: "linux".to_owned(),
            ..ImageConfig::default()
        };
        g.add_output(amd64(), root, config).unwrap();
        g
    };
    let a = build().to_json_pretty();
    assert_eq!(a, build().to_json_pretty());
    let local = a.find("\"context\"").unwrap();
    let image = a.find("docker.io/library/a:1").unwrap();
    assert!(image < local, "insertion order kept:\n{a}");
    assert!(build().uses_local("context"));
}
