//! Cache that travels (`--cache-to`/`--cache-from type=local`): a cache exported by
//! one state root makes every step of the same build a hit on a fresh root, with no
//! container started and the same image digest; a later step that changed runs on
//! snapshots made from the imported layers; a damaged cache is a warning and the
//! build runs. skopeo reads the exported layout.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BASE: &str = "localhost/busybox:test";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "manifold failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn manifold(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env_remove("MANIFOLD_BUILDER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A fresh state root with the busybox base (what a CI runner pulls first).
fn fresh_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(dir.path(), BASE, &["amd64"]);
    dir
}

/// Whether the plain progress `stderr` shows the step whose name contains `step`
/// as `CACHED` (`#N [stage i/n] STEP` then `#N CACHED`).
fn cached(stderr: &str, step: &str) -> bool {
    stderr
        .lines()
        .filter(|l| l.contains(step))
        .filter_map(|l| l.split_whitespace().next())
        .any(|id| stderr.lines().any(|l| l == format!("{id} CACHED")))
}

const DOCKERFILE: &str = "FROM localhost/busybox:test AS build\n\
RUN echo built > /artifact && uname -m > /arch\n\
FROM localhost/busybox:test\n\
COPY --from=build /artifact /artifact\n\
COPY hello /hello\n\
RUN cat /artifact /hello > /seen\n";

struct Setup {
    /// `--platform`'s value.
    platforms: &'static str,
    ctx: tempfile::TempDir,
    tools: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(ctx.path().join("hello"), "hello\n").unwrap();
        Setup {
            platforms: "linux/amd64",
            ctx,
            tools: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn counter(&self) -> std::path::PathBuf {
        self.tools.path().join("runs")
    }

    /// Build on `root` with `extra` flags; the image digest and stderr.
    fn build(&self, root: &Path, extra: &[&str]) -> (String, String) {
        let runtime = testkit::counting_runtime(self.tools.path(), &self.counter());
        let iid = self.tools.path().join("iid");
        let platform = format!("--platform={}", self.platforms);
        let mut args = vec![
            "build",
            "--progress=plain",
            &platform,
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            "--runtime",
            runtime.to_str().unwrap(),
            "--iidfile",
            iid.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(self.ctx.path().to_str().unwrap());
        let stderr = ok(&manifold(root, &args));
        (std::fs::read_to_string(&iid).unwrap(), stderr)
    }

    fn to(&self, mode: &str) -> String {
        format!(
            "type=local,dest={},mode={mode}",
            self.cache.path().display()
        )
    }

    fn from(&self) -> String {
        format!("type=local,src={}", self.cache.path().display())
    }
}

#[test]
fn a_local_cache_makes_every_step_a_hit_on_a_fresh_root() {
    testkit::require_root_and_runc();
    let s = Setup::new();
    let a = fresh_root();
    let (digest, _) = s.build(a.path(), &["--cache-to", &s.to("max")]);
    assert_eq!(testkit::counted_runs(&s.counter()), 2);

    // The cache is an OCI layout skopeo reads: an index over the cache manifest
    // and the base image.
    let raw = Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:latest", s.cache.path().display()))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|m| m["artifactType"] == "application/vnd.manifold.cache.v1"),
        "{index}"
    );

    // A fresh root (as a CI runner has): every step a hit, nothing run, same image.
    let b = fresh_root();
    let (again, stderr) = s.build(b.path(), &["--cache-from", &s.from()]);
    assert_eq!(
        testkit::counted_runs(&s.counter()),
        2,
        "no container started:\n{stderr}"
    );
    assert_eq!(again, digest, "{stderr}");
    for step in [
        "RUN echo built",
        "COPY --from=build",
        "COPY hello",
        "RUN cat",
    ] {
        assert!(cached(&stderr, step), "{step} not CACHED:\n{stderr}");
    }
    assert!(stderr.contains("importing cache from"), "{stderr}");

    // A changed file reruns exactly the steps after it, on snapshots made from the
    // imported layers.
    std::fs::write(s.ctx.path().join("hello"), "changed\n").unwrap();
    let c = fresh_root();
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().join("fs").display());
    let (changed, stderr) = s.build(c.path(), &["--cache-from", &s.from(), "-o", &dest]);
    assert_ne!(changed, digest);
    assert_eq!(
        testkit::counted_runs(&s.counter()),
        3,
        "only the last RUN ran:\n{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("fs/seen")).unwrap(),
        "built\nchanged\n"
    );
    assert!(cached(&stderr, "RUN echo built"), "{stderr}");
    assert!(!cached(&stderr, "COPY hello"), "{stderr}");
}

