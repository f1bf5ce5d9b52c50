//! `manifold history`: each build on a root is recorded with its request (secrets
//! as digests only), outcome, cache hits, outputs and log; `ls`, `inspect`, `logs`
//! and `rm` read and forget them.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BASE: &str = "localhost/busybox:test";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn manifold(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("HISTORY_TEST_TOKEN", "hunter2-secret-bytes")
        .env_remove("MANIFOLD_BUILDER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn grep_dir(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            grep_dir(&p, needle)
        } else {
            std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        }
    })
}

#[test]
fn builds_are_recorded_listed_inspected_and_forgotten() {
    testkit::require_root_and_runc();
    let root = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(root.path(), BASE, &["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    let app = ctx.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "FROM localhost/busybox:test\n\
         RUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo built > /built\n",
    )
    .unwrap();
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--progress=plain",
            "--secret",
            "id=tok,env=HISTORY_TEST_TOKEN",
            "--build-arg",
            "VERSION=1.2",
            "-t",
            "localhost/history:1",
        ];
        args.extend_from_slice(extra);
        args.push(app.to_str().unwrap());
        manifold(root.path(), &args)
    };
    ok(&build(&[]));
    let failed = build(&["--target", "nope"]);
    assert!(!failed.status.success());

    let listed: serde_json::Value = serde_json::from_str(&ok(&manifold(
        root.path(),
        &["history", "ls", "--format", "json"],
    )))
    .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["status"], "failed");
    assert_eq!(listed[0]["name"], "app (nope)");
    assert_eq!(listed[1]["status"], "completed");
    assert_eq!(
        listed[1]["request"]["options"]["build_args"][0][0],
        "VERSION"
    );
    let image = listed[1]["image"].as_str().unwrap().to_owned();
    let table = ok(&manifold(root.path(), &["history", "ls"]));
    assert!(table.starts_with("BUILD ID"), "{table}");
    assert!(
        table.contains("Completed") && table.contains("Error"),
        "{table}"
    );

    // The secret reached the step (it succeeded) but never the history: only its
    // digest is there.
    assert!(!grep_dir(
        &root.path().join("history"),
        "hunter2-secret-bytes"
    ));
    let digest = oci::Digest::sha256(b"hunter2-secret-bytes").to_string();
    assert_eq!(listed[1]["request"]["secrets"]["tok"], digest.as_str());

    let shown = ok(&manifold(root.path(), &["history", "inspect", "^1"]));
    assert!(shown.contains(&format!("Image:       {image}")), "{shown}");
    assert!(shown.contains("VERSION=1.2"), "{shown}");
    let shown = ok(&manifold(root.path(), &["history", "inspect"]));
    assert!(shown.contains("Error:"), "{shown}");
    let prefix = &listed[1]["reference"].as_str().unwrap()[..8];
    let log = ok(&manifold(root.path(), &["history", "logs", prefix]));
    assert!(log.contains("RUN --mount=type=secret"), "{log}");
    assert!(log.contains("DONE") || log.contains("CACHED"), "{log}");

    let missing = manifold(root.path(), &["history", "inspect", "zzzz"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("no build \"zzzz\""),
        "{}",
        text(&missing.stderr)
    );
    ok(&manifold(root.path(), &["history", "rm", "^0"]));
    let left: serde_json::Value = serde_json::from_str(&ok(&manifold(
        root.path(),
        &["history", "ls", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(left.as_array().unwrap().len(), 1);
    ok(&manifold(root.path(), &["history", "rm", "--all"]));
    let left: serde_json::Value = serde_json::from_str(&ok(&manifold(
        root.path(),
        &["history", "ls", "--format", "json"],
    )))
    .unwrap();
    assert!(left.as_array().unwrap().is_empty());

    // A failed step's output is in its log.
    std::fs::write(
        app.join("Dockerfile"),
        "FROM localhost/busybox:test\nRUN echo boom-output-here && exit 3\n",
    )
    .unwrap();
    assert!(!build(&[]).status.success());
    let log = ok(&manifold(root.path(), &["history", "logs"]));
    assert!(log.contains("boom-output-here"), "{log}");
    let shown = ok(&manifold(root.path(), &["history", "inspect"]));
    assert!(shown.contains("Status:      Error"), "{shown}");

    // [history] max-entries bounds the count.
    std::fs::create_dir_all(root.path().join("config")).unwrap();
    std::fs::write(
        root.path().join("config/config.toml"),
        "[history]\nmax-entries = 2\nmax-age = \"1h\"\n",
    )
    .unwrap();
    for _ in 0..3 {
        let _ = build(&[]);
    }
    let left: serde_json::Value = serde_json::from_str(&ok(&manifold(
        root.path(),
        &["history", "ls", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(left.as_array().unwrap().len(), 2);
}
