//! Pushing layers while they are exported: each new layer blob of the build is
//! streamed to the first push target as it is compressed (read back from the
//! store's file as it grows, so the export never waits for the upload), and the
//! push after the build finds it there instead of uploading it then.
//!
//! Best effort by design: an upload that fails (refused, cut off) is forgotten, and
//! the regular push uploads that blob again and reports any error itself. The tap
//! never changes what is built or pushed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::tap::{LayerTap, TapWriter};
use bytes::Bytes;
use oci::Digest;
use registry::progress::STATUS_INTERVAL;
use registry::{Client, Repo};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The most read back from the blob file per chunk of the upload's body.
const CHUNK: u64 = 256 << 10;

/// Streams new layer blobs to one repository.
#[derive(Debug)]
pub struct PushTap {
    client: Client,
    repo: Repo,
    runtime: tokio::runtime::Handle,
    uploads: Mutex<Vec<Pending>>,
}

/// An upload begun, how far its blob is, and how much of it went to the connection.
#[derive(Debug)]
struct Pending {
    task: JoinHandle<registry::Result<Digest>>,
    progress: watch::Receiver<Progress>,
    sent: Arc<AtomicU64>,
}

impl PushTap {
    pub fn new(client: Client, repo: Repo, runtime: tokio::runtime::Handle) -> Self {
        PushTap {
            client,
            repo,
            runtime,
            uploads: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Vec<Pending> {
        std::mem::take(&mut *self.uploads.lock().expect("not poisoned"))
    }

    /// Wait for every upload begun; the digests of the blobs now in the registry. An
    /// upload still running for a blob the registry has already (pushed before, or
    /// just closed by this upload) is stopped instead of awaited.
    ///
    /// `report(sent, total, done)` is told the bytes sent to the connection and the
    /// bytes of all the blobs: at once, every [`STATUS_INTERVAL`] while it waits, and
    /// at the end (`done`).
    pub async fn finish(&self, report: &(dyn Fn(u64, u64, bool) + Sync)) -> Vec<Digest> {
        let pending = self.take();
        let counts: Vec<_> = pending
            .iter()
            .map(|p| (p.sent.clone(), p.progress.clone()))
            .collect();
        let tell = |done| {
            let sent = counts.iter().map(|(s, _)| s.load(Ordering::Relaxed)).sum();
            let total = counts.iter().map(|(_, p)| p.borrow().written).sum();
            report(sent, total, done);
        };
        tell(false);
        let mut done = Vec::new();
        for p in pending {
            let digest = p.progress.borrow().digest.clone();
            if let Some(d) = digest
                && !p.task.is_finished()
                && self
                    .client
                    .blob_exists(&self.repo, &d)
                    .await
                    .unwrap_or(false)
            {
                // The registry drops a stale upload; the blob is all there.
                p.task.abort();
                p.sent.store(p.progress.borrow().written, Ordering::Relaxed);
                done.push(d);
                continue;
            }
            let mut task = p.task;
            let ended = loop {
                tokio::select! {
                    ended = &mut task => break ended,
                    () = tokio::time::sleep(STATUS_INTERVAL) => tell(false),
                }
            };
            if let Ok(Ok(d)) = ended {
                done.push(d);
            }
        }
        tell(true);
        done
    }

    /// Stop every upload (the build failed).
    pub fn abort(&self) {
        for p in self.take() {
            p.task.abort();
        }
    }
}

impl LayerTap for PushTap {
    fn begin(&self, blob: &File) -> Option<Box<dyn TapWriter>> {
        let file = Arc::new(blob.try_clone().ok()?);
        let (written, progress) = watch::channel(Progress::default());
        let (digest, digest_rx) = oneshot::channel();
        let (client, repo) = (self.client.clone(), self.repo.clone());
        let sent = Arc::new(AtomicU64::new(0));
        let body = body(file, progress.clone(), sent.clone());
        let task = self
            .runtime
            .spawn(async move { client.upload_stream(&repo, body, digest_rx).await });
        self.uploads.lock().expect("not poisoned").push(Pending {
            task,
            progress,
            sent,
        });
        Some(Box::new(Upload { written, digest }))
    }
}

/// How far the export got with the blob.
#[derive(Debug, Clone, Default)]
struct Progress {
    written: u64,
    /// Set once the blob is complete.
    digest: Option<Digest>,
}

/// The blob's bytes read back from `file` as the export reports them written; the
/// stream ends when the blob is complete, and fails when the export gave up (the
/// upload is then cancelled).
fn body(
    file: Arc<File>,
    progress: watch::Receiver<Progress>,
    counted: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some((file, progress, counted, 0u64)), |state| async move {
        let (file, mut progress, counted, sent) = state?;
        loop {
            let p = progress.borrow_and_update().clone();
            let complete = p.digest.is_some();
            if !complete && progress.has_changed().is_err() {
                let stopped = std::io::Error::other("the layer's export stopped");
                return Some((Err(stopped), None));
            }
            if sent < p.written {
                let n = (p.written - sent).min(CHUNK) as usize;
                let f = file.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; n];
                    f.read_exact_at(&mut buf, sent).map(|()| Bytes::from(buf))
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                if read.is_err() {
                    return Some((read, None));
                }
                let sent = sent + n as u64;
                counted.store(sent, Ordering::Relaxed);
                return Some((read, Some((file, progress, counted, sent))));
            }
            if complete {
                return None;
            }
            // An error here means the export is gone: the check above says so.
            let _ = progress.changed().await;
        }
    })
}

struct Upload {
    written: watch::Sender<Progress>,
    digest: oneshot::Sender<Digest>,
}

impl TapWriter for Upload {
    fn written(&mut self, total: u64) {
        self.written.send_modify(|p| p.written = total);
    }