/// A cache key names its inputs' results, so `mode=min` reaches the final image
/// through the stage it copies from: the same records as `mode=max`.
#[test]
fn mode_min_reaches_the_image_through_the_stages_it_copies_from() {
    testkit::require_root_and_runc();
    let s = Setup::new();
    let a = fresh_root();
    let (digest, _) = s.build(a.path(), &["--cache-to", &s.to("min")]);
    let b = fresh_root();
    let (again, stderr) = s.build(b.path(), &["--cache-from", &s.from()]);
    assert_eq!(testkit::counted_runs(&s.counter()), 2, "{stderr}");
    assert_eq!(again, digest);
    assert!(cached(&stderr, "RUN cat"), "{stderr}");
}

#[test]
fn a_damaged_or_missing_cache_is_a_warning_and_the_build_runs() {
    testkit::require_root_and_runc();
    let s = Setup::new();
    let a = fresh_root();
    let (digest, _) = s.build(a.path(), &["--cache-to", &s.to("max")]);
    // Every blob truncated: the records document no longer matches its digest.
    for e in walk(&s.cache.path().join("blobs")) {
        std::fs::write(&e, b"{}").unwrap();
    }
    let b = fresh_root();
    let (again, stderr) = s.build(b.path(), &["--cache-from", &s.from()]);
    assert!(stderr.contains("warning:"), "{stderr}");
    assert_eq!(again, digest, "the same build, run again");
    assert_eq!(testkit::counted_runs(&s.counter()), 4);
    let missing = format!("type=local,src={}", a.path().join("nowhere").display());
    let c = fresh_root();
    let (_, stderr) = s.build(c.path(), &["--cache-from", &missing]);
    assert!(stderr.contains("cannot read the cache"), "{stderr}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Export to `registry`, then build on a fresh root from it: every step a hit,
/// nothing run, the same image; skopeo reads the pushed cache.
fn registry_round_trip(registry: &str) {
    let s = Setup::new();
    let cache = format!("{registry}/ci/app:buildcache");
    let a = fresh_root();
    let (digest, stderr) = s.build(
        a.path(),
        &["--cache-to", &format!("type=registry,ref={cache},mode=max")],
    );
    assert!(
        stderr.contains(&format!("exporting cache to {cache}")),
        "{stderr}"
    );
    let raw = Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{cache}"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert!(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["artifactType"] == "application/vnd.manifold.cache.v1"),
        "{index}"
    );
    let b = fresh_root();
    let (again, stderr) = s.build(
        b.path(),
        &["--cache-from", &format!("type=registry,ref={cache}")],
    );
    assert_eq!(testkit::counted_runs(&s.counter()), 2, "{stderr}");
    assert_eq!(again, digest, "{stderr}");
    for step in [
        "RUN echo built",
        "COPY --from=build",
        "COPY hello",
        "RUN cat",
    ] {
        assert!(cached(&stderr, step), "{step} not CACHED:\n{stderr}");
    }
    // buildx's shorthand: a bare reference is type=registry.
    let c = fresh_root();
    let (_, stderr) = s.build(c.path(), &["--cache-from", &cache]);
    assert_eq!(testkit::counted_runs(&s.counter()), 2, "{stderr}");
}

#[test]
fn a_registry_cache_travels_through_the_distribution_registry() {
    testkit::require_root_and_runc();
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    registry_round_trip(&registry.addr);
}

#[test]
fn a_registry_cache_travels_through_manifolds_own_registry() {
    testkit::require_root_and_runc();
    let registry = testkit::registry::OwnRegistry::start(Path::new(env!("CARGO_BIN_EXE_manifold")));
    registry_round_trip(&registry.addr);
}

/// The blobs the registry served with GET, in its access log.
fn blob_gets(log: &str) -> std::collections::BTreeSet<String> {
    log.lines()
        .filter(|l| l.contains("\"GET /v2/"))
        .filter_map(|l| {
            let at = l.find("/blobs/sha256:")?;
            Some(l[at + "/blobs/".len()..at + "/blobs/".len() + 71].to_owned())
        })
        .collect()
}

/// A registry cache is imported lazily: a fresh root that rebuilds from it fetches
/// the layers of the image it makes, never the layer of a stage it only copies from.
#[test]
fn a_registry_import_fetches_only_the_layers_the_build_needs() {
    testkit::require_root_and_runc();
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let s = Setup::new();
    std::fs::write(
        s.ctx.path().join("Dockerfile"),
        DOCKERFILE.replace(
            "RUN echo built > /artifact",
            "RUN head -c 300000 /dev/urandom > /noise && echo built > /artifact",
        ),
    )
    .unwrap();
    let cache = format!("{}/ci/lazy:buildcache", registry.addr);
    let a = fresh_root();
    s.build(
        a.path(),
        &["--cache-to", &format!("type=registry,ref={cache},mode=max")],
    );
    let before = blob_gets(&registry.log());

    let b = fresh_root();
    let (digest, stderr) = s.build(
        b.path(),
        &["--cache-from", &cache, "-t", "localhost/lazy:1"],
    );
    assert_eq!(testkit::counted_runs(&s.counter()), 2, "{stderr}");
    let fetched: Vec<String> = blob_gets(&registry.log())
        .difference(&before)
        .cloned()
        .collect();
    // What the image is made of: its config and layers (the base's among them).
    let store = content::Store::open(b.path()).unwrap();
    let top = store.resolve("localhost/lazy:1").unwrap();
    assert_eq!(top.digest.to_string(), digest);
    let m: serde_json::Value =
        serde_json::from_slice(&store.read_document(&top.digest).unwrap()).unwrap();
    let mut image: std::collections::BTreeSet<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    image.insert(m["config"]["digest"].as_str().unwrap().to_owned());
    // The cache's own layers: the build stage's noise is one the image lacks.
    let raw = Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{cache}"))
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let cache_manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/vnd.manifold.cache.v1")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!(
            "docker://{}/ci/lazy@{cache_manifest}",
            registry.addr
        ))
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let records = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let unneeded: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .filter(|d| !image.contains(d))
        .collect();
    assert!(
        !unneeded.is_empty(),
        "the build stage has a layer of its own"
    );
    for d in &fetched {
        assert!(
            image.contains(d) || *d == records,
            "fetched {d}, which the image does not use\nfetched: {fetched:?}\nimage: {image:?}"
        );
    }
    for d in &unneeded {
        assert!(!fetched.contains(d), "fetched the unneeded layer {d}");
    }
    assert!(
        !fetched.is_empty(),
        "the image's own layers came from the cache"
    );

    // Pushed to the registry that holds the cache: no layer is fetched at all, the
    // registry mounts them; the pushed image is whole (skopeo copies it), and
    // `manifold run` fetches the layers when it needs them.
    let app = format!("{}/ci/lazy-app:1", registry.addr);
    let before = blob_gets(&registry.log());
    let d = fresh_root();
    let (_, stderr) = s.build(d.path(), &["--cache-from", &cache, "-t", &app, "--push"]);
    assert_eq!(testkit::counted_runs(&s.counter()), 2, "{stderr}");
    let config = m["config"]["digest"].as_str().unwrap().to_owned();
    let layers_fetched: Vec<String> = blob_gets(&registry.log())
        .difference(&before)
        .filter(|d| **d != records && **d != config)
        .cloned()
        .collect();
    assert!(
        layers_fetched.is_empty(),
        "fetched {layers_fetched:?}\n{stderr}"
    );
    let copied = tempfile::tempdir().unwrap();
    let copy = Command::new(testkit::require_tool("skopeo"))
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{app}"))
        .arg(format!("oci:{}:app", copied.path().display()))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", text(&copy.stderr));
    let ran = manifold(d.path(), &["run", "--rm", &app, "cat", "/seen"]);
    assert_eq!(text(&ran.stdout), "built\nhello\n", "{}", text(&ran.stderr));

    // A changed file: the steps after it run on snapshots made from layers fetched
    // now.
    std::fs::write(s.ctx.path().join("hello"), "changed\n").unwrap();
    let c = fresh_root();
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().join("fs").display());
    let (_, stderr) = s.build(c.path(), &["--cache-from", &cache, "-o", &dest]);
    assert_eq!(testkit::counted_runs(&s.counter()), 3, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("fs/seen")).unwrap(),
        "built\nchanged\n"
    );
}

