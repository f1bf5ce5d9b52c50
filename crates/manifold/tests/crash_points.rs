//! Crash points (`content::crash`, debug builds only): a build, or a build that
//! pushes, stopped at each named point as a power cut or `kill -9` would stop it
//! (the process aborts there), leaves a state root that `fsck` finds clean, and the
//! same build run again succeeds with the image digest an uninterrupted build gives.
//! Needs root and runc.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{all_output, root_with_base, text, write};
use testkit::registry::{Auth, DistRegistry};

const POINTS: [&str; 6] = [
    "blob-renamed",
    "write:index.json",
    "unpack",
    "export",
    "cache-record",
    "push",
];

fn build(root: &Path, ctx: &Path, tag: &str, push: bool, crash: Option<&str>) -> Output {
    let iid = root.join("iid");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_manifold"));
    cmd.args(["build", "--progress=plain"])
        .args(["--build-arg", "SOURCE_DATE_EPOCH=1700000000"])
        .args(["-t", tag])
        .arg("--iidfile")
        .arg(&iid)
        .arg(ctx)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env_remove("MANIFOLD_BUILDER")
        .env_remove("MANIFOLD_CRASH_AT")
        .stdin(Stdio::null());
    if push {
        // Without the default provenance, a pushed build is the manifest the
        // unpushed reference build makes.
        cmd.args(["--push", "--provenance=false"]);
    }
    if let Some(point) = crash {
        cmd.env("MANIFOLD_CRASH_AT", point);
    }
    cmd.output().unwrap()
}

/// Undo what an aborted process left mounted under `root`.
fn unmount_below(root: &Path) {
    for line in common::mounts_below(root).iter().rev() {
        if let Some(point) = line.split(' ').nth(4) {
            let _ = Command::new("umount").args(["-l", point]).output();
        }
    }
}

#[test]
fn a_build_stopped_at_each_crash_point_leaves_a_clean_root_and_finishes_next_time() {
    testkit::require_root_and_runc();
    let reg = DistRegistry::start(Auth::Open);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo made > /made\nCOPY f /f\n",
    );
    write(ctx.path(), "f", "file\n");
    // What an uninterrupted build gives.
    let reference = root_with_base();
    let out = build(
        reference.path(),
        ctx.path(),
        "localhost/crash:1",
        false,
        None,
    );
    assert!(out.status.success(), "{}", all_output(&out));
    let want = std::fs::read_to_string(reference.path().join("iid")).unwrap();

    for point in POINTS {
        let push = point == "push";
        let tag = match push {
            true => format!("{}/crash/img:1", reg.addr),
            false => "localhost/crash:1".to_owned(),
        };
        let root = root_with_base();
        let out = build(root.path(), ctx.path(), &tag, push, Some(point));
        unmount_below(root.path());
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(6),
            "{point}: the build did not stop there (SIGABRT):\n{}",
            all_output(&out)
        );
        let fsck = common::manifold(root.path(), &["fsck"]);
        assert!(
            fsck.status.success(),
            "{point}: fsck after the crash:\n{}",
            all_output(&fsck)
        );
        let again = build(root.path(), ctx.path(), &tag, push, None);
        unmount_below(root.path());
        assert!(
            again.status.success(),
            "{point}: the build after the crash:\n{}",
            all_output(&again)
        );
        let got = std::fs::read_to_string(root.path().join("iid")).unwrap();
        assert_eq!(got, want, "{point}: {}", text(&again.stderr));
        let fsck = common::manifold(root.path(), &["fsck"]);
        assert!(fsck.status.success(), "{point}: {}", all_output(&fsck));
    }
}
