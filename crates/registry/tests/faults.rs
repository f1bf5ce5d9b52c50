//! The client against a misbehaving registry: an in-process HTTP/1.1 server
//! (`testkit::http`) that answers with faults the real registry never produces on
//! demand: busy answers, dropped connections, forged digests, endless bodies.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use oci::{Descriptor, Digest, media};
use registry::{BlobPush, RegistryError, RetryPolicy};
use testkit::http::{Exchange, Server};

fn manifest_server(
    image: &Image,
    answer: impl Fn(usize, Exchange) -> Option<Exchange> + Send + Sync + 'static,
) -> Server {
    let files = image_files(image, "r", "v1");
    let hits = AtomicUsize::new(0);
    Server::start("127.0.0.1", move |ex| {
        let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(ex) = answer(n, ex) {
            serve_file(ex, &files);
        }
    })
}

#[tokio::test]
async fn retries_503_with_and_without_retry_after_then_succeeds() {
    let img = image();
    let server = manifest_server(&img, |n, mut ex| {
        match n {
            1 => ex.respond(503, &[], b"busy"),
            2 => ex.respond(503, &[("Retry-After", "0")], b"busy"),
            _ => return Some(ex),
        }
        None
    });
    let got = within(client().get_manifest(&at(&server, "r:v1")))
        .await
        .unwrap();
    assert_eq!(got.descriptor.digest, img.manifest.digest);
    assert_eq!(server.requests().len(), 3, "two refusals, one success");
}

#[tokio::test]
async fn persistent_503_gives_up_after_the_configured_attempts() {
    let img = image();
    let server = manifest_server(&img, |_, mut ex| {
        ex.respond(503, &[], b"down for maintenance");
        None
    });
    let err = within(client().get_manifest(&at(&server, "r:v1")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert!(err.to_string().contains("down for maintenance"), "{err}");
    assert_eq!(server.requests().len(), fast_retries().attempts as usize);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let img = image();
    let server = manifest_server(&img, |n, mut ex| {
        if n == 1 {
            ex.respond(429, &[("Retry-After", "1")], b"slow down");
            return None;
        }
        Some(ex)
    });
    let mut c = client();
    c.retry = RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_secs(10),
    };
    let started = Instant::now();
    let got = within(c.get_manifest(&at(&server, "r:v1"))).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(got.descriptor.digest, img.manifest.digest);
    assert_eq!(server.requests().len(), 2);
    // The backoff alone would have waited about a millisecond.
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 was honoured ({waited:?})"
    );
}

/// A registry's upload endpoints for repository `r`, keeping what was received.
#[derive(Default)]
struct Uploads {
    data: Mutex<Vec<u8>>,
    verified: AtomicBool,
}

impl Uploads {
    fn range(&self) -> String {
        let len = self.data.lock().unwrap().len();
        // As distribution reports it: an empty upload is "0-0".
        format!("0-{}", len.saturating_sub(1))
    }

    /// Answer the upload protocol; `patch` decides about each PATCH first (it
    /// returns the exchange to accept it, or None after answering itself).
    fn handle(&self, mut ex: Exchange, patch: impl FnOnce(Exchange) -> Option<Exchange>) {
        let req = ex.request.clone();
        let location = "/v2/r/blobs/uploads/u1";
        match (req.method.as_str(), req.path()) {
            ("HEAD", p) if p.starts_with("/v2/r/blobs/") => ex.respond(404, &[], b""),
            ("POST", "/v2/r/blobs/uploads/") => {
                let _ = ex.body();
                ex.respond(202, &[("Location", location), ("Range", "0-0")], b"");
            }
            ("PATCH", p) if p == location => {
                let Some(mut ex) = patch(ex) else { return };
                let have = self.data.lock().unwrap().len();
                let start = req
                    .header("content-range")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<usize>().ok());
                if start != Some(have) {
                    let _ = ex.body();
                    ex.respond(416, &[("Range", &self.range())], b"wrong offset");
                    return;
                }
                let body = ex.body().unwrap_or_default();
                self.data.lock().unwrap().extend_from_slice(&body);
                ex.respond(
                    202,
                    &[("Location", location), ("Range", &self.range())],
                    b"",
                );
            }
            ("GET", p) if p == location => {
                ex.respond(
                    204,
                    &[("Location", location), ("Range", &self.range())],
                    b"",
                );
            }
            ("PUT", p) if p == location => {
                let _ = ex.body();
                let want = req.query_values("digest").pop().unwrap_or_default();
                let have = Digest::sha256(&self.data.lock().unwrap()).to_string();
                if want == have {
                    self.verified.store(true, Ordering::SeqCst);
                    ex.respond(201, &[("Docker-Content-Digest", &have)], b"");
                } else {
                    ex.respond(400, &[], b"digest invalid");
                }
            }
            _ => ex.respond(404, &[], b""),
        }
    }
}

