//! The shapes and flags buildx users script against, through a builder in this
//! process and through a `manifold daemon`: one platform pushes a manifest and
//! several an index, annotations land where their type says, `--metadata-file` has
//! buildx's keys, and `--add-host`, `--ulimit` and `--shm-size` reach `RUN` steps.
//! skopeo reads what was pushed; the steps' own files show what they saw.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use testkit::daemon::Daemon;
use testkit::registry::{Auth, DistRegistry};

const BASE: &str = "localhost/busybox:test";
const MANIFOLD: &str = env!("CARGO_BIN_EXE_manifold");
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Where builds run: a state root here, or a daemon the client selected.
struct Builder {
    name: &'static str,
    dir: tempfile::TempDir,
    _daemon: Option<Daemon>,
}

impl Builder {
    fn local() -> Builder {
        let dir = tempfile::tempdir().unwrap();
        testkit::base::busybox_index(&dir.path().join("root"), BASE, &["amd64", "arm64"]);
        Builder {
            name: "local",
            dir,
            _daemon: None,
        }
    }

    fn daemon() -> Builder {
        let daemon = Daemon::start(Path::new(MANIFOLD), BASE, &["amd64", "arm64"]);
        let b = Builder {
            name: "daemon",
            dir: tempfile::tempdir().unwrap(),
            _daemon: None,
        };
        // Declared, not probed: the builds here copy files (no step runs emulated),
        // so a host without QEMU builds arm64 too.
        ok(&b.run(&[
            "create",
            "--name",
            "far",
            "--use",
            "--platform",
            "linux/amd64,linux/arm64",
            &daemon.endpoint(),
        ]));
        Builder {
            _daemon: Some(daemon),
            ..b
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(MANIFOLD)
            .args(args)
            .env("MANIFOLD_ROOT", self.dir.path().join("root"))
            .env("MANIFOLD_CONFIG", self.dir.path().join("config"))
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("MANIFOLD_BUILDER")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn path(&self, p: &str) -> String {
        self.dir.path().join(p).to_str().unwrap().to_owned()
    }
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.path().join("hello"), "hello\n").unwrap();
    dir
}

/// `skopeo inspect --raw` of `reference` in the test registry, parsed, with the
/// digest of its bytes.
fn raw(reference: &str) -> (serde_json::Value, String) {
    let out = Command::new(testkit::require_tool("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap();
    ok(&out);
    let digest = oci::Digest::sha256(&out.stdout).to_string();
    (serde_json::from_slice(&out.stdout).unwrap(), digest)
}

fn metadata(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn shapes_and_annotations(b: &Builder, registry: &str) {
    let ctx = context("FROM localhost/busybox:test\nCOPY hello /hello\n");
    let ctx = ctx.path().to_str().unwrap();
    let who = b.name;

    // One platform without attestations: a manifest, carrying the manifest
    // annotations; the metadata names it and its config. (With the default
    // provenance it is an index: attestations.rs.)
    let one = format!("{registry}/shapes/one-{who}:v1");
    ok(&b.run(&[
        "build",
        "--provenance=false",
        "--platform=linux/amd64",
        "-t",
        &one,
        "--push",
        "--annotation",
        "org.example.title=one",
        "--metadata-file",
        &b.path("one.json"),
        ctx,
    ]));
    let (m, digest) = raw(&one);
    assert_eq!(m["mediaType"], OCI_MANIFEST, "{who}: {m}");
    assert_eq!(m["annotations"]["org.example.title"], "one", "{who}: {m}");
    let meta = metadata(&b.path("one.json"));
    assert_eq!(meta["containerimage.digest"], digest.as_str(), "{who}");
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"], OCI_MANIFEST,
        "{who}"
    );
    assert_eq!(
        meta["containerimage.config.digest"], m["config"]["digest"],
        "{who}"
    );
    assert_eq!(meta["image.name"], one.as_str(), "{who}");

    // Two platforms: an index with its own annotations (flag and output key), each
    // entry with the descriptor's, and one platform's manifest with its own.
    let two = format!("{registry}/shapes/two-{who}:v1");
    ok(&b.run(&[
        "build",
        "--platform=linux/amd64,linux/arm64",
        "-o",
        &format!("type=image,name={two},push=true,annotation-index.org.example.via=output"),
        "--annotation",
        "index:org.example.level=index",
        "--annotation",
        "manifest-descriptor:org.example.entry=yes",
        "--annotation",
        "manifest[linux/arm64]:org.example.arm=only",
        "--metadata-file",
        &b.path("two.json"),
        ctx,
    ]));
    let (index, digest) = raw(&two);
    assert_eq!(index["mediaType"], OCI_INDEX, "{who}: {index}");
    assert_eq!(index["annotations"]["org.example.level"], "index", "{who}");
    assert_eq!(index["annotations"]["org.example.via"], "output", "{who}");
    // The two images, and their provenance (pushed by default) after them.
    let all = index["manifests"].as_array().unwrap();
    assert_eq!(all.len(), 4, "{who}: {index}");
    let entries: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["platform"]["os"] != "unknown")
        .collect();
    assert_eq!(entries.len(), 2, "{who}: {index}");
    for e in entries {
        assert_eq!(e["annotations"]["org.example.entry"], "yes", "{who}: {e}");
        let arch = e["platform"]["architecture"].as_str().unwrap();
        let (m, _) = raw(&format!(
            "{registry}/shapes/two-{who}@{}",
            e["digest"].as_str().unwrap()
        ));
        let arm = m["annotations"].get("org.example.arm");
        match arch {
            "arm64" => assert_eq!(arm.unwrap(), "only", "{who}: {m}"),
            _ => assert!(arm.is_none(), "{who}: {arch} has {m}"),
        }
    }
    let meta = metadata(&b.path("two.json"));
    assert_eq!(meta["containerimage.digest"], digest.as_str(), "{who}");
    assert!(
        meta.get("containerimage.config.digest").is_none(),
        "{who}: an index has no one config: {meta}"
    );

    // An OCI layout's entry for the index carries the index-descriptor annotation.
    ok(&b.run(&[
        "build",
        "--platform=linux/amd64,linux/arm64",
        "-o",
        &format!("type=oci,dest={},tar=false", b.path("layout")),
        "--annotation",
        "index-descriptor:org.example.layout=entry",
        ctx,
    ]));
    let layout: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.path("layout/index.json")).unwrap())
            .unwrap();
    let entry = &layout["manifests"][0];
    assert_eq!(entry["mediaType"], OCI_INDEX, "{who}: {layout}");
    assert_eq!(
        entry["annotations"]["org.example.layout"], "entry",
        "{who}: {layout}"
    );

