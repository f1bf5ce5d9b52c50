//! `manifold build --load` into a Docker Engine (Debian's 20.10 dockerd, private to
//! the test): docker lists the image under its tag and runs it, and a two-platform
//! build loads the host's platform. Needs root and dockerd.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use testkit::docker::Dockerd;

const BASE: &str = "localhost/busybox:load-test";

fn manifold(root: &Path, d: &Dockerd, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.config_dir())
        .env_remove("MANIFOLD_RUNTIME")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[track_caller]
fn ok(out: &Output) -> String {
    let all = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "manifold failed ({:?})\n{all}",
        out.status
    );
    all
}

#[test]
fn load_hands_the_image_to_docker_which_runs_it() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (runc, dockerd)"
    );
    testkit::require_tool("runc");
    let root = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(root.path(), BASE, &["amd64", "arm64"]);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {BASE}\nARG TARGETPLATFORM\nCOPY greeting.txt /\n\
             LABEL org.example.test=load\nCMD [\"cat\", \"/greeting.txt\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(ctx.path().join("greeting.txt"), "hello from manifold\n").unwrap();
    let d = Dockerd::start();
    let c = ctx.path().to_str().unwrap();

    let said = ok(&manifold(
        root.path(),
        &d,
        &[
            "build",
            "--progress=plain",
            "--load",
            "-t",
            "localhost/loaded:1",
            c,
        ],
    ));
    assert!(said.contains("into docker"), "{said}");
    let listed = d.ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        listed.lines().any(|l| l == "localhost/loaded:1"),
        "{listed}"
    );
    let label = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"org.example.test\"}} {{.Os}}/{{.Architecture}}",
        "localhost/loaded:1",
    ]);
    assert_eq!(label.trim(), "load linux/amd64");
    let ran = d.ok(&["run", "--rm", "--network", "none", "localhost/loaded:1"]);
    assert_eq!(ran, "hello from manifold\n");

    // Two platforms: the host's is loaded, and said so; the other stays in the store.
    let said = ok(&manifold(
        root.path(),
        &d,
        &[
            "build",
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "--load",
            "-t",
            "localhost/loaded:2",
            c,
        ],
    ));
    assert!(said.contains("loaded linux/amd64 into docker"), "{said}");
    let arch = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Architecture}}",
        "localhost/loaded:2",
    ]);
    assert_eq!(arch.trim(), "amd64");
    let ran = d.ok(&["run", "--rm", "--network", "none", "localhost/loaded:2"]);
    assert_eq!(ran, "hello from manifold\n");
}