/// A large blob in a fresh store.
fn big_blob() -> (tempfile::TempDir, content::Store, Descriptor) {
    let (d, s) = store();
    let lease = s.lease().unwrap();
    let desc = s
        .put_bytes(&lease, media::OCI_LAYER_TAR, &noise(3 << 20))
        .unwrap();
    (d, s, desc)
}

/// Drop the first PATCH after `cut` body bytes; the client must ask the upload
/// status and continue from there.
async fn upload_resumes_after_reset(cut: u64) {
    let (_d, src, blob) = big_blob();
    let uploads = Arc::new(Uploads::default());
    let server = {
        let (uploads, patches) = (uploads.clone(), AtomicUsize::new(0));
        Server::start("127.0.0.1", move |ex| {
            uploads.handle(ex, |mut ex| {
                if patches.fetch_add(1, Ordering::SeqCst) > 0 {
                    return Some(ex);
                }
                let got = ex.body_upto(cut).unwrap();
                uploads.data.lock().unwrap().extend_from_slice(&got);
                ex.close(); // mid-body, with unread data: a reset
                None
            });
        })
    };
    let mut c = client();
    c.monolithic_max = 1 << 20;
    let repo = c.repo(&at(&server, "r:x"));
    let pushed = within(c.push_blob(&repo, &blob, &src, None)).await.unwrap();
    assert_eq!(pushed, BlobPush::Uploaded);
    assert!(
        uploads.verified.load(Ordering::SeqCst),
        "the registry verified the digest"
    );

    let requests = server.requests();
    let patches: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 2, "{requests:#?}");
    assert_eq!(
        patches[1].header("content-range"),
        Some(format!("{cut}-{}", blob.size - 1).as_str()),
        "the second PATCH continues where the registry stopped"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path() == "/v2/r/blobs/uploads/u1"),
        "the client asked the upload status"
    );
}

#[tokio::test]
async fn upload_reset_mid_body_resumes_from_upload_status() {
    upload_resumes_after_reset((1 << 20) + 12345).await;
}

/// A registry that commits the blob at the final PUT and then loses the answer (the
/// connection drops), so a retried PUT finds the session gone (404
/// BLOB_UPLOAD_UNKNOWN): the client asks with a HEAD, finds the blob, and the push
/// succeeds. Monolithic and streamed uploads alike.
async fn final_put_answer_lost(size: usize, monolithic_max: u64) {
    let (_d, src) = store();
    let lease = src.lease().unwrap();
    let blob = src
        .put_bytes(&lease, media::OCI_LAYER_TAR, &noise(size))
        .unwrap();
    let uploads = Arc::new(Uploads::default());
    let committed = Arc::new(AtomicBool::new(false));
    let server = {
        let (uploads, committed) = (uploads.clone(), committed.clone());
        let location = "/v2/r/blobs/uploads/u1";
        Server::start("127.0.0.1", move |mut ex| {
            let req = ex.request.clone();
            match (req.method.as_str(), req.path()) {
                ("HEAD", p) if p.starts_with("/v2/r/blobs/sha256:") => {
                    let status = if committed.load(Ordering::SeqCst) {
                        200
                    } else {
                        404
                    };
                    ex.respond(status, &[], b"");
                }
                ("PUT", p) if p == location && committed.load(Ordering::SeqCst) => {
                    let _ = ex.body();
                    ex.respond(
                        404,
                        &[("Content-Type", "application/json")],
                        br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown"}]}"#,
                    );
                }
                ("PUT", p) if p == location => {
                    let body = ex.body().unwrap_or_default();
                    uploads.data.lock().unwrap().extend_from_slice(&body);
                    let want = req.query_values("digest").pop().unwrap_or_default();
                    let have = Digest::sha256(&uploads.data.lock().unwrap()).to_string();
                    assert_eq!(want, have);
                    committed.store(true, Ordering::SeqCst);
                    ex.close(); // committed, and the answer is lost
                }
                _ => uploads.handle(ex, Some),
            }
        })
    };
    let mut c = client();
    c.monolithic_max = monolithic_max;
    let repo = c.repo(&at(&server, "r:x"));
    let pushed = within(c.push_blob(&repo, &blob, &src, None)).await;
    assert_eq!(pushed.unwrap(), BlobPush::Uploaded);
    let requests = server.requests();
    assert!(committed.load(Ordering::SeqCst));
    assert!(
        requests.iter().filter(|r| r.method == "HEAD").count() >= 2,
        "the client asked whether the blob is there after the lost answer: {requests:#?}"
    );
}