    // Pushed by digest: no tag in the repository, the canonical name in the metadata.
    let repo = format!("{registry}/shapes/bydigest-{who}");
    ok(&b.run(&[
        "build",
        "--platform=linux/amd64",
        "-o",
        &format!("type=image,name={repo},push-by-digest=true,name-canonical=true,push=true"),
        "--metadata-file",
        &b.path("bydigest.json"),
        ctx,
    ]));
    let meta = metadata(&b.path("bydigest.json"));
    let digest = meta["containerimage.digest"].as_str().unwrap().to_owned();
    // With its default provenance, the pushed image is an index, and the metadata
    // has buildx's provenance key (a daemon's push read back from the registry).
    let (m, got) = raw(&format!("{repo}@{digest}"));
    assert_eq!(
        (m["mediaType"].as_str(), got.as_str()),
        (Some(OCI_INDEX), digest.as_str())
    );
    assert_eq!(
        meta["buildx.build.provenance"]["buildType"], "https://mobyproject.org/buildkit@v1",
        "{who}: {meta}"
    );
    // The repository (no tag was pushed) and, for name-canonical, NAME@DIGEST.
    assert_eq!(
        meta["image.name"],
        format!("{repo},{repo}@{digest}").as_str(),
        "{who}"
    );
    let tags = Command::new(testkit::require_tool("skopeo"))
        .args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{repo}"),
        ])
        .output()
        .unwrap();
    // distribution answers an untagged repository with no tags (or not at all).
    let listed = text(&tags.stdout);
    assert!(!listed.contains("latest"), "{who}: {listed}");

    // An index annotation on one platform is BuildKit's error.
    let out = b.run(&[
        "build",
        "--platform=linux/amd64",
        "--annotation",
        "index:k=v",
        "-t",
        &one,
        ctx,
    ]);
    assert!(!out.status.success(), "{who}");
    assert!(
        text(&out.stderr).contains("index annotations not supported for single platform export"),
        "{who}: {}",
        text(&out.stderr)
    );
}