/// Rewrite the records document of the cache layout `dir` with `change`, and the
/// manifest, index and `index.json` that name it, so every digest matches again: a
/// well-formed but hostile cache.
fn tamper(dir: &Path, change: impl Fn(&mut serde_json::Value)) {
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = oci::Digest::sha256(bytes).to_string();
        std::fs::write(blob(&d), bytes).unwrap();
        (d, bytes.len())
    };
    let read = |d: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(blob(d)).unwrap()).unwrap()
    };
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut index = read(top["manifests"][0]["digest"].as_str().unwrap());
    let at = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m["artifactType"] == "application/vnd.manifold.cache.v1")
        .unwrap();
    let mut manifest = read(index["manifests"][at]["digest"].as_str().unwrap());
    let mut records = read(manifest["config"]["digest"].as_str().unwrap());
    change(&mut records);
    let (d, n) = put(&serde_json::to_vec(&records).unwrap());
    manifest["config"]["digest"] = d.into();
    manifest["config"]["size"] = n.into();
    let (d, n) = put(&serde_json::to_vec(&manifest).unwrap());
    index["manifests"][at]["digest"] = d.into();
    index["manifests"][at]["size"] = n.into();
    let (d, n) = put(&serde_json::to_vec(&index).unwrap());
    top["manifests"][0]["digest"] = d.into();
    top["manifests"][0]["size"] = n.into();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
}

