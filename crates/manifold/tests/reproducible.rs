//! Reproducible by default: with `SOURCE_DATE_EPOCH`, a fixed Dockerfile and
//! context give one literal image digest on any state root, under any umask,
//! whatever the context files' mtimes, core count, or cache state.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The image digest of the build below (one platform: its manifest). Changing it needs a reason: an image format
/// change, written down in the commit.
const GOLDEN: &str = "sha256:74dc39ad48067ec890f1311ee969927854ba57c4e162d65ca0a174e93c0d7d23";

const DOCKERFILE: &str = "FROM scratch
COPY hello.txt /hello.txt
COPY tree/ /srv/tree/
COPY --chmod=755 tool.sh /usr/local/bin/tool
WORKDIR /work
ENV GREETING=hello
LABEL org.example.kind=golden
CMD [\"/usr/local/bin/tool\"]
";

fn context(dir: &Path, mtime: &str) {
    let files: [(&str, &str, u32); 5] = [
        ("Dockerfile", DOCKERFILE, 0o644),
        ("hello.txt", "hello, reproducible world\n", 0o644),
        ("tree/a.txt", "a\n", 0o644),
        ("tree/sub/b.txt", "b\n", 0o600),
        ("tool.sh", "#!/bin/sh\necho tool\n", 0o644),
    ];
    for (p, content, mode) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for d in ["tree", "tree/sub"] {
        std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let st = Command::new("find")
        .arg(dir)
        .args(["-exec", "touch", "-h", "-d", mtime, "{}", "+"])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Build `ctx` into `root` under `umask`, optionally on one core; returns the
/// index digest printed by `--progress=quiet`.
fn build(root: &Path, ctx: &Path, umask: &str, one_core: bool) -> String {
    let manifold = env!("CARGO_BIN_EXE_manifold");
    let pin = if one_core { "taskset -c 0 " } else { "" };
    let script = format!(
        "umask {umask}; exec {pin}{manifold} build --progress=quiet -t localhost/golden:1 {}",
        ctx.display()
    );
    let out: Output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_image_digest_is_the_same_everywhere() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (manifold build mounts snapshots)"
    );
    let ctx_a = tempfile::tempdir().unwrap();
    context(ctx_a.path(), "2001-02-03 04:05:06");
    let ctx_b = tempfile::tempdir().unwrap();
    context(ctx_b.path(), "2024-12-31 23:59:59");
    let root_a = tempfile::tempdir().unwrap();
    let root_b = tempfile::tempdir().unwrap();

    let cold = build(root_a.path(), ctx_a.path(), "022", false);
    assert_eq!(cold, GOLDEN, "cold build");
    let warm = build(root_a.path(), ctx_a.path(), "022", false);
    assert_eq!(warm, GOLDEN, "warm rebuild");
    let other = build(root_b.path(), ctx_b.path(), "077", true);
    assert_eq!(
        other, GOLDEN,
        "another root, umask 077, other mtimes, one core"
    );

    // An incremental build (one file changed, the rest cached) equals a cold one.
    std::fs::write(ctx_a.path().join("tree/a.txt"), "changed\n").unwrap();
    let incremental = build(root_a.path(), ctx_a.path(), "022", false);
    assert_ne!(incremental, GOLDEN);
    let root_c = tempfile::tempdir().unwrap();
    assert_eq!(
        build(root_c.path(), ctx_a.path(), "022", false),
        incremental
    );
}
