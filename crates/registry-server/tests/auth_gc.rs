//! Basic auth, the access log, and GC next to uploads in progress.

mod common;

use std::process::Command;
use std::time::Duration;

use oci::Digest;
use registry_server::{Auth, Htpasswd};

fn htpasswd(dir: &std::path::Path) -> Htpasswd {
    let bin = testkit::require_tool("htpasswd");
    let out = Command::new(bin)
        .args(["-Bbn", "alice", "s3cret-pw"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = dir.join("htpasswd");
    std::fs::write(&path, out.stdout).unwrap();
    Htpasswd::load(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_required_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let reg = common::start(false, Some(Auth::Basic(htpasswd(dir.path())))).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v2/", reg.addr);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"manifold\"");
    let r = http
        .get(&url)
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(&url)
        .basic_auth("alice", Some("s3cret-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let log = reg.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert_eq!(lines[2]["user"], "alice");
    assert_eq!(lines[2]["status"], 200);
    assert_eq!(lines[0]["method"], "GET");
    assert_eq!(lines[0]["path"], "/v2/");
    assert!(lines[0]["user"].is_null());
    assert!(
        !log.contains("s3cret") && !log.contains("wrong") && !log.contains("Basic"),
        "{log}"
    );
}

/// Case 49: GC while an upload is in progress; HEAD never lies afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_uploads_in_progress_and_referenced_blobs() {
    let reg = common::start(false, None).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", reg.addr);
    // An orphan blob (linked, no manifest) and an upload half done.
    let orphan = b"orphan".to_vec();
    let od = Digest::sha256(&orphan);
    let r = http
        .post(format!("{base}/v2/gc/a/blobs/uploads/?digest={od}"))
        .body(orphan)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{base}/v2/gc/a/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let data = b"in progress upload".to_vec();
    let r = http
        .patch(format!("{base}{loc}"))
        .header("Content-Range", "0-8")
        .body(data[..9].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // With a grace period the orphan survives; with none it goes, the upload stays.
    let report = registry_server::gc(reg.root.path(), Duration::from_secs(3600)).unwrap();
    assert_eq!(report.blobs_removed, 0);
    let report = tokio::task::spawn_blocking({
        let root = reg.root.path().to_owned();
        move || registry_server::gc(&root, Duration::ZERO)
    });
    let report = report.await.unwrap().unwrap();
    assert_eq!(report.blobs_removed, 1);
    assert_eq!(report.links_pruned, 1);
    let r = http
        .head(format!("{base}/v2/gc/a/blobs/{od}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "HEAD of a collected blob");
    // Zero grace also purges idle sessions: that is what the grace period protects.
    assert_eq!(report.uploads_purged, 1);
    let r = http.get(format!("{base}{loc}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// A user the htpasswd file does not name is checked against a hash of the same cost,
/// so it costs one bcrypt verification as a known user with a wrong password does:
/// the time of a refusal does not tell which users exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_costs_a_bcrypt_verification_like_a_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let reg = common::start(false, Some(Auth::Basic(htpasswd(dir.path())))).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v2/", reg.addr);
    let attempt = |user: &'static str, pw: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let before = registry_server::bcrypt_calls();
            let t = std::time::Instant::now();
            let r = http
                .get(&url)
                .basic_auth(user, Some(pw))
                .send()
                .await
                .unwrap();
            (
                r.status(),
                registry_server::bcrypt_calls() - before,
                t.elapsed(),
            )
        }
    };
    let (status, calls, known) = attempt("alice", "wrong").await;
    assert_eq!((status.as_u16(), calls), (401, 1));
    let (status, calls, unknown) = attempt("mallory", "wrong").await;
    assert_eq!(
        (status.as_u16(), calls),
        (401, 1),
        "the unknown user was verified too"
    );
    // No header, or not Basic: refused before any bcrypt.
    let before = registry_server::bcrypt_calls();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(registry_server::bcrypt_calls(), before);
    eprintln!("refusal of a known user {known:?}, of an unknown one {unknown:?}");
}
