//! Hostile manifests and configs (SECURITY-CASES F.53): nulls, wrong JSON types,
//! a million layers under and over the size cap, missing `rootfs`. Each is an error
//! naming where it came from; none panics, and nothing of the image is stored.

mod common;

use common::*;
use oci::{Digest, media};
use registry::RegistryError;
use registry::ops::Platforms;
use serde_json::{Value, json};
use testkit::http::Server;

const A_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Manifest-shaped bodies the registry serves under the tag of the same name.
fn hostile_manifests() -> Vec<(&'static str, String, Vec<u8>)> {
    let config = json!({"mediaType": media::OCI_CONFIG, "digest": A_DIGEST, "size": 2});
    let layer = json!({"mediaType": media::OCI_LAYER_TAR, "digest": A_DIGEST, "size": 2});
    let manifest = |config: Value, layers: Value| {
        json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "config": config, "layers": layers})
            .to_string()
            .into_bytes()
    };
    let with_layer = |field: &str, v: Value| {
        let mut l = layer.clone();
        l[field] = v;
        manifest(config.clone(), json!([l]))
    };
    let m = media::OCI_MANIFEST.to_owned();
    let mut million = br#"{"schemaVersion":2,"config":"#.to_vec();
    million.extend_from_slice(config.to_string().as_bytes());
    million.extend_from_slice(br#","layers":["#);
    million.extend_from_slice(b"{},".repeat(1_000_000).as_slice());
    million.extend_from_slice(b"{}]}");
    assert!(million.len() < 4 << 20, "under the default manifest cap");
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    vec![
        ("null-document", m.clone(), b"null".to_vec()),
        ("empty-body", m.clone(), Vec::new()),
        ("not-json", m.clone(), b"\xff\xfe<html>".to_vec()),
        ("null-config", m.clone(), manifest(Value::Null, json!([]))),
        (
            "null-layers",
            m.clone(),
            manifest(config.clone(), Value::Null),
        ),
        (
            "layers-is-a-string",
            m.clone(),
            manifest(config.clone(), json!(A_DIGEST)),
        ),
        (
            "size-is-a-string",
            m.clone(),
            with_layer("size", json!("2")),
        ),
        ("negative-size", m.clone(), with_layer("size", json!(-1))),
        ("size-is-a-float", m.clone(), with_layer("size", json!(2.5))),
        (
            "digest-is-a-number",
            m.clone(),
            with_layer("digest", json!(12)),
        ),
        (
            "digest-escapes",
            m.clone(),
            with_layer("digest", json!("sha256:../../etc/passwd")),
        ),
        (
            "schema-version-is-a-string",
            m.clone(),
            json!({"schemaVersion": "2", "config": config, "layers": []})
                .to_string()
                .into_bytes(),
        ),
        (
            "manifests-is-an-object",
            media::OCI_INDEX.to_owned(),
            json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": {}})
                .to_string()
                .into_bytes(),
        ),
        ("deeply-nested", m.clone(), deep),
        ("million-empty-layers", m, million),
    ]
}

#[tokio::test]
async fn hostile_manifests_are_errors_not_panics() {
    let img = image();
    let mut files = image_files(&img, "r", "good");
    for (tag, ctype, body) in hostile_manifests() {
        files.insert(format!("/v2/r/manifests/{tag}"), (ctype, body));
    }
    let server = static_server("127.0.0.1", files);
    let c = client();
    for (tag, _, _) in hostile_manifests() {
        let err = within(c.get_manifest(&at(&server, &format!("r:{tag}"))))
            .await
            .expect_err(tag);
        assert!(
            matches!(err, RegistryError::Document { .. }),
            "{tag}: expected a document error, got {err:?}"
        );
        assert!(
            err.to_string().contains(&format!("manifests/{tag}")),
            "{tag}: the error names what was fetched: {err}"
        );
    }
    // The client is none the worse for it.
    let ok = within(c.get_manifest(&at(&server, "r:good")))
        .await
        .unwrap();
    assert_eq!(ok.descriptor.digest, img.manifest.digest);
}