/// Hostile caches, each well-formed down to its digests: the import is a warning
/// that names what is wrong, and the build runs its steps and makes the same image.
#[test]
fn hostile_caches_are_warnings_and_the_build_runs() {
    testkit::require_root_and_runc();
    let s = Setup::new();
    let a = fresh_root();
    let (digest, _) = s.build(a.path(), &["--cache-to", &s.to("max")]);
    let clean = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        let st = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(to)
            .status()
            .unwrap();
        assert!(st.success());
    };
    copy(s.cache.path(), clean.path());
    type Change = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Change)> = vec![
        ("records version 99", Box::new(|r| r["version"] = 99.into())),
        (
            "is not valid",
            Box::new(|r| {
                let steps = r["steps"].as_object_mut().unwrap();
                let (k, v) = steps
                    .iter()
                    .next()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .unwrap();
                steps.remove(&k);
                steps.insert("step-\u{7}bell".into(), v);
            }),
        ),
        (
            "the cache does not hold",
            Box::new(|r| {
                for (_, v) in r["steps"].as_object_mut().unwrap() {
                    if v.is_object() {
                        v["descriptor"]["digest"] = format!("sha256:{}", "0".repeat(64)).into();
                    }
                }
            }),
        ),
        (
            "at most 33554432",
            Box::new(|r| r["padding"] = "x".repeat(33 << 20).into()),
        ),
        (
            "missing field",
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("records");
            }),
        ),
    ];
    let mut runs = testkit::counted_runs(&s.counter());
    for (want, change) in cases {
        let _ = std::fs::remove_dir_all(s.cache.path());
        std::fs::create_dir_all(s.cache.path()).unwrap();
        copy(clean.path(), s.cache.path());
        tamper(s.cache.path(), change);
        let root = fresh_root();
        let (again, stderr) = s.build(root.path(), &["--cache-from", &s.from()]);
        assert!(
            stderr.contains("warning:") && stderr.contains(want),
            "{want}:\n{stderr}"
        );
        assert_eq!(again, digest, "{want}");
        runs += 2;
        assert_eq!(
            testkit::counted_runs(&s.counter()),
            runs,
            "{want}: every step ran"
        );
    }
}

