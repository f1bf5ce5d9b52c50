//! `imagetools keygen`, `sign` and `verify`: cosign's key-based layout against a real
//! registry (distribution). The signature also verifies with `openssl dgst -sha256
//! -verify` over the payload the registry serves; another key, a changed image and a
//! signature moved onto another image fail with errors that say which.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testkit::registry::{Auth, DistRegistry};

const MANIFOLD: &str = env!("CARGO_BIN_EXE_manifold");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn manifold(dir: &Path, args: &[&str]) -> Output {
    Command::new(MANIFOLD)
        .args(args)
        .current_dir(dir)
        .env("MANIFOLD_ROOT", dir.join("root"))
        .env("MANIFOLD_CONFIG", dir.join("config"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env_remove("MANIFOLD_BUILDER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `skopeo inspect --raw`, parsed.
fn raw(reference: &str) -> Value {
    let out = Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    serde_json::from_slice(ok(&out).as_bytes()).unwrap()
}

/// A blob of `repo` in the registry at `addr`, over plain HTTP.
fn blob(addr: &str, repo: &str, digest: &str) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = text(&resp[..split]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = resp[split + 4..].to_vec();
    assert_eq!(oci::Digest::sha256(&body).to_string(), digest, "{head}");
    body
}

fn push_image(dir: &Path, target: &str, content: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM localhost/busybox:test\nCOPY hello /hello\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("hello"), content).unwrap();
    ok(&manifold(
        dir,
        &[
            "build",
            "--push",
            "-t",
            target,
            ctx.path().to_str().unwrap(),
        ],
    ));
}

#[test]
fn sign_verify_and_openssl_agree_and_changes_are_caught() {
    let reg = DistRegistry::start(Auth::Open);
    let dir = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(
        &dir.path().join("root"),
        "localhost/busybox:test",
        &["amd64"],
    );
    let d = dir.path();
    let image = format!("{}/signed/app:1", reg.addr);
    push_image(d, &image, "one\n");

    // Keys: the private one readable by its owner only; never overwritten.
    let keygen = manifold(d, &["imagetools", "keygen", "--output-key-prefix", "k"]);
    ok(&keygen);
    let mode = std::fs::metadata(d.join("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = manifold(d, &["imagetools", "keygen", "--output-key-prefix", "k"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("k.key exists"),
        "{}",
        text(&again.stderr)
    );

    ok(&manifold(
        d,
        &["imagetools", "sign", "--key", "k.key", &image],
    ));
    let verified = ok(&manifold(
        d,
        &["imagetools", "verify", "--key", "k.pub", &image],
    ));
    assert!(verified.starts_with("Verified OK: "), "{verified}");

    // The layout is cosign's: the tag sha256-<hex>.sig, a simple-signing layer whose
    // annotation is the signature; openssl verifies it over the payload.
    let listing = ok(&Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap());
    let image_digest = listing.trim().to_owned();
    assert!(verified.contains(&image_digest), "{verified}");
    let sig_tag = format!(
        "{}/signed/app:{}.sig",
        reg.addr,
        image_digest.replace(':', "-")
    );
    let m = raw(&sig_tag);
    let layer = &m["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = blob(&reg.addr, "signed/app", layer["digest"].as_str().unwrap());
    let payload_json: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        payload_json["critical"]["image"]["docker-manifest-digest"],
        image_digest.as_str()
    );
    assert_eq!(
        payload_json["critical"]["type"],
        "cosign container image signature"
    );
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    std::fs::write(d.join("payload.json"), &payload).unwrap();
    std::fs::write(d.join("sig.der"), &sig).unwrap();
    let openssl = Command::new(testkit::require_tool("openssl"))
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "k.pub",
            "-signature",
            "sig.der",
            "payload.json",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(ok(&openssl).trim(), "Verified OK");

    // Another key: named, and refused.
    ok(&manifold(
        d,
        &["imagetools", "keygen", "--output-key-prefix", "other"],
    ));
    let out = manifold(d, &["imagetools", "verify", "--key", "other.pub", &image]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not verify with this key"),
        "{}",
        text(&out.stderr)
    );

    // The tag now names a changed image: it has no signature.
    push_image(d, &image, "changed\n");
    let out = manifold(d, &["imagetools", "verify", "--key", "k.pub", &image]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("has no signature: there is no tag sha256-"),
        "{err}"
    );

    // The first image's signature copied onto the changed one: it names the first.
    let changed = ok(&Command::new(testkit::require_tool("skopeo"))
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap());
    let moved = format!(
        "{}/signed/app:{}.sig",
        reg.addr,
        changed.trim().replace(':', "-")
    );
    ok(&Command::new(testkit::require_tool("skopeo"))
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("docker://{sig_tag}"))
        .arg(format!("docker://{moved}"))
        .output()
        .unwrap());
    let out = manifold(d, &["imagetools", "verify", "--key", "k.pub", &image]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("it signs {image_digest}, not the image's")),
        "{err}"
    );

    // Signed as a referrer instead (manifold's registry has the referrers API;
    // distribution answers through the fallback tag): verify finds it either way.
    let own = testkit::registry::OwnRegistry::start(Path::new(MANIFOLD));
    for addr in [own.addr.as_str(), reg.addr.as_str()] {
        let image = format!("{addr}/signed/ref:1");
        push_image(d, &image, &format!("{addr}\n"));
        let out = manifold(d, &["imagetools", "verify", "--key", "k.pub", &image]);
        assert!(!out.status.success(), "{addr}: unsigned yet");
        let signed = manifold(
            d,
            &["imagetools", "sign", "--referrer", "--key", "k.key", &image],
        );
        ok(&signed);
        assert!(
            text(&signed.stderr).contains("(a referrer)"),
            "{}",
            text(&signed.stderr)
        );
        let verified = ok(&manifold(
            d,
            &["imagetools", "verify", "--key", "k.pub", &image],
        ));
        assert!(verified.starts_with("Verified OK: "), "{addr}: {verified}");
        let out = manifold(d, &["imagetools", "verify", "--key", "other.pub", &image]);
        assert!(!out.status.success(), "{addr}: another key");
    }

    // An encrypted cosign key is refused by name.
    std::fs::write(
        d.join("cosign.key"),
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = manifold(d, &["imagetools", "sign", "--key", "cosign.key", &image]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cosign.key: an encrypted key"),
        "{}",
        text(&out.stderr)
    );
}
