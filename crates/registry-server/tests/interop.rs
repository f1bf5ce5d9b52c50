//! manifold's registry against clients it did not write: skopeo and podman. (The
//! round trip with manifold's own client is in `crates/manifold/tests/registry_serve.rs`:
//! the client is a same-layer crate.)

mod common;

use std::process::Command;

use content::Store;

fn source() -> (tempfile::TempDir, Store, oci::Descriptor) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let lease = s.lease().unwrap();
    let idx = testkit::write_index(&s, &lease, &["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    s.set_name("src", &idx).unwrap();
    (d, s, idx)
}

fn run(tool: &str, args: &[&str]) -> String {
    testkit::require_tool(tool);
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_and_pulls() {
    let reg = common::start(false, None).await;
    let (d, src, idx) = source();
    let layout = d.path().join("oci");
    let dest = format!("docker://{}/skopeo/img:v1", reg.addr);
    run(
        "skopeo",
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:src", layout.display()),
            &dest,
        ],
    );
    let raw = run("skopeo", &["inspect", "--raw", "--tls-verify=false", &dest]);
    assert_eq!(raw.as_bytes(), src.read_document(&idx.digest).unwrap());
    let back = tempfile::tempdir().unwrap();
    run(
        "skopeo",
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:back", back.path().display()),
        ],
    );
    let pulled = Store::read_layout(back.path()).unwrap();
    assert_eq!(
        pulled.read_document(&idx.digest).unwrap(),
        src.read_document(&idx.digest).unwrap()
    );
    let tags = run(
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/skopeo/img", reg.addr),
        ],
    );
    assert!(tags.contains("\"v1\""), "{tags}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_pushes_and_pulls() {
    let reg = common::start(false, None).await;
    let (d, _src, _idx) = source();
    // podman names an image pulled from a layout after its path, which must be lowercase.
    let lower = std::env::temp_dir().join(format!("manifold-podman-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&lower);
    run(
        "cp",
        &[
            "-r",
            &d.path().join("oci").display().to_string(),
            &lower.display().to_string(),
        ],
    );
    let layout = format!("oci:{}:src", lower.display());
    let image = format!("{}/podman/img:v1", reg.addr);
    let store = tempfile::tempdir().unwrap();
    let root = format!("--root={}", store.path().join("root").display());
    let runroot = format!("--runroot={}", store.path().join("run").display());
    let podman = |rest: &[&str]| {
        let mut args = vec![root.as_str(), runroot.as_str(), "--storage-driver=vfs"];
        args.extend_from_slice(rest);
        run("podman", &args)
    };
    podman(&["pull", "--arch=amd64", &layout]);
    let id = podman(&["images", "--format", "{{.ID}}"]);
    let id = id.lines().next().expect("podman has the image").to_owned();
    podman(&[
        "push",
        "--tls-verify=false",
        &id,
        &format!("docker://{image}"),
    ]);
    podman(&["rmi", "--all", "--force"]);
    podman(&["pull", "--tls-verify=false", &image]);
    let listing = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    std::fs::remove_dir_all(&lower).unwrap();
    assert!(listing.contains(&image), "{listing}");
}
