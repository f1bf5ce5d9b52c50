//! Docker Engine (Debian's 20.10 `dockerd`) against manifold's registry: a private
//! daemon per test loads a busybox image, pushes it, forgets it, pulls it back and
//! runs it; once anonymously, once through token auth after `docker login`.
//! (127.0.0.0/8 registries are insecure by default in docker: plain HTTP is fine.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use registry_server::{Auth, TokenAuth};
use testkit::docker::Dockerd;
use testkit::token::{ISSUER, SERVICE, TokenServer};

/// A docker archive of testkit's busybox image (amd64), written by skopeo from an OCI
/// layout, tagged `manifold-test/busybox:latest`.
fn busybox_archive(dir: &Path) -> PathBuf {
    let store = content::Store::open(dir).unwrap();
    let lease = store.lease().unwrap();
    let image = testkit::base::busybox_image(&store, &lease, "amd64");
    store.set_name("busybox", &image).unwrap();
    let archive = dir.join("busybox.tar");
    let out = Command::new(testkit::require_tool("skopeo"))
        .arg("copy")
        .arg(format!("oci:{}:busybox", dir.join("oci").display()))
        .arg(format!(
            "docker-archive:{}:manifold-test/busybox:latest",
            archive.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    archive
}

/// The `sha256:…` digest in `docker push`/`docker pull` output.
fn digest_in(out: &str) -> String {
    let at = out
        .find("sha256:")
        .unwrap_or_else(|| panic!("no digest in {out}"));
    out[at..at + 71].to_owned()
}

/// load, tag, push, forget, pull, run: the round trip both tests make.
fn round_trip(d: &Dockerd, addr: &str, repo: &str) -> String {
    let src = tempfile::tempdir().unwrap();
    let archive = busybox_archive(src.path());
    let loaded = d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("manifold-test/busybox:latest"), "{loaded}");
    let image = format!("{addr}/{repo}:v1");
    d.ok(&["tag", "manifold-test/busybox:latest", &image]);
    let pushed = d.ok(&["push", &image]);
    let digest = digest_in(&pushed);

    d.ok(&["rmi", &image, "manifold-test/busybox:latest"]);
    assert!(
        !d.docker(&["image", "inspect", &image]).status.success(),
        "the image is gone before the pull"
    );
    let pulled = d.ok(&["pull", &image]);
    assert!(pulled.contains(&digest), "{pulled}");
    let repo_digests = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &image,
    ]);
    assert!(repo_digests.contains(&digest), "{repo_digests}");
    let said = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "true && echo ran",
    ]);
    assert_eq!(said.trim(), "ran");
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pushes_pulls_and_runs() {
    let reg = common::start(false, None).await;
    let d = Dockerd::start();
    let digest = round_trip(&d, &reg.addr, "docker/busybox");

    // The registry serves what docker pushed, under the digest docker reported.
    let http = reqwest::Client::new();
    let r = http
        .get(format!(
            "http://{}/v2/docker/busybox/manifests/v1",
            reg.addr
        ))
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let body = r.bytes().await.unwrap();
    assert_eq!(oci::Digest::sha256(&body).to_string(), digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_logs_in_through_the_token_server() {
    let tokens = TokenServer::start("127.0.0.1", "docker-user", "docker-pw");
    let auth = TokenAuth::load(&tokens.realm(), SERVICE, ISSUER, &tokens.cert_path()).unwrap();
    let reg = common::start(false, Some(Auth::Token(auth))).await;
    let d = Dockerd::start();

    let src = tempfile::tempdir().unwrap();
    let archive = busybox_archive(src.path());
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    let image = format!("{}/private/busybox:v1", reg.addr);
    d.ok(&["tag", "manifold-test/busybox:latest", &image]);
    let refused = d.docker(&["push", &image]);
    let said = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(!refused.status.success(), "a push without login is refused");
    assert!(
        said.contains("unauthorized") || said.contains("authentication required"),
        "{said}"
    );
    d.ok(&["rmi", &image, "manifold-test/busybox:latest"]);

    let login = d.docker_with(
        &["login", "-u", "docker-user", "--password-stdin", &reg.addr],
        "docker-pw\n",
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    round_trip(&d, &reg.addr, "private/busybox");
    let asked = tokens.requests();
    assert!(
        asked.iter().any(|r| r.authorization
            && r.scopes
                .iter()
                .any(|s| s == "repository:private/busybox:push,pull")),
        "{asked:?}"
    );
}
