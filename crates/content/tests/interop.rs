//! The store is a plain OCI image layout: tools manifold did not write read it.

use std::process::Command;

use content::Store;
use oci::{Platform, media};

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fixture() -> (tempfile::TempDir, Store, oci::Descriptor, oci::Descriptor) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    let lease = store.lease().unwrap();
    let index = testkit::write_index(&store, &lease, &["linux/amd64", "linux/arm64"]);
    store.set_name("example.com/multi:1.0", &index).unwrap();
    let single = testkit::write_image(
        &store,
        &lease,
        &Platform::parse("linux/arm/v7").unwrap(),
        "v7",
    );
    store.set_name("single", &single).unwrap();
    (dir, store, index, single)
}

#[test]
fn umoci_lists_the_names() {
    testkit::require_tool("umoci");
    let (_d, store, _, _) = fixture();
    let out = run(Command::new("umoci")
        .arg("ls")
        .arg("--layout")
        .arg(store.layout_dir()));
    let mut names: Vec<_> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    names.sort();
    assert_eq!(names, ["example.com/multi:1.0", "single"]);
}

#[test]
fn skopeo_inspects_a_single_platform_image() {
    testkit::require_tool("skopeo");
    let (_d, store, _, single) = fixture();
    let target = format!("oci:{}:single", store.layout_dir().display());
    let out = run(Command::new("skopeo").args(["inspect", &target]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], single.digest.to_string());
    assert_eq!(v["Architecture"], "arm");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    let cfg = run(Command::new("skopeo").args(["inspect", "--config", &target]));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["variant"], "v7");
    assert_eq!(cfg["config"]["Cmd"][0], "/hello");
}

#[test]
fn skopeo_reads_the_exact_index_bytes_and_picks_a_platform() {
    testkit::require_tool("skopeo");
    let (_d, store, index, _) = fixture();
    let target = format!("oci:{}:example.com/multi:1.0", store.layout_dir().display());
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", &target])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(raw.stdout, store.read_document(&index.digest).unwrap());
    assert_eq!(index.media_type, media::OCI_INDEX);
    let out = run(Command::new("skopeo").args([
        "--override-arch",
        "arm64",
        "--override-os",
        "linux",
        "inspect",
        &target,
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["Os"], "linux");
}