/// The blobs uploaded to the registry (`PUT …/blobs/uploads/…?digest=…`).
fn blob_puts(log: &str) -> std::collections::BTreeSet<String> {
    log.lines()
        .filter(|l| l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/"))
        .filter_map(|l| {
            let at = l.find("digest=sha256")?;
            let d = &l[at + "digest=".len()..];
            Some(d.get(..71)?.replace("%3A", ":"))
        })
        .collect()
}

/// A second export after one changed step uploads only what changed: the blobs
/// the registry has are not sent again.
#[test]
fn a_second_export_uploads_only_the_changed_steps() {
    testkit::require_root_and_runc();
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let s = Setup::new();
    let cache = format!("{}/ci/inc:buildcache", registry.addr);
    let to = format!("type=registry,ref={cache},mode=max");
    let a = fresh_root();
    s.build(a.path(), &["--cache-to", &to]);
    let first = blob_puts(&registry.log());
    assert!(first.len() >= 4, "{first:?}");
    std::fs::write(s.ctx.path().join("hello"), "changed\n").unwrap();
    s.build(a.path(), &["--cache-to", &to]);
    let second: Vec<String> = blob_puts(&registry.log())
        .difference(&first)
        .cloned()
        .collect();
    // The new records, and the layers of `COPY hello` and `RUN cat`: nothing else.
    assert_eq!(second.len(), 3, "{second:?}");
}

/// A daemon builder exports a registry cache, and another daemon on an empty root
/// builds every step from it.
#[test]
fn daemons_export_and_import_registry_caches() {
    testkit::require_root_and_runc();
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let manifold = Path::new(env!("CARGO_BIN_EXE_manifold"));
    let s = Setup::new();
    let cache = format!("{}/ci/far:buildcache", registry.addr);
    let run = |daemon: &testkit::daemon::Daemon, extra: &[&str]| {
        let client = tempfile::tempdir().unwrap();
        let cmd = |args: &[&str]| {
            Command::new(manifold)
                .args(args)
                .env("MANIFOLD_ROOT", client.path().join("root"))
                .env("MANIFOLD_CONFIG", client.path().join("config"))
                .env("DOCKER_CONFIG", client.path().join("docker"))
                .env_remove("MANIFOLD_BUILDER")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        ok(&cmd(&[
            "create",
            "--name",
            "far",
            "--use",
            &daemon.endpoint(),
        ]));
        let mut args = vec!["build", "--progress=plain", "--platform=linux/amd64"];
        args.extend_from_slice(extra);
        args.push(s.ctx.path().to_str().unwrap());
        ok(&cmd(&args))
    };
    let one = testkit::daemon::Daemon::start(manifold, BASE, &["amd64"]);
    run(
        &one,
        &["--cache-to", &format!("type=registry,ref={cache},mode=max")],
    );
    let two = testkit::daemon::Daemon::start(manifold, BASE, &["amd64"]);
    let stderr = run(&two, &["--cache-from", &cache]);
    for step in [
        "RUN echo built",
        "COPY --from=build",
        "COPY hello",
        "RUN cat",
    ] {
        assert!(cached(&stderr, step), "{step} not CACHED:\n{stderr}");
    }
}

/// `--cache-to type=inline`: the pushed image carries its cache in its config, and
/// `--cache-from` the image itself makes a fresh root's build all hits, the same
/// image again.
#[test]
fn an_inline_cache_travels_in_the_image() {
    testkit::require_root_and_runc();
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let s = Setup::new();
    std::fs::write(
        s.ctx.path().join("Dockerfile"),
        "FROM localhost/busybox:test\nCOPY hello /hello\nRUN cat /hello > /seen && uname -m > /arch\n",
    )
    .unwrap();
    let image = format!("{}/ci/inline:1", registry.addr);
    let a = fresh_root();
    let (digest, _) = s.build(
        a.path(),
        &["-t", &image, "--push", "--cache-to", "type=inline"],
    );
    assert_eq!(testkit::counted_runs(&s.counter()), 1);
    let config = Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--raw", "--config", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(config.status.success(), "{}", text(&config.stderr));
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(config["manifold.cache.v1"]["version"], 1, "{config}");
    // Pushed with its provenance (an index, as buildx pushes it): the image is the
    // index's one entry that is not an attestation.
    let index = Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index.stdout).unwrap();
    let images: Vec<&serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["platform"]["os"] != "unknown")
        .collect();
    assert_eq!(
        (digest.starts_with("sha256:"), images.len()),
        (true, 1),
        "{index}"
    );
    let digest = images[0]["digest"].as_str().unwrap().to_owned();

    let b = fresh_root();
    let (again, stderr) = s.build(
        b.path(),
        &[
            "-t",
            &image,
            "--cache-to",
            "type=inline",
            "--cache-from",
            &image,
        ],
    );
    assert_eq!(testkit::counted_runs(&s.counter()), 1, "{stderr}");
    assert_eq!(again, digest, "{stderr}");
    assert!(cached(&stderr, "RUN cat"), "{stderr}");
    // An image without an inline cache is a warning that says so.
    let c = fresh_root();
    let plain = format!("{}/ci/plain:1", registry.addr);
    s.build(a.path(), &["-t", &plain, "--push"]);
    let (_, stderr) = s.build(c.path(), &["--cache-from", &plain]);
    assert!(stderr.contains("without an inline cache"), "{stderr}");
}