fn run_flags(b: &Builder) {
    let ctx = context(
        "FROM localhost/busybox:test\n\
         RUN cat /etc/hosts > /hosts && ulimit -n > /nofile && ulimit -Hn > /nofile-hard \
         && df -k /dev/shm | tail -n 1 > /shm\n",
    );
    let ctx = ctx.path().to_str().unwrap();
    let who = b.name;
    let build = |dest: &str, host: &str| {
        ok(&b.run(&[
            "build",
            "--platform=linux/amd64",
            "--add-host",
            host,
            "--add-host",
            "v6.example:fd00::7",
            "--ulimit",
            "nofile=512:1024",
            "--shm-size",
            "32m",
            "-o",
            &format!("type=local,dest={}", b.path(dest)),
            ctx,
        ]));
        let read = |f: &str| std::fs::read_to_string(PathBuf::from(b.path(dest)).join(f)).unwrap();
        (
            read("hosts"),
            read("nofile"),
            read("nofile-hard"),
            read("shm"),
        )
    };
    let (hosts, soft, hard, shm) = build("out", "db.example:10.1.2.3");
    assert!(hosts.contains("10.1.2.3\tdb.example\n"), "{who}: {hosts}");
    assert!(hosts.contains("fd00::7\tv6.example\n"), "{who}: {hosts}");
    assert!(hosts.starts_with("127.0.0.1\tlocalhost"), "{who}: {hosts}");
    assert_eq!((soft.trim(), hard.trim()), ("512", "1024"), "{who}");
    // busybox df: FILESYSTEM 1K-BLOCKS USED AVAILABLE USE% MOUNTED-ON
    let blocks: Vec<&str> = shm.split_whitespace().collect();
    assert_eq!(blocks.get(1), Some(&"32768"), "{who}: {shm}");
    // The hosts are part of the step: another address runs it again.
    let (hosts, ..) = build("out2", "db.example:10.9.9.9");
    assert!(hosts.contains("10.9.9.9\tdb.example\n"), "{who}: {hosts}");
}

#[test]
fn shapes_annotations_and_metadata_through_a_local_builder() {
    testkit::require_root_and_runc();
    let registry = DistRegistry::start(Auth::Open);
    shapes_and_annotations(&Builder::local(), &registry.addr);
}

#[test]
fn shapes_annotations_and_metadata_through_a_daemon_builder() {
    testkit::require_root_and_runc();
    let registry = DistRegistry::start(Auth::Open);
    shapes_and_annotations(&Builder::daemon(), &registry.addr);
}

#[test]
fn add_host_ulimit_and_shm_size_reach_run_steps_through_a_local_builder() {
    testkit::require_root_and_runc();
    run_flags(&Builder::local());
}

#[test]
fn add_host_ulimit_and_shm_size_reach_run_steps_through_a_daemon_builder() {
    testkit::require_root_and_runc();
    run_flags(&Builder::daemon());
}