#[tokio::test]
async fn a_lost_answer_to_a_monolithic_final_put_is_settled_by_a_head() {
    final_put_answer_lost(4096, 1 << 20).await;
}

#[tokio::test]
async fn a_lost_answer_to_a_streamed_final_put_is_settled_by_a_head() {
    final_put_answer_lost(2 << 20, 1 << 20).await;
}

#[tokio::test]
async fn upload_reset_before_any_byte_restarts_from_zero() {
    // Status "0-0" means nothing was received, not one byte.
    upload_resumes_after_reset(0).await;
}

#[tokio::test]
async fn expired_token_on_a_streamed_upload_is_refreshed() {
    let (_d, src, blob) = big_blob();
    let uploads = Arc::new(Uploads::default());
    // Tokens are "tok-N"; the first PATCH is refused as if its token had expired,
    // and only tokens issued after that refusal are good for PATCH.
    let issued = Arc::new(AtomicUsize::new(0));
    let refused_at = Arc::new(AtomicUsize::new(usize::MAX));
    let server = {
        let (uploads, issued, refused_at) = (uploads.clone(), issued.clone(), refused_at.clone());
        Server::start("127.0.0.1", move |mut ex| {
            let host = ex.request.header("host").unwrap_or_default().to_owned();
            let challenge = format!("Bearer realm=\"http://{host}/token\",service=\"faults\"");
            if ex.request.path() == "/token" {
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                let body = format!(r#"{{"token":"tok-{n}","expires_in":300}}"#);
                ex.respond(
                    200,
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
                return;
            }
            let token = ex
                .request
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer tok-"))
                .and_then(|n| n.parse::<usize>().ok());
            let Some(token) = token else {
                let _ = ex.body();
                ex.respond(401, &[("WWW-Authenticate", &challenge)], b"");
                return;
            };
            // Until the first refusal every token is "expired" (refused_at = MAX).
            if ex.request.method == "PATCH" && token <= refused_at.load(Ordering::SeqCst) {
                refused_at.store(issued.load(Ordering::SeqCst), Ordering::SeqCst);
                let _ = ex.body(); // read it all, so the 401 arrives intact
                ex.respond(
                    401,
                    &[(
                        "WWW-Authenticate",
                        &format!("{challenge},error=\"invalid_token\""),
                    )],
                    b"",
                );
                return;
            }
            uploads.handle(ex, Some);
        })
    };
    let mut c = client();
    c.monolithic_max = 1 << 20;
    let repo = c.repo(&at(&server, "r:x"));
    let pushed = within(c.push_blob(&repo, &blob, &src, None)).await.unwrap();
    assert_eq!(pushed, BlobPush::Uploaded);
    assert!(uploads.verified.load(Ordering::SeqCst));
    let patches: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(
        patches.len(),
        2,
        "refused once, sent again with a new token"
    );
    assert_ne!(
        patches[0].header("authorization"),
        patches[1].header("authorization")
    );
}

#[tokio::test]
async fn blob_that_does_not_match_its_digest_is_rejected_and_not_stored() {
    let img = image();
    let mut files = image_files(&img, "r", "v1");
    let mut forged = img.layer_bytes.clone();
    forged[100] ^= 0xff; // same size, other bytes
    files.insert(
        format!("/v2/r/blobs/{}", img.layer.digest),
        ("application/octet-stream".into(), forged),
    );
    let server = static_server("127.0.0.1", files);
    let c = client();
    let (_d, dst) = store();
    let lease = dst.lease().unwrap();

    let repo = c.repo(&at(&server, "r:v1"));
    let err = within(c.fetch_blob(&repo, &img.layer, &dst, &lease))
        .await
        .unwrap_err();
    match &err {
        RegistryError::DigestMismatch { expected, url, .. } => {
            assert_eq!(expected, &img.layer.digest);
            assert!(url.contains(&server.addr()), "{err}");
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_eq!(
        stored_files(&dst),
        Vec::<String>::new(),
        "nothing stored, nothing left in ingest"
    );

    // Through a pull: the manifest is not stored either.
    let err = within(c.pull(
        &dst,
        &lease,
        &at(&server, "r:v1"),
        &registry::ops::Platforms::All,
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(!dst.contains(&img.layer.digest));
    assert!(!dst.contains(&img.manifest.digest));
    assert!(
        std::fs::read_dir(dst.root().join("ingest"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn forged_docker_content_digest_on_a_tag_is_rejected() {
    let img = image();
    let bytes = img.manifest_bytes.clone();
    let forged = Digest::sha256(b"some other manifest").to_string();
    let server = Server::start("127.0.0.1", move |mut ex| {
        ex.respond(
            200,
            &[
                ("Content-Type", media::OCI_MANIFEST),
                ("Docker-Content-Digest", &forged),
            ],
            &bytes,
        );
    });
    let err = within(client().get_manifest(&at(&server, "r:v1")))
        .await
        .unwrap_err();
    match err {
        RegistryError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(
                expected.to_string(),
                Digest::sha256(b"some other manifest").to_string()
            );
            assert_eq!(actual, img.manifest.digest);
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn pull_by_digest_rejects_other_bytes_with_a_forged_header() {
    // SECURITY-CASES F.54: the registry answers a digest with other bytes and
    // claims, in Docker-Content-Digest, that they are the requested ones.
    let img = image();
    let wanted = img.manifest.digest.clone();
    let other = img.config_bytes.clone();
    let claim = wanted.to_string();
    let server = Server::start("127.0.0.1", move |mut ex| {
        ex.respond(
            200,
            &[
                ("Content-Type", media::OCI_MANIFEST),
                ("Docker-Content-Digest", &claim),
            ],
            &other,
        );
    });
    let (_d, dst) = store();
    let lease = dst.lease().unwrap();
    let by_digest = at(&server, &format!("r@{wanted}"));
    let err = within(client().pull(&dst, &lease, &by_digest, &registry::ops::Platforms::All))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::DigestMismatch { expected, .. } if *expected == wanted),
        "{err:?}"
    );
    assert_eq!(stored_files(&dst), Vec::<String>::new());
}

/// Answer with a head declaring `len` (or nothing) and stream `chunk` until the
/// client goes away or `len` bytes were sent.
fn endless(mut ex: Exchange, status: u16, ctype: &str, len: Option<u64>, chunk: &[u8]) {
    if ex.head(status, &[("Content-Type", ctype)], len).is_err() {
        return;
    }
    let mut sent = 0u64;
    while sent < len.unwrap_or(1 << 30) && ex.write(chunk).is_ok() {
        sent += chunk.len() as u64;
    }
}

#[tokio::test]
async fn oversized_error_body_is_capped() {
    let server = Server::start("127.0.0.1", |ex| {
        endless(ex, 404, "text/plain", Some(1 << 30), &[b'x'; 64 << 10]);
    });
    let mut c = client();
    c.limits.error_body = 100;
    let err = within(c.get_manifest(&at(&server, "r:v1")))
        .await
        .unwrap_err();
    match err {
        RegistryError::Http { status, body, .. } => {
            assert_eq!(status, 404);
            assert_eq!(body, "x".repeat(100), "the body is cut at the cap");
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_manifest_is_too_large() {
    let server = Server::start("127.0.0.1", |ex| {
        let declared = ex.request.path().ends_with("/sized").then_some(1 << 30);
        endless(ex, 200, media::OCI_MANIFEST, declared, &[b' '; 64 << 10]);
    });
    let mut c = client();
    c.limits.manifest = 4096;
    for tag in ["sized", "unsized"] {
        let err = within(c.get_manifest(&at(&server, &format!("r:{tag}"))))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::TooLarge {
                    what: "manifest",
                    cap: 4096,
                    ..
                }
            ),
            "{tag}: {err:?}"
        );
    }
}

#[tokio::test]
async fn oversized_token_response_is_too_large() {
    let server = Server::start("127.0.0.1", |mut ex| {
        if ex.request.path() == "/token" {
            endless(ex, 200, "application/json", None, &[b' '; 64 << 10]);
            return;
        }
        let host = ex.request.header("host").unwrap_or_default().to_owned();
        let challenge = format!("Bearer realm=\"http://{host}/token\",service=\"faults\"");
        ex.respond(401, &[("WWW-Authenticate", &challenge)], b"");
    });
    let mut c = client();
    c.limits.token_body = 1024;
    let err = within(c.get_manifest(&at(&server, "r:v1")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                what: "token response",
                cap: 1024,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Serve `blob`: the first GET is cut after `cut` bytes; later ones honour
/// `Range` when `ranges` is set, else send everything again.
fn dropping_blob_server(blob: Vec<u8>, cut: usize, ranges: bool) -> Server {
    let hits = AtomicUsize::new(0);
    Server::start("127.0.0.1", move |mut ex| {
        let n = hits.fetch_add(1, Ordering::SeqCst);
        let len = blob.len();
        if n == 0 {
            if ex.head(200, &[], Some(len as u64)).is_ok() {
                let _ = ex.write(&blob[..cut]);
            }
            ex.close();
            return;
        }
        let from = ex
            .request
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse::<usize>().ok());
        match from {
            Some(from) if ranges && from < len => {
                let cr = format!("bytes {from}-{}/{len}", len - 1);
                ex.respond(206, &[("Content-Range", &cr)], &blob[from..]);
            }
            _ => ex.respond(200, &[], &blob),
        }
    })
}

#[tokio::test]
async fn blob_download_dropped_mid_body_resumes_with_range() {
    let bytes = noise(300_000);
    let desc = Descriptor::new(
        media::OCI_LAYER_TAR,
        Digest::sha256(&bytes),
        bytes.len() as u64,
    );
    let server = dropping_blob_server(bytes, 100_000, true);
    let c = client();
    let (_d, dst) = store();
    let lease = dst.lease().unwrap();
    let repo = c.repo(&at(&server, "r:v1"));
    within(c.fetch_blob(&repo, &desc, &dst, &lease))
        .await
        .unwrap();
    assert!(dst.contains(&desc.digest));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0].header("range"), None);
    assert_eq!(requests[1].header("range"), Some("bytes=100000-"));
}

#[tokio::test]
async fn blob_download_restarts_when_the_server_ignores_range() {
    let bytes = noise(300_000);
    let desc = Descriptor::new(
        media::OCI_LAYER_TAR,
        Digest::sha256(&bytes),
        bytes.len() as u64,
    );
    let server = dropping_blob_server(bytes, 100_000, false);
    let c = client();
    let (_d, dst) = store();
    let lease = dst.lease().unwrap();
    let repo = c.repo(&at(&server, "r:v1"));
    within(c.fetch_blob(&repo, &desc, &dst, &lease))
        .await
        .unwrap();
    assert!(dst.contains(&desc.digest), "the whole blob again, verified");
    assert_eq!(server.requests().len(), 2);
}

/// A registry that answers every manifest PUT with 500: the client retries each a
/// bounded number of times, then fails with an error that names the manifest's URL
/// and the status; the index under the tag is never put, so no tag points at an
/// index whose manifests are missing.
#[tokio::test]
async fn manifest_puts_answered_500_fail_bounded_and_leave_no_tag() {
    let (_d, src) = store();
    let lease = src.lease().unwrap();
    let index = testkit::write_index(&src, &lease, &["linux/amd64", "linux/arm64"]);
    let server = Server::start("127.0.0.1", |mut ex| {
        let req = ex.request.clone();
        let _ = ex.body();
        match (req.method.as_str(), req.path()) {
            // Every blob is there already.
            ("HEAD", p) if p.contains("/blobs/") => ex.respond(200, &[], b""),
            ("PUT", p) if p.contains("/manifests/") => ex.respond(
                500,
                &[("Content-Type", "application/json")],
                br#"{"errors":[{"code":"UNKNOWN","message":"storage backend down"}]}"#,
            ),
            _ => ex.respond(404, &[], b""),
        }
    });
    let c = client();
    let target = at(&server, "r:v1");
    let err = within(c.push(&src, &index, &target, None))
        .await
        .expect_err("the push fails");
    let msg = format!("{err:#}");
    assert!(msg.contains("/v2/r/manifests/"), "{msg}");
    assert!(msg.contains("500"), "{msg}");
    let puts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    // The two platform manifests, each tried at most `attempts` times; never the tag.
    assert!(
        !puts.is_empty() && puts.len() <= 2 * c.retry.attempts as usize,
        "{puts:#?}"
    );
    assert!(
        puts.iter().all(|r| r.path() != "/v2/r/manifests/v1"),
        "the tag was put: {puts:#?}"
    );
}