/// `mounts=true`: a cache mount's contents travel with the cache. A RUN that
/// appends to a file in one sees the earlier contents after `prune --all` and
/// `--cache-from`.
#[test]
fn cache_mounts_travel_with_mounts_true() {
    testkit::require_root_and_runc();
    let s = Setup::new();
    std::fs::write(
        s.ctx.path().join("Dockerfile"),
        "FROM localhost/busybox:test\nARG N\n\
         RUN --mount=type=cache,id=acc,target=/acc echo \"run $N\" >> /acc/log && cat /acc/log > /after\n",
    )
    .unwrap();
    let root = fresh_root();
    let to = format!("{},mounts=true", s.to("max"));
    let (_, stderr) = s.build(root.path(), &["--build-arg", "N=1", "--cache-to", &to]);
    assert!(stderr.contains("1 cache mount(s)"), "{stderr}");
    ok(&manifold(root.path(), &["prune", "--all", "--force"]));
    assert!(
        !root.path().join("cache-mounts").exists()
            || std::fs::read_dir(root.path().join("cache-mounts"))
                .unwrap()
                .next()
                .is_none(),
        "prune --all removed the cache mounts"
    );
    testkit::base::busybox_index(root.path(), BASE, &["amd64"]);
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().join("fs").display());
    let (_, stderr) = s.build(
        root.path(),
        &["--build-arg", "N=2", "--cache-from", &s.from(), "-o", &dest],
    );
    assert!(stderr.contains("1 cache mount(s)"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("fs/after")).unwrap(),
        "run 1\nrun 2\n"
    );
    // Without mounts=true, no mount travels; over the size cap, it is left out.
    let (_, stderr) = s.build(
        root.path(),
        &[
            "--build-arg",
            "N=3",
            "--cache-to",
            &format!("{},mounts=true,mounts-max-size=4", s.to("max")),
        ],
    );
    assert!(
        stderr.contains("over mounts-max-size=4: left out"),
        "{stderr}"
    );
}

/// Two platforms, one of them emulated: the cache of both travels, and a fresh root
/// builds the same index without starting a container.
#[test]
fn a_two_platform_cache_with_an_emulated_platform() {
    testkit::require_root_and_runc();
    let _binfmt =
        testkit::binfmt::Guard::ensure(Path::new(env!("CARGO_BIN_EXE_manifold")), &["arm64"]);
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let s = Setup {
        platforms: "linux/amd64,linux/arm64",
        ..Setup::new()
    };
    std::fs::write(
        s.ctx.path().join("Dockerfile"),
        "FROM localhost/busybox:test\nCOPY hello /hello\nRUN uname -m > /arch\n",
    )
    .unwrap();
    let two = |root: &Path, extra: &[&str]| s.build(root, extra);
    let both = |dir: &Path| testkit::base::busybox_index(dir, BASE, &["amd64", "arm64"]);
    let a = tempfile::tempdir().unwrap();
    both(a.path());
    let cache = format!("{}/ci/two:buildcache", registry.addr);
    let (digest, _) = two(
        a.path(),
        &["--cache-to", &format!("type=registry,ref={cache},mode=max")],
    );
    assert_eq!(testkit::counted_runs(&s.counter()), 2);
    let b = tempfile::tempdir().unwrap();
    both(b.path());
    let (again, stderr) = two(b.path(), &["--cache-from", &cache]);
    assert_eq!(testkit::counted_runs(&s.counter()), 2, "{stderr}");
    assert_eq!(again, digest, "{stderr}");
}

/// A registry cache that cannot be written fails the build and names the reference;
/// with `ignore-error=true` it is a warning and the build's image is made.
#[test]
fn ignore_error_turns_a_failed_cache_export_into_a_warning() {
    testkit::require_root_and_runc();
    let s = Setup::new();
    // Nothing listens there: every connection is refused at once.
    let port = testkit::registry::free_port("127.0.0.1");
    let cache = format!("127.0.0.1:{port}/cache/app:1");
    let a = fresh_root();
    let iid = s.tools.path().join("iid-fail");
    let args = |to: &str| {
        vec![
            "build".to_owned(),
            "--progress=plain".to_owned(),
            "--iidfile".to_owned(),
            iid.display().to_string(),
            "--cache-to".to_owned(),
            to.to_owned(),
            s.ctx.path().display().to_string(),
        ]
    };
    let strs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    let plain = args(&format!("type=registry,ref={cache},mode=max"));
    let out = manifold(
        a.path(),
        &plain.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        !out.status.success(),
        "{}: {}",
        strs(&plain),
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains(&cache), "{}", text(&out.stderr));

    let ignored = args(&format!(
        "type=registry,ref={cache},mode=max,ignore-error=true"
    ));
    let stderr = ok(&manifold(
        a.path(),
        &ignored.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(stderr.contains("warning:"), "{stderr}");
    assert!(
        std::fs::read_to_string(&iid)
            .unwrap()
            .starts_with("sha256:"),
        "the image was made: {stderr}"
    );
}
