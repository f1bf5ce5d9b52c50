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
use std::sync::Mutex;

use bytes::Bytes;
use export::{LayerTap, TapWriter};
use oci::Digest;
use registry::{Client, Repo};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The most read back from the blob file per chunk of the upload's body.
const CHUNK: u64 = 1 << 20;

/// Streams new layer blobs to one repository.
#[derive(Debug)]
pub struct PushTap {
    client: Client,
    repo: Repo,
    runtime: tokio::runtime::Handle,
    uploads: Mutex<Vec<JoinHandle<registry::Result<Digest>>>>,
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

    /// Wait for every upload begun; the digests of the blobs the registry took.
    pub async fn finish(&self) -> Vec<Digest> {
        let uploads = std::mem::take(&mut *self.uploads.lock().expect("not poisoned"));
        let mut done = Vec::new();
        for u in uploads {
            if let Ok(Ok(d)) = u.await {
                done.push(d);
            }
        }
        done
    }
}

impl LayerTap for PushTap {
    fn begin(&self, blob: &File) -> Option<Box<dyn TapWriter>> {
        let file = blob.try_clone().ok()?;
        let (written, progress) = watch::channel(Progress::default());
        let (digest, digest_rx) = oneshot::channel();
        let (client, repo) = (self.client.clone(), self.repo.clone());
        let body = body(file, progress);
        let upload = self
            .runtime
            .spawn(async move { client.upload_stream(&repo, body, digest_rx).await });
        self.uploads.lock().expect("not poisoned").push(upload);
        Some(Box::new(Upload { written, digest }))
    }
}

/// How far the export got with the blob.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    written: u64,
    complete: bool,
}

/// The blob's bytes read back from `file` as the export reports them written; the
/// stream ends when the blob is complete, or early when the export gave up (the
/// upload is then cancelled, as the digest never comes).
fn body(
    file: File,
    progress: watch::Receiver<Progress>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(
        (file, progress, 0u64),
        |(file, mut progress, sent)| async move {
            loop {
                let p = *progress.borrow_and_update();
                if sent < p.written {
                    let n = (p.written - sent).min(CHUNK) as usize;
                    let mut buf = vec![0u8; n];
                    // Bytes the export wrote are in the page cache: a short read.
                    let read = file
                        .read_exact_at(&mut buf, sent)
                        .map(|()| Bytes::from(buf));
                    let next = sent + n as u64;
                    return Some((read, (file, progress, next)));
                }
                if p.complete || progress.changed().await.is_err() {
                    return None;
                }
            }
        },
    )
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
            p.complete = true;
        });
        let _ = self.digest.send(digest.clone());
    }
}