    fn commit(self: Box<Self>, digest: &Digest, size: u64) {
        self.written.send_modify(|p| {
            p.written = size;
            p.digest = Some(digest.clone());
        });
        let _ = self.digest.send(digest.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    use oci::{Descriptor, media};
    use registry::{Anonymous, RegistryConfig};
    use testkit::noise;
    use testkit::registry::{Auth, DistRegistry};

    use super::*;

    /// A tap to repository `name` of `reg` (plain HTTP: a loopback address), and the
    /// client to look at what it uploaded.
    fn tap(reg: &DistRegistry, name: &str) -> (Arc<PushTap>, Client, Repo) {
        let client = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
        let repo = client.repo_at(&reg.addr, name);
        let tap = PushTap::new(
            client.clone(),
            repo.clone(),
            tokio::runtime::Handle::current(),
        );
        (Arc::new(tap), client, repo)
    }

    /// Six pieces of 300 KiB: the blob is longer than one [`CHUNK`] of the body.
    fn pieces() -> Vec<Vec<u8>> {
        (0..6).map(|i| noise(300 * 1024, i + 1)).collect()
    }

    /// Begin a blob in a new file and write `pieces` to it as an export does, on a
    /// thread of its own: each piece appended, then told to the writer, a few
    /// milliseconds apart. Returns the writer (if the tap took the blob) and the bytes.
    async fn write_paced(
        tap: Arc<PushTap>,
        pieces: Vec<Vec<u8>>,
    ) -> (Option<Box<dyn TapWriter>>, Vec<u8>) {
        tokio::task::spawn_blocking(move || {
            let mut file = tempfile::tempfile().unwrap();
            let Some(mut writer) = tap.begin(&file) else {
                return (None, Vec::new());
            };
            let mut all = Vec::new();
            for p in pieces {
                std::thread::sleep(Duration::from_millis(10));
                file.write_all(&p).unwrap();
                all.extend_from_slice(&p);
                writer.written(all.len() as u64);
            }
            (Some(writer), all)
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_written_in_pieces_then_committed_is_uploaded() {
        let reg = DistRegistry::start(Auth::Open);
        let (tap, client, repo) = tap(&reg, "tapped/app");
        let (writer, all) = write_paced(tap.clone(), pieces()).await;
        let digest = commit(writer.expect("the tap takes every blob"), &all).await;
        let size = all.len() as u64;
        let reports = Mutex::new(Vec::new());
        assert_eq!(
            tap.finish(&|sent, total, done| reports.lock().unwrap().push((sent, total, done)))
                .await,
            vec![digest.clone()],
            "finish returns the digest of the upload the registry took"
        );
        let reports = reports.into_inner().unwrap();
        assert_eq!(
            reports.last(),
            Some(&(size, size, true)),
            "every byte went: {reports:?}"
        );
        assert!(
            reports[..reports.len() - 1].iter().all(|r| !r.2),
            "{reports:?}"
        );
        let pulled = client
            .get_blob_bytes(&repo, &Descriptor::new(media::OCI_LAYER_TAR, digest, size))
            .await
            .expect("the registry has the blob");
        assert!(pulled == all, "the registry has exactly the bytes written");
    }

    /// Commit `writer` as the blob `all`, from a thread that is not the runtime's.
    async fn commit(writer: Box<dyn TapWriter>, all: &[u8]) -> Digest {
        let digest = Digest::sha256(all);
        let (d, size) = (digest.clone(), all.len() as u64);
        tokio::task::spawn_blocking(move || writer.commit(&d, size))
            .await
            .unwrap();
        digest
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blobs_written_at_once_are_all_uploaded() {
        let reg = DistRegistry::start(Auth::Open);
        let (tap, client, repo) = tap(&reg, "tapped/two");
        let (a, b) = tokio::join!(
            write_paced(tap.clone(), pieces()[..2].to_vec()),
            write_paced(tap.clone(), pieces()[2..5].to_vec()),
        );
        let mut want = vec![
            commit(a.0.unwrap(), &a.1).await,
            commit(b.0.unwrap(), &b.1).await,
        ];
        let mut got = tap.finish(&|_, _, _| {}).await;
        got.sort();
        want.sort();
        assert_eq!(got, want, "finish returns both uploads");
        for d in &want {
            assert!(
                client.blob_exists(&repo, d).await.unwrap(),
                "the registry has {d}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_the_registry_refuses_is_forgotten() {
        let reg = DistRegistry::start(Auth::Open);
        // Not a valid repository name: the registry refuses the upload's POST.
        let (tap, _, _) = tap(&reg, "Tapped/Refused");
        let (writer, all) = write_paced(tap.clone(), pieces()[..2].to_vec()).await;
        commit(writer.expect("the tap takes every blob"), &all).await;
        assert_eq!(
            tap.finish(&|_, _, _| {}).await,
            Vec::<Digest>::new(),
            "a refused upload gives no digest (the regular push sends the blob)"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_dropped_without_commit_is_not_uploaded() {
        let reg = DistRegistry::start(Auth::Open);
        let (tap, client, repo) = tap(&reg, "tapped/abandoned");
        let (writer, partial) = write_paced(tap.clone(), pieces()[..3].to_vec()).await;
        assert!(writer.is_some(), "the tap takes every blob");
        drop(writer);
        assert_eq!(
            tap.finish(&|_, _, _| {}).await,
            Vec::<Digest>::new(),
            "an abandoned blob gives no digest"
        );
        assert!(
            !client
                .blob_exists(&repo, &Digest::sha256(&partial))
                .await
                .unwrap(),
            "the registry lacks the abandoned blob"
        );
        assert!(
            reg.log()
                .contains("\"DELETE /v2/tapped/abandoned/blobs/uploads/"),
            "the abandoned upload is cancelled"
        );
    }
}