#[tokio::test]
async fn million_layer_manifest_over_the_cap_is_too_large() {
    // About 130 MB if it were all read; the client stops at its 4 MiB cap.
    let server = Server::start("127.0.0.1", |mut ex| {
        let layer = format!(
            r#"{{"mediaType":"{}","digest":"{A_DIGEST}","size":1}},"#,
            media::OCI_LAYER_TAR
        );
        let head = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{A_DIGEST}","size":1}},"layers":["#,
            media::OCI_MANIFEST,
            media::OCI_CONFIG
        );
        if ex
            .head(200, &[("Content-Type", media::OCI_MANIFEST)], None)
            .is_err()
            || ex.write(head.as_bytes()).is_err()
        {
            return;
        }
        let batch = layer.repeat(1000);
        for _ in 0..1000 {
            if ex.write(batch.as_bytes()).is_err() {
                return;
            }
        }
        let _ = ex.write(b"{}]}");
    });
    let err = within(client().get_manifest(&at(&server, "r:huge")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                what: "manifest",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Image configs a manifest may point at, each wrong in one way.
fn hostile_configs(valid: &Value) -> Vec<(&'static str, Value)> {
    let with = |key: &str, v: Value| {
        let mut c = valid.clone();
        c[key] = v;
        c
    };
    let mut missing_rootfs = valid.clone();
    missing_rootfs.as_object_mut().unwrap().remove("rootfs");
    vec![
        ("null-config", Value::Null),
        ("config-is-an-array", json!([])),
        ("missing-rootfs", missing_rootfs),
        ("null-rootfs", with("rootfs", Value::Null)),
        (
            "diff-ids-is-a-string",
            with("rootfs", json!({"type": "layers", "diff_ids": A_DIGEST})),
        ),
        (
            "fewer-diff-ids-than-layers",
            with("rootfs", json!({"type": "layers", "diff_ids": []})),
        ),
        (
            "more-diff-ids-than-layers",
            with(
                "rootfs",
                json!({"type": "layers", "diff_ids": [A_DIGEST, A_DIGEST]}),
            ),
        ),
        (
            "rootfs-type-is-not-layers",
            with("rootfs", json!({"type": "other", "diff_ids": [A_DIGEST]})),
        ),
        ("architecture-is-a-number", with("architecture", json!(7))),
        ("history-is-an-object", with("history", json!({}))),
    ]
}

#[tokio::test]
async fn hostile_configs_fail_the_pull_before_any_layer_is_fetched() {
    let img = image();
    let valid: Value = serde_json::from_slice(&img.config_bytes).unwrap();
    let manifest: Value = serde_json::from_slice(&img.manifest_bytes).unwrap();
    for (case, config) in hostile_configs(&valid) {
        let config_bytes = config.to_string().into_bytes();
        let config_digest = Digest::sha256(&config_bytes);
        let mut m = manifest.clone();
        m["config"] = json!({
            "mediaType": media::OCI_CONFIG,
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        });
        let m_bytes = m.to_string().into_bytes();
        let m_digest = Digest::sha256(&m_bytes);
        let mut files = Files::new();
        for path in [
            "/v2/r/manifests/v1".to_owned(),
            format!("/v2/r/manifests/{m_digest}"),
        ] {
            files.insert(path, (media::OCI_MANIFEST.into(), m_bytes.clone()));
        }
        files.insert(
            format!("/v2/r/blobs/{config_digest}"),
            ("application/octet-stream".into(), config_bytes),
        );
        let layer_path = format!("/v2/r/blobs/{}", img.layer.digest);
        files.insert(
            layer_path.clone(),
            ("application/octet-stream".into(), img.layer_bytes.clone()),
        );
        let server = static_server("127.0.0.1", files);
        let (_d, dst) = store();
        let lease = dst.lease().unwrap();
        let err = within(client().pull(&dst, &lease, &at(&server, "r:v1"), &Platforms::All))
            .await
            .expect_err(case);
        assert!(
            matches!(
                err,
                RegistryError::Document { .. } | RegistryError::Protocol { .. }
            ),
            "{case}: {err:?}"
        );
        assert!(
            err.to_string().contains(&config_digest.to_string()),
            "{case}: the error names the config: {err}"
        );
        assert!(!dst.contains(&m_digest), "{case}: manifest not stored");
        assert!(!dst.contains(&config_digest), "{case}: config not stored");
        assert!(
            server.requests().iter().all(|r| r.path() != layer_path),
            "{case}: no layer was fetched"
        );
    }
}
