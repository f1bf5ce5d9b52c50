//! `manifold run` with real runc (and real QEMU for a foreign platform). Needs root.

use std::path::Path;
use std::process::{Command, Output};

use content::Store;
use oci::{ImageIndex, RawDocument, Reference, media};
use registry::{Anonymous, Client, RegistryConfig};
use testkit::registry::{Auth, DistRegistry};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it runs containers with runc)"
    );
}

fn manifold(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("DOCKER_CONFIG", root.join("docker"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn runs_a_local_image_with_output_and_exit_code() {
    require_root();
    testkit::require_tool("runc");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let img = testkit::base::busybox_image(&store, &lease, "amd64");
    store.set_name("localhost/busybox:test", &img).unwrap();
    drop(lease);

    let out = manifold(
        dir.path(),
        &[
            "run",
            "--rm",
            "localhost/busybox:test",
            "sh",
            "-c",
            "echo out; echo err >&2; id -u; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n0\n");
    assert_eq!(text(&out.stderr), "err\n");

    // The container's writes are discarded: a second run does not see them.
    let out = manifold(
        dir.path(),
        &[
            "run",
            "localhost/busybox:test",
            "sh",
            "-c",
            "touch /left-behind",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = manifold(
        dir.path(),
        &[
            "run",
            "localhost/busybox:test",
            "test",
            "-e",
            "/left-behind",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    let missing = manifold(
        dir.path(),
        &["run", "localhost/busybox:test", "/no/such/binary"],
    );
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("/no/such/binary"),
        "{}",
        text(&missing.stderr)
    );
}

/// `IMAGE@sha256:<manifest digest>` runs that platform's image without --platform,
/// under QEMU when it is foreign, as the seed's `docker run` does.
#[test]
fn runs_a_foreign_platform_by_manifest_digest_from_a_registry() {
    require_root();
    testkit::require_tool("runc");
    let reg = DistRegistry::start(Auth::Open);
    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let lease = src.lease().unwrap();
    let amd = testkit::base::busybox_image(&src, &lease, "amd64");
    let arm = testkit::base::busybox_image(&src, &lease, "arm64");
    let index = RawDocument::from_value(ImageIndex {
        manifests: vec![amd.clone(), arm.clone()],
        ..ImageIndex::new()
    });
    let idx = src
        .put_bytes(&lease, media::OCI_INDEX, index.bytes())
        .unwrap();
    let name = format!("{}/hello:latest", reg.addr);
    let client = Client::new(RegistryConfig::default(), std::sync::Arc::new(Anonymous)).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.push(&src, &idx, &Reference::parse(&name).unwrap(), None))
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    // Native by tag: the host's platform.
    let out = manifold(root.path(), &["run", &name, "uname", "-m"]);
    assert_eq!(text(&out.stdout), "x86_64\n", "{}", text(&out.stderr));

    // Foreign by digest: QEMU through binfmt_misc, registered if needed.
    let binfmt =
        testkit::binfmt::Guard::ensure(Path::new(env!("CARGO_BIN_EXE_manifold")), &["arm64"]);
    let by_digest = format!("{}/hello@{}", reg.addr, arm.digest);
    let out = manifold(root.path(), &["run", &by_digest, "uname", "-m"]);
    assert_eq!(text(&out.stdout), "aarch64\n", "{}", text(&out.stderr));
    let out = manifold(
        root.path(),
        &["run", "--platform", "linux/arm64", &name, "uname", "-m"],
    );
    assert_eq!(text(&out.stdout), "aarch64\n", "{}", text(&out.stderr));
    drop(binfmt);

    let out = manifold(
        root.path(),
        &["run", "--platform", "linux/s390x", &name, "true"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no image for platform linux/s390x"),
        "{}",
        text(&out.stderr)
    );
}
