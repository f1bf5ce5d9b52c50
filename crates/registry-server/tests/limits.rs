//! What one registry accepts: the largest blob (in one request or in chunks), the
//! upload sessions open at once, and a full disk, which fails an upload cleanly
//! without harming what other repositories hold.

mod common;

use oci::Digest;
use registry_server::Limits;

/// POST a new session; its `Location`.
async fn session(http: &reqwest::Client, addr: &str, repo: &str) -> reqwest::Response {
    http.post(format!("http://{addr}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap()
}

fn location(addr: &str, r: &reqwest::Response) -> String {
    let l = r.headers()["location"].to_str().unwrap();
    match l.starts_with("http") {
        true => l.to_owned(),
        false => format!("http://{addr}{l}"),
    }
}

/// Push `data` as one chunk and a final PUT; the final answer.
async fn push(http: &reqwest::Client, addr: &str, repo: &str, data: &[u8]) -> reqwest::Response {
    let r = session(http, addr, repo).await;
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let loc = location(addr, &r);
    let r = http.patch(&loc).body(data.to_vec()).send().await.unwrap();
    if !r.status().is_success() {
        return r;
    }
    let loc = location(addr, &r);
    let sep = if loc.contains('?') { '&' } else { '?' };
    http.put(format!("{loc}{sep}digest={}", Digest::sha256(data)))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_over_the_limit_are_refused_in_one_request_or_in_chunks() {
    let limits = Limits {
        max_blob_size: 1000,
        ..Limits::default()
    };
    let reg = common::start_on(tempfile::tempdir().unwrap(), limits, false, None).await;
    let http = reqwest::Client::new();
    let big = vec![7u8; 1001];
    // Monolithic, with its length declared.
    let r = http
        .post(format!(
            "http://{}/v2/a/blobs/uploads/?digest={}",
            reg.addr,
            Digest::sha256(&big)
        ))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("--max-blob-size"));
    // In chunks: 600 bytes pass, 600 more cross the limit and are refused; the
    // session keeps its first 600.
    let r = session(&http, &reg.addr, "a").await;
    let loc = location(&reg.addr, &r);
    let r = http.patch(&loc).body(vec![1u8; 600]).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = location(&reg.addr, &r);
    let r = http.patch(&loc).body(vec![2u8; 600]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let r = http.get(&loc).send().await.unwrap();
    assert_eq!(r.headers()["range"], "0-599");
    // At the limit is fine.
    let r = push(&http, &reg.addr, "a", &[3u8; 1000]).await;
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_past_the_limit_get_429_until_one_ends() {
    let limits = Limits {
        max_upload_sessions: 3,
        ..Limits::default()
    };
    let reg = common::start_on(tempfile::tempdir().unwrap(), limits, false, None).await;
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = session(&http, &reg.addr, "a").await;
        assert_eq!(r.status(), 202);
        open.push(location(&reg.addr, &r));
    }
    let r = session(&http, &reg.addr, "b").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("TOOMANYREQUESTS"));
    // Cancelling one makes room.
    let r = http.delete(&open[0]).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(session(&http, &reg.addr, "b").await.status(), 202);
}

/// The registry's root on a 16 MiB tmpfs: a 20 MiB upload fails with an error, the
/// space it took is given back, and the other repository's blob is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_an_upload_cleanly_and_harms_no_other_repository() {
    let root = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "manifold-test"])
        .arg(root.path())
        .status()
        .unwrap();
    assert!(mounted.success(), "this test needs root: it mounts a tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(root.path().to_owned());
    let reg = common::start_on(root, Limits::default(), false, None).await;
    let http = reqwest::Client::new();
    let kept = testkit::noise(512 * 1024, 1);
    assert_eq!(push(&http, &reg.addr, "other", &kept).await.status(), 201);

    let huge = testkit::noise(20 << 20, 2);
    let r = push(&http, &reg.addr, "big", &huge).await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_server_error(), "{status}: {body}");
    assert!(
        body.contains("No space left") || body.contains("space"),
        "the error says why: {body}"
    );

    // The other repository's blob is there and whole.
    let got = http
        .get(format!(
            "http://{}/v2/other/blobs/{}",
            reg.addr,
            Digest::sha256(&kept)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), kept.as_slice());
    // A failed chunk leaves nothing in its session, so a small push fits again.
    let small = testkit::noise(256 * 1024, 3);
    let r = push(&http, &reg.addr, "big", &small).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

/// A client that sends part of a request head and then nothing (slowloris) has its
/// connection closed after `header_read_timeout`; others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_ends_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = Limits {
        header_read_timeout: std::time::Duration::from_secs(1),
        ..Limits::default()
    };
    let reg = common::start_on(tempfile::tempdir().unwrap(), limits, false, None).await;
    let mut slow = tokio::net::TcpStream::connect(&reg.addr).await.unwrap();
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // Served meanwhile.
    let r = reqwest::get(format!("http://{}/v2/", reg.addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "the connection was not closed within 10 s");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

/// One client address may hold only so many sessions; another address (127.0.0.2,
/// another host on loopback) still gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_upload_session() {
    let limits = Limits {
        max_upload_sessions_per_client: 2,
        ..Limits::default()
    };
    let reg = common::start_on(tempfile::tempdir().unwrap(), limits, false, None).await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let (one, two) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    for _ in 0..2 {
        assert_eq!(session(&one, &reg.addr, "a").await.status(), 202);
    }
    let r = session(&one, &reg.addr, "a").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("127.0.0.1"));
    assert_eq!(session(&two, &reg.addr, "a").await.status(), 202);
}
