//! Load: 50 `manifold build` processes at once on one state root, all building the
//! same steps. Each shared step runs once (counted by a wrapping runtime), every
//! build succeeds with the same image, and no process's peak memory grows with the
//! crowd. Needs root and runc.

mod common;

use std::process::{Command, Stdio};

use common::{root_with_base, text, write};

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
