//! The seed's workflow as one script (`scripts/demo.sh`): QEMU registration, base
//! images from Debian packages, manifold's own registry, a two-platform build pushed
//! behind one index, `imagetools inspect`, and each platform run by digest.

use std::process::Command;

#[test]
fn the_seed_workflow_runs_end_to_end() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (builds and runs containers)"
    );
    for tool in ["runc", "python3", "curl", "dpkg-deb"] {
        testkit::require_tool(tool);
    }
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/demo.sh"
        ))
        .env("MANIFOLD", env!("CARGO_BIN_EXE_manifold"))
        .env("MANIFOLD_ROOT", root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo.sh failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("Hello, my architecture is x86_64"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Hello, my architecture is aarch64"),
        "{stdout}"
    );
    // The index lists both platforms.
    assert!(
        stdout.contains("linux/amd64") && stdout.contains("linux/arm64"),
        "{stdout}"
    );
}
