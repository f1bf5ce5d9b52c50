//! A registry that stops answering: every wait is bounded by `Limits::read_timeout`,
//! except a streamed upload body, which may take as long as its producer; its
//! answer is timed from the body's end.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use oci::{Digest, Reference};
use registry::RegistryError;
use testkit::http::{Exchange, Server};
use testkit::registry::{Auth, DistRegistry};

const WAIT: Duration = Duration::from_millis(300);

fn client() -> registry::Client {
    let mut c = common::client();
    c.limits.read_timeout = WAIT;
    c.retry.attempts = 1;
    c
}

/// A "registry" that starts uploads to repository `name` and hands every other
/// request to `rest`.
fn upload_server(name: &'static str, rest: impl Fn(Exchange) + Send + Sync + 'static) -> Server {
    Server::start("127.0.0.1", move |mut ex| {
        if ex.request.method == "POST" {
            let location = format!("/v2/{name}/blobs/uploads/1");
            ex.respond(202, &[("Location", location.as_str())], b"");
            return;
        }
        rest(ex);
    })
}

/// Upload `body` to repository `name` of `server`: the PATCH is reported stalled;
/// how long that took.
async fn patch_stalls(
    server: &Server,
    name: &str,
    body: impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Duration {
    let c = client();
    let repo = c.repo(&Reference::parse(&format!("{}/{name}:1", server.addr())).unwrap());
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let err = c.upload_stream(&repo, body, rx).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Stalled { method, .. } if method == "PATCH"),
        "{err:?}"
    );
    started.elapsed()
}

/// A body of `n` chunks, one every `every`.
fn slow_body(
    n: u8,
    every: Duration,
) -> (
    impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    Vec<u8>,
) {
    let chunks: Vec<Bytes> = (0..n).map(|i| Bytes::from(vec![i; 4096])).collect();
    let all = chunks.concat();
    let body = futures_util::stream::unfold(chunks.into_iter(), move |mut it| async move {
        tokio::time::sleep(every).await;
        it.next().map(|c| (Ok(c), it))
    });
    (body, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_answers_is_reported_stalled() {
    let server = Server::start("127.0.0.1", |_ex| {
        std::thread::sleep(Duration::from_secs(6))
    });
    let c = client();
    let r = Reference::parse(&format!("{}/silent:1", server.addr())).unwrap();
    let started = Instant::now();
    let err = c
        .blob_exists(&c.repo(&r), &Digest::sha256(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Stalled { after, .. } if after == WAIT),
        "{err:?}"
    );
    assert!(err.is_temporary(), "a stall is worth a retry");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "given up after the read timeout, not the server's 6 s: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_upload_may_outlast_the_read_timeout() {
    let reg = DistRegistry::start(Auth::Open);
    let c = client();
    let repo = c.repo(&Reference::parse(&format!("{}/slow/producer:1", reg.addr)).unwrap());
    // Six chunks 150 ms apart: the body takes three times the read timeout.
    let (body, all) = slow_body(6, Duration::from_millis(150));
    let digest = Digest::sha256(&all);
    let (tx, rx) = tokio::sync::oneshot::channel();
    tx.send(digest.clone()).unwrap();
    let got = c.upload_stream(&repo, body, rx).await;
    assert_eq!(
        got.unwrap(),
        digest,
        "a slow producer is not a stalled registry"
    );
    assert!(c.blob_exists(&repo, &digest).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_after_a_streamed_body_is_reported_stalled() {
    // Reads the PATCH body whole, then never answers.
    let server = upload_server("quiet", |mut ex| {
        let _ = ex.body();
        std::thread::sleep(Duration::from_secs(6));
    });
    let (body, _) = slow_body(3, Duration::from_millis(150));
    let took = patch_stalls(&server, "quiet", body).await;
    assert!(
        took >= Duration::from_millis(450) + WAIT && took < Duration::from_secs(4),
        "timed from the body's end (0.45 s) plus the read timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_stops_reading_a_streamed_body_is_reported_stalled() {
    // Never reads the PATCH body: once the socket buffers are full, the body waits
    // on the connection, not on its producer.
    let server = upload_server("full", |_ex| std::thread::sleep(Duration::from_secs(6)));
    static ZEROS: [u8; 256 << 10] = [0; 256 << 10];
    // 256 MiB, made as fast as it is taken: more than any socket buffer.
    let body = futures_util::stream::iter(
        (0..1024).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(&ZEROS))),
    );
    let took = patch_stalls(&server, "full", body).await;
    assert!(
        took < Duration::from_secs(4),
        "given up after the read timeout: {took:?}"
    );
}
