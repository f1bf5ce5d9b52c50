//! Outputs read by tools manifold did not write: OCI layouts (skopeo, umoci),
//! docker archives (skopeo), and a push to a real registry.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use export::{
    Compression, ExportError, write_docker_archive, write_oci_layout_dir, write_oci_layout_tar,
};
use oci::{Descriptor, Digest, ImageManifest, RawDocument};

fn blobs_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect()
}

fn expected_blobs(store: &content::Store, desc: &Descriptor) -> BTreeSet<String> {
    let mut out = BTreeSet::from([desc.digest.to_string()]);
    let idx = RawDocument::<oci::ImageIndex>::parse(store.read_document(&desc.digest).unwrap());
    let manifests = match idx {
        Ok(i) => i.value().manifests.clone(),
        Err(_) => vec![desc.clone()],
    };
    for m in manifests {
        out.insert(m.digest.to_string());
        let man =
            RawDocument::<ImageManifest>::parse(store.read_document(&m.digest).unwrap()).unwrap();
        out.insert(man.value().config.digest.to_string());
        out.extend(man.value().layers.iter().map(|l| l.digest.to_string()));
    }
    out
}

#[test]
fn an_oci_layout_holds_exactly_the_reachable_blobs() {
    let (d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_index(&store, &lease, &["linux/amd64", "linux/arm64"], true);
    // Something else in the store that must not be exported.
    build_image(&store, &lease, "linux/s390x", Compression::ZSTD, true);
    let dir = d.path().join("layout");
    write_oci_layout_dir(&store, &desc, &dir, Some("app:1")).unwrap();
    assert_eq!(blobs_in(&dir), expected_blobs(&store, &desc));
    let layout = content::Store::read_layout(&dir).unwrap();
    assert_valid(&layout, &desc);
    assert_eq!(layout.resolve("app:1").unwrap().digest, desc.digest);
    let e = write_oci_layout_dir(&store, &desc, &dir, None).unwrap_err();
    assert!(matches!(e, ExportError::DestinationNotEmpty { .. }), "{e}");
}

#[test]
fn skopeo_and_umoci_read_the_oci_layout() {
    testkit::require_tool("skopeo");
    testkit::require_tool("umoci");
    let (d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_index(&store, &lease, &["linux/amd64", "linux/arm64"], true);
    let dir = d.path().join("layout");
    write_oci_layout_dir(&store, &desc, &dir, Some("app")).unwrap();
    let target = format!("oci:{}:app", dir.display());
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", &target])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(Digest::sha256(&raw.stdout), desc.digest);
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
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
    let out = run(Command::new("umoci").arg("ls").arg("--layout").arg(&dir));
    assert_eq!(out.trim(), "app");
}

#[test]
fn the_layout_tar_matches_the_directory_and_is_deterministic() {
    let (d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_image(&store, &lease, "linux/amd64", Compression::GZIP, true);
    let a = write_oci_layout_tar(&store, &desc, Vec::new(), Some("app")).unwrap();
    let b = write_oci_layout_tar(&store, &desc, Vec::new(), Some("app")).unwrap();
    assert_eq!(a, b);
    let dir = d.path().join("unpacked");
    tar::Archive::new(&a[..]).unpack(&dir).unwrap();
    assert_eq!(blobs_in(&dir), expected_blobs(&store, &desc));
    let layout = content::Store::read_layout(&dir).unwrap();
    assert_valid(&layout, &desc);
    testkit::require_tool("skopeo");
    let out = run(Command::new("skopeo").args([
        "inspect",
        &format!("oci-archive:{}", {
            let p = d.path().join("layout.tar");
            std::fs::write(&p, &a).unwrap();
            p.display().to_string()
        }),
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], desc.digest.to_string());
}

#[test]
fn skopeo_reads_the_docker_archive() {
    testkit::require_tool("skopeo");
    let (d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_image(&store, &lease, "linux/arm64", Compression::ZSTD, false);
    let file = d.path().join("image.tar");
    let bytes =
        write_docker_archive(&store, &desc, &["example.com/app:1", "app"], Vec::new()).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let target = format!("docker-archive:{}", file.display());
    let out = run(Command::new("skopeo").args(["inspect", &target]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    let cfg = run(Command::new("skopeo").args(["inspect", "--config", &target]));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["config"]["Cmd"][0], "/app/hello");
    // The archive's own files.
    let mut names = Vec::new();
    let mut manifest = String::new();
    for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "manifest.json" {
            std::io::Read::read_to_string(&mut e, &mut manifest).unwrap();
        }
        names.push(name);
    }
    assert!(names.contains(&"repositories".to_owned()), "{names:?}");
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        m[0]["RepoTags"],
        serde_json::json!(["example.com/app:1", "app:latest"])
    );
    assert_eq!(
        write_docker_archive(&store, &desc, &["example.com/app:1", "app"], Vec::new()).unwrap(),
        bytes,
        "deterministic"
    );
}

#[test]
fn a_docker_archive_of_several_platforms_is_refused_with_a_hint() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_index(&store, &lease, &["linux/amd64", "linux/arm64"], true);
    let e = write_docker_archive(&store, &desc, &["app:1"], Vec::new()).unwrap_err();
    assert!(
        matches!(e, ExportError::MultiplePlatforms { count: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("hint:"), "{e}");
    // One platform behind an index is fine.
    let one = build_index(&store, &lease, &["linux/amd64"], true);
    write_docker_archive(&store, &one, &["app:1"], Vec::new()).unwrap();
    let e = write_docker_archive(&store, &one, &[&format!("app@{}", one.digest)], Vec::new())
        .unwrap_err();
    assert!(matches!(e, ExportError::DigestTag { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_sends_the_index_to_a_registry() {
    use testkit::registry::{Auth, DistRegistry};
    let reg = DistRegistry::start(Auth::Open);
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = build_index(&store, &lease, &["linux/amd64", "linux/arm64"], true);
    let client = registry::Client::new(
        registry::RegistryConfig::default(),
        Arc::new(registry::Anonymous),
    )
    .unwrap();
    let reference = oci::Reference::parse(&format!("{}/export/app:1", reg.addr)).unwrap();
    let stats = export::push(&client, &store, &desc, &reference)
        .await
        .unwrap();
    assert_eq!(stats.manifests, 3);
    testkit::require_tool("skopeo");
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(Digest::sha256(&out.stdout), desc.digest);
}
