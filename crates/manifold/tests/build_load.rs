//! Load: 50 `manifold build` processes at once on one state root, all building the
//! same steps. Each shared step runs once (counted by a wrapping runtime), every
//! build succeeds with the same image, and no process's peak memory grows with the
//! crowd. Then 50 builds at once whose steps differ but share cache mounts of each
//! sharing mode, each mode checked by the steps themselves. Needs root and runc.

mod common;

use std::process::{Command, Stdio};

use common::{manifold, ok, read, root_with_base, text, write};

#[test]
fn fifty_concurrent_builds_share_their_steps_and_all_succeed() {
    testkit::require_root_and_runc();
    let time = testkit::require_tool("time");
    let root = root_with_base();
    let tools = tempfile::tempdir().unwrap();
    let counter = tools.path().join("runs");
    let runtime = testkit::counting_runtime(tools.path(), &counter);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\n\
         RUN sleep 1 && echo one > /one\n\
         RUN cat /one > /two && echo two >> /two\n",
    );
    let kids: Vec<_> = (0..50)
        .map(|i| {
            let iid = tools.path().join(format!("iid-{i}"));
            let rss = tools.path().join(format!("rss-{i}"));
            Command::new(&time)
                .arg("-o")
                .arg(&rss)
                .args(["-f", "%M"])
                .arg(env!("CARGO_BIN_EXE_manifold"))
                .args(["build", "--progress=quiet", "--runtime"])
                .arg(&runtime)
                .arg("--iidfile")
                .arg(&iid)
                .arg(ctx.path())
                .env("MANIFOLD_ROOT", root.path())
                .env("MANIFOLD_CONFIG", root.path().join("config"))
                .env_remove("MANIFOLD_BUILDER")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failed = Vec::new();
    for (i, kid) in kids.into_iter().enumerate() {
        let out = kid.wait_with_output().unwrap();
        if !out.status.success() {
            failed.push(format!("build {i}: {}", text(&out.stderr)));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(
        testkit::counted_runs(&counter),
        2,
        "each of the two RUN steps ran once across the 50 builds"
    );
    let digests: std::collections::BTreeSet<String> = (0..50)
        .map(|i| std::fs::read_to_string(tools.path().join(format!("iid-{i}"))).unwrap())
        .collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
    let peak_kib = (0..50)
        .map(|i| {
            std::fs::read_to_string(tools.path().join(format!("rss-{i}")))
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .max()
        .unwrap();
    // A lone build of this Dockerfile peaks near 25 MiB.
    assert!(peak_kib < 128 * 1024, "a build peaked at {peak_kib} KiB");
    common::assert_clean(root.path());
}

/// `manifold build` of `ctx` on `root` with `extra` flags, started, not waited for.
fn spawn_build(
    root: &std::path::Path,
    ctx: &std::path::Path,
    extra: &[&str],
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(["build", "--progress=plain"])
        .args(extra)
        .arg(ctx)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env_remove("MANIFOLD_BUILDER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// Case 55, cache mounts under load: 50 builds at once, each a different step (its
// own N) mounting one cache of each sharing mode. A `shared` cache is one directory
// all of them append to; a `private` one is never in use by two steps at once (so
// there are several instances); a `locked` one lets one step in at a time. A step
// that sees its mode broken fails its build.
#[test]
fn fifty_builds_at_once_share_cache_mounts_per_their_mode() {
    testkit::require_root_and_runc();
    let root = root_with_base();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\n\
         ARG N\n\
         RUN --mount=type=cache,id=load-shared,sharing=shared,target=/s \\\n\
             --mount=type=cache,id=load-private,sharing=private,target=/p \\\n\
             echo $N >> /s/log && \\\n\
             if [ -e /p/owner ]; then echo \"private cache in use by build $(cat /p/owner)\" >&2; exit 1; fi && \\\n\
             echo $N > /p/owner && sleep 1 && \\\n\
             if [ \"$(cat /p/owner)\" != $N ]; then echo \"private cache entered by $(cat /p/owner)\" >&2; exit 1; fi && \\\n\
             rm /p/owner\n\
         RUN --mount=type=cache,id=load-locked,sharing=locked,target=/l \\\n\
             if [ -e /l/busy ]; then echo \"locked cache entered by two steps\" >&2; exit 1; fi && \\\n\
             touch /l/busy && sleep 0.1 && echo $N >> /l/log && rm /l/busy\n",
    );
    let kids: Vec<_> = (0..50)
        .map(|i| spawn_build(root.path(), ctx.path(), &["--build-arg", &format!("N={i}")]))
        .collect();
    let mut failed = Vec::new();
    for (i, kid) in kids.into_iter().enumerate() {
        let out = kid.wait_with_output().unwrap();
        if !out.status.success() {
            failed.push(format!("build {i}: {}", text(&out.stderr)));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");

    // What the shared and locked caches hold now, read by one more build.
    let reader = tempfile::tempdir().unwrap();
    write(
        reader.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\n\
         RUN --mount=type=cache,id=load-shared,sharing=shared,target=/s \\\n\
             --mount=type=cache,id=load-locked,sharing=locked,target=/l \\\n\
             cp /s/log /shared && cp /l/log /locked\n",
    );
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    ok(&manifold(
        root.path(),
        &[
            "build",
            "--progress=plain",
            "-o",
            &dest,
            reader.path().to_str().unwrap(),
        ],
    ));
    let all: std::collections::BTreeSet<String> = (0..50).map(|i| i.to_string()).collect();
    for (file, mode) in [("shared", "shared"), ("locked", "locked")] {
        let log = read(out.path(), file);
        let lines: Vec<String> = log.lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 50, "the {mode} cache saw every step:\n{log}");
        assert_eq!(
            lines.into_iter().collect::<std::collections::BTreeSet<_>>(),
            all
        );
    }
    // One directory each for the shared and locked caches; the private one had
    // several instances, as steps found it in use.
    let dirs = std::fs::read_dir(root.path().join("cache-mounts"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
        .count();
    assert!(
        dirs >= 4,
        "{dirs} cache directories: the private cache never had a second instance"
    );
    common::assert_clean(root.path());
}
