//! The build cache end to end: a no-op rebuild starts no container, two builds
//! on one root share a step, base images are pulled once, and a damaged cache
//! record is set aside.

use std::process::Stdio;

use content::Store;

use super::{BASE, manifold, manifold_cmd, mounts_under, ok, root_with_base, text, write};

#[test]
fn no_op_rebuild_runs_nothing_and_a_changed_file_is_named() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let counter = tools.path().join("runs");
    let runtime = testkit::counting_runtime(tools.path(), &counter);
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nCOPY a.txt b.txt /src/\nCOPY --chmod=755 tool.sh /tool.sh\nRUN cat /src/a.txt /src/b.txt > /joined\n",
    );
    write(ctx.path(), "a.txt", "a\n");
    write(ctx.path(), "b.txt", "b\n");
    write(ctx.path(), "tool.sh", "echo tool\n");
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--progress=plain",
            "--runtime",
            runtime.to_str().unwrap(),
            "-t",
            "localhost/noop:1",
        ];
        args.extend_from_slice(extra);
        args.push(ctx.path().to_str().unwrap());
        let out = manifold(root.path(), &args);
        ok(&out);
        out
    };
    build(&[]);
    assert_eq!(testkit::counted_runs(&counter), 1);
    let first = Store::open(root.path())
        .unwrap()
        .resolve("localhost/noop:1")
        .unwrap();

    let out = build(&[]);
    assert_eq!(
        testkit::counted_runs(&counter),
        1,
        "a no-op rebuild starts no container"
    );
    assert!(
        text(&out.stderr).contains("CACHED"),
        "{}",
        text(&out.stderr)
    );
    assert!(mounts_under(root.path()).is_empty());
    let second = Store::open(root.path())
        .unwrap()
        .resolve("localhost/noop:1")
        .unwrap();
    assert_eq!(
        first.digest, second.digest,
        "a no-op rebuild gives the same index"
    );

    // A file no step reads, and a mode that COPY --chmod overrides: still cached.
    write(ctx.path(), "unrelated.txt", "x\n");
    std::fs::set_permissions(
        ctx.path().join("tool.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    build(&[]);
    assert_eq!(
        testkit::counted_runs(&counter),
        1,
        "unread files and overridden modes keep the cache"
    );

    write(ctx.path(), "b.txt", "changed\n");
    let out = build(&[]);
    assert_eq!(testkit::counted_runs(&counter), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("cache miss: local context file b.txt changed"),
        "{err}"
    );
    assert!(!err.contains("a.txt changed"), "{err}");

    // --no-cache runs the step again.
    build(&["--no-cache"]);
    assert_eq!(testkit::counted_runs(&counter), 3);
}

#[test]
fn two_builds_on_one_root_run_their_shared_step_once() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let counter = tools.path().join("runs");
    let runtime = testkit::counting_runtime(tools.path(), &counter);
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN sleep 2 && echo shared > /shared\n",
    );
    let spawn = |tag: &str| {
        manifold_cmd(
            root.path(),
            &[
                "build",
                "--progress=plain",
                "--runtime",
                runtime.to_str().unwrap(),
                "-t",
                tag,
                ctx.path().to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let a = spawn("localhost/two:a");
    let b = spawn("localhost/two:b");
    ok(&a.wait_with_output().unwrap());
    ok(&b.wait_with_output().unwrap());
    assert_eq!(
        testkit::counted_runs(&counter),
        1,
        "the shared step ran once"
    );
    let store = Store::open(root.path()).unwrap();
    assert_eq!(
        store.resolve("localhost/two:a").unwrap().digest,
        store.resolve("localhost/two:b").unwrap().digest
    );
}

#[test]
fn base_images_are_pulled_from_a_registry_once() {
    use testkit::registry::{Auth, DistRegistry};
    testkit::require_root_and_runc();
    let reg = DistRegistry::start(Auth::Open);
    // Push the base with manifold itself from a store that has it.
    let seed = root_with_base(&["amd64", "arm64"]);
    let base = format!("{}/lib/busybox:1", reg.addr);
    let store = Store::open(seed.path()).unwrap();
    store
        .set_name("busybox", &store.resolve(BASE).unwrap())
        .unwrap();
    let layout = format!("oci-layout://{}:busybox", seed.path().join("oci").display());
    let out = manifold(seed.path(), &["imagetools", "copy", &layout, &base]);
    ok(&out);
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {base}\nRUN uname -m > /arch\n"),
    );
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--progress=plain", "-t", "localhost/pulled:1"];
        args.extend_from_slice(extra);
        args.push(ctx.path().to_str().unwrap());
        let out = manifold(root.path(), &args);
        ok(&out);
        out
    };
    build(&[]);
    let pulls = |log: &str| {
        log.lines()
            .filter(|l| l.contains("GET /v2/lib/busybox/blobs/"))
            .count()
    };
    let after_first = pulls(&reg.log());
    assert!(after_first >= 2, "config and layer fetched:\n{}", reg.log());
    let out = build(&[]);
    assert!(text(&out.stderr).contains("CACHED"));
    assert_eq!(pulls(&reg.log()), after_first, "a rebuild fetches no blob");
    // --pull asks the registry again, and still builds.
    build(&["--pull"]);
}

#[test]
fn a_damaged_cache_record_is_set_aside_and_rebuilt() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo one > /one\n",
    );
    let build = || {
        let out = manifold(
            root.path(),
            &[
                "build",
                "--progress=plain",
                "-t",
                "localhost/damaged:1",
                ctx.path().to_str().unwrap(),
            ],
        );
        ok(&out);
        text(&out.stderr)
    };
    build();
    // A power cut leaves every record half-written.
    let records = root.path().join("cache/records");
    let mut damaged = 0;
    for e in std::fs::read_dir(&records).unwrap() {
        let p = e.unwrap().path();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&p, bytes).unwrap();
        damaged += 1;
    }
    assert!(damaged > 0);
    let err = build();
    assert!(err.contains("cache record was damaged"), "{err}");
    // The store is still whole, and the next build is cached again.
    let out = manifold(root.path(), &["fsck"]);
    ok(&out);
    let err = build();
    assert!(
        err.contains("CACHED") && !err.contains("record was damaged"),
        "{err}"
    );
}
