//! Writing to a registry: blobs (skip if present, cross-repository mount, monolithic
//! or streamed upload resumed from the upload status) and manifests.

use std::io::Read;

use reqwest::{StatusCode, header};

use content::Store;
use oci::{Descriptor, Digest};

use crate::client::{Access, Client, Repo, stalled};
use crate::error::{RegistryError, Result, redact};
use crate::progress::{Direction::Push, TransferState};

/// What pushing one blob took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry had it.
    Exists,
    /// Mounted from another repository of the same registry: no bytes sent.
    Mounted,
    /// Uploaded.
    Uploaded,
}

impl Client {
    /// The digest `repo` serves for manifest `target` (a tag or a digest), from a HEAD;
    /// `None` when it has none.
    pub async fn manifest_digest(&self, repo: &Repo, target: &str) -> Result<Option<Digest>> {
        let url = repo
            .base
            .join(&format!("manifests/{target}"))
            .expect("valid path");
        let accept = crate::client::manifest_accept();
        match self
            .send(repo, Access::Pull, None, |http| {
                http.head(url.clone()).headers(accept.clone())
            })
            .await
        {
            Ok(resp) => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Digest::parse(v).ok())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `repo` has blob `digest`.
    pub async fn blob_exists(&self, repo: &Repo, digest: &Digest) -> Result<bool> {
        let url = repo
            .base
            .join(&format!("blobs/{digest}"))
            .expect("valid path");
        match self
            .send(repo, Access::Pull, None, |http| http.head(url.clone()))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Push blob `desc` from `store` to `repo`: nothing if present, a mount if
    /// `mount_from` (a repository of the same registry) has it, else an upload.
    pub async fn push_blob(
        &self,
        repo: &Repo,
        desc: &Descriptor,
        store: &Store,
        mount_from: Option<&str>,
    ) -> Result<BlobPush> {
        let (digest, size) = (&desc.digest, desc.size);
        if self.blob_exists(repo, digest).await? {
            self.report(Push, digest, 0, size, TransferState::Existed);
            return Ok(BlobPush::Exists);
        }
        let uploads = repo.base.join("blobs/uploads/").expect("valid path");
        let mount_from = mount_from.filter(|m| *m != repo.name);
        let resp = self
            .send(repo, Access::Push, mount_from, |http| {
                let mut req = http.post(uploads.clone()).header(header::CONTENT_LENGTH, 0);
                if let Some(from) = mount_from {
                    req = req.query(&[("mount", desc.digest.to_string().as_str()), ("from", from)]);
                }
                req
            })
            .await?;
        if resp.status() == StatusCode::CREATED && mount_from.is_some() {
            self.report(Push, digest, 0, size, TransferState::Mounted);
            return Ok(BlobPush::Mounted);
        }
        let location = upload_location(&uploads, &resp)?;
        self.report(Push, digest, 0, size, TransferState::Running);
        if desc.size <= self.monolithic_max {
            self.upload_monolithic(repo, &location, desc, store).await?;
        } else {
            self.upload_streamed(repo, location, desc, store).await?;
        }
        self.report(Push, digest, size, size, TransferState::Done);
        Ok(BlobPush::Uploaded)
    }

    async fn upload_monolithic(
        &self,
        repo: &Repo,
        location: &url::Url,
        desc: &Descriptor,
        store: &Store,
    ) -> Result<()> {
        let mut bytes = Vec::with_capacity(desc.size as usize);
        store
            .open_blob(&desc.digest)?
            .read_to_end(&mut bytes)
            .map_err(|e| store_read_error(store, desc, e))?;
        let url = with_digest(location, &desc.digest);
        let bytes = bytes::Bytes::from(bytes);
        let put = self.send(repo, Access::Push, None, |http| {
            http.put(url.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone())
        });
        self.closed(repo, &desc.digest, put).await
    }

    /// The answer of an upload's final PUT, `put`. When it failed, the blob may be
    /// in the registry all the same: the registry committed it and the answer was
    /// lost (a dropped connection, and the retry found the session gone). A HEAD
    /// decides; the PUT's own error stands when the blob is not there.
    async fn closed(
        &self,
        repo: &Repo,
        digest: &Digest,
        put: impl std::future::Future<Output = Result<reqwest::Response>>,
    ) -> Result<()> {
        match put.await {
            Ok(_) => Ok(()),
            Err(e) => match self.blob_exists(repo, digest).await {
                Ok(true) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// One streamed PATCH of the whole blob, then PUT. After a dropped connection,
    /// the upload status (`Range: 0-N`) says where to continue.
    async fn upload_streamed(
        &self,
        repo: &Repo,
        mut location: url::Url,
        desc: &Descriptor,
        store: &Store,
    ) -> Result<()> {
        let mut offset = 0u64;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.patch_from(repo, &location, desc, store, offset).await {
                Ok(next) => {
                    location = next;
                    break;
                }
                Err(e) if e.is_temporary() && attempt < self.retry.attempts => {
                    tokio::time::sleep(self.retry.delay(attempt, None)).await;
                    let (next, have) = self.upload_status(repo, &location).await?;
                    location = next;
                    offset = have;
                }
                Err(e) => return Err(e),
            }
        }
        let url = with_digest(&location, &desc.digest);
        let put = self.send(repo, Access::Push, None, |http| {
            http.put(url.clone()).header(header::CONTENT_LENGTH, 0)
        });
        self.closed(repo, &desc.digest, put).await
    }

    async fn patch_from(
        &self,
        repo: &Repo,
        location: &url::Url,
        desc: &Descriptor,
        store: &Store,
        offset: u64,
    ) -> Result<url::Url> {
        if offset >= desc.size {
            return Ok(location.clone());
        }
        // Fail here, with the store's error, if the blob is gone.
        drop(store.open_blob(&desc.digest)?);
        let path = store.blob_path(&desc.digest);
        // The streamed body is made anew for each request `send_unretried` builds
        // (a 401 from an expired token is answered and the PATCH sent again);
        // temporary failures go back to the caller, which asks the upload status.
        let watch = BodyWatch::default();
        let sent = self.send_unretried(repo, Access::Push, |http| {
            let (mut at, progress) = (offset, self.progress.clone());
            let (digest, total) = (desc.digest.clone(), desc.size);
            let counted =
                futures_util::StreamExt::inspect(file_stream(path.clone(), offset), move |chunk| {
                    if let (Ok(chunk), Some(p)) = (chunk, &progress) {
                        at += chunk.len() as u64;
                        p.update(&crate::Transfer {
                            direction: Push,
                            digest: &digest,
                            current: at,
                            total,
                            state: TransferState::Running,
                        });
                    }
                });
            let body = watch.watched(counted);
            http.patch(location.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, format!("{offset}-{}", desc.size - 1))
                .header(header::CONTENT_LENGTH, desc.size - offset)
                .body(reqwest::Body::wrap_stream(body))
        });
        let resp =
            answered_after_body(sent, &watch, "PATCH", location, self.limits.read_timeout).await?;
        upload_location(location, &resp)
    }

    /// Where an upload stands: its location and how many bytes the registry has.
    async fn upload_status(&self, repo: &Repo, location: &url::Url) -> Result<(url::Url, u64)> {
        let resp = self
            .send(repo, Access::Push, None, |http| http.get(location.clone()))
            .await?;
        let have = resp
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map_or(0, received_bytes);
        Ok((upload_location(location, &resp)?, have))
    }

    /// Upload a blob while its bytes are still being made: a POST, one chunked PATCH
    /// of `body` (no length: the registry takes it as a stream), then, when `digest`
    /// resolves, the PUT that closes the upload under that digest. The registry
    /// checks the bytes against it, as for any upload.
    ///
    /// `body` can be sent only once, so unlike [`Client::push_blob`] nothing is
    /// retried after the PATCH has begun. If `digest` is dropped (the producer gave
    /// up), the upload is cancelled and [`RegistryError::Cancelled`] returned.
    pub async fn upload_stream<S>(
        &self,
        repo: &Repo,
        body: S,
        digest: tokio::sync::oneshot::Receiver<Digest>,
    ) -> Result<Digest>
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    {
        let uploads = repo.base.join("blobs/uploads/").expect("valid path");
        let resp = self
            .send(repo, Access::Push, None, |http| {
                http.post(uploads.clone()).header(header::CONTENT_LENGTH, 0)
            })
            .await?;
        let location = upload_location(&uploads, &resp)?;
        let closed = self.patch_and_close(repo, &location, body, digest).await;
        if let Err(e) = &closed
            && !matches!(e, RegistryError::Cancelled { .. })
        {
            // Best effort: a registry drops stale uploads on its own too.
            let _ = tokio::time::timeout(
                self.limits.read_timeout,
                self.send_unretried(repo, Access::Push, |http| http.delete(location.clone())),
            )
            .await;
        }
        closed
    }

    /// [`Client::upload_stream`] after the POST: the PATCH, then the PUT (or, without
    /// a digest, a DELETE).
    async fn patch_and_close<S>(
        &self,
        repo: &Repo,
        location: &url::Url,
        body: S,
        digest: tokio::sync::oneshot::Receiver<Digest>,
    ) -> Result<Digest>
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    {
        let watch = BodyWatch::default();
        let body = std::sync::Mutex::new(Some(reqwest::Body::wrap_stream(watch.watched(body))));
        let sent = self.send_unretried(repo, Access::Push, |http| {
            // A second request (a 401 answered) gets an empty body; the PUT then
            // fails on the digest instead of storing a wrong blob.
            let body = body
                .lock()
                .expect("the body lock is never poisoned")
                .take()
                .unwrap_or_else(|| reqwest::Body::from(Vec::new()));
            http.patch(location.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(body)
        });
        let resp =
            answered_after_body(sent, &watch, "PATCH", location, self.limits.read_timeout).await?;
        let location = upload_location(location, &resp)?;
        let Ok(digest) = digest.await else {
            let _ = self
                .send_unretried(repo, Access::Push, |http| http.delete(location.clone()))
                .await;
            return Err(RegistryError::Cancelled {
                url: redact(&location),
            });
        };
        let url = with_digest(&location, &digest);
        let put = self.send(repo, Access::Push, None, |http| {
            http.put(url.clone()).header(header::CONTENT_LENGTH, 0)
        });
        self.closed(repo, &digest, put).await?;
        Ok(digest)
    }

    /// Put a manifest or index under `target` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        repo: &Repo,
        target: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        let url = repo
            .base
            .join(&format!("manifests/{target}"))
            .expect("valid path");
        let body = bytes::Bytes::copy_from_slice(bytes);
        let resp = self
            .send(repo, Access::Push, None, |http| {
                http.put(url.clone())
                    .header(header::CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        let digest = Digest::sha256(bytes);
        if let Some(claimed) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok())
            && claimed.algorithm() == digest.algorithm()
            && claimed != digest
        {
            return Err(RegistryError::DigestMismatch {
                url: redact(&url),
                expected: digest,
                actual: claimed,
            });
        }
        Ok(digest)
    }
}

fn store_read_error(store: &Store, desc: &Descriptor, e: std::io::Error) -> RegistryError {
    RegistryError::Store(content::StoreError::Io {
        op: "read",
        path: store.blob_path(&desc.digest),
        source: e,
    })
}

/// The upload URL from `Location`, resolved against the request URL.
fn upload_location(base: &url::Url, resp: &reqwest::Response) -> Result<url::Url> {
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            url: redact(base),
            reason: format!("{} without a Location header", resp.status()),
        })?;
    let url = base.join(loc).map_err(|e| RegistryError::Protocol {
        url: redact(base),
        reason: format!("bad Location {loc:?}: {e}"),
    })?;
    // Uploads continue on the registry itself, never elsewhere.
    if url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return Err(RegistryError::Forbidden {
            url: redact(base),
            target: redact(&url),
            reason: "upload location on another host",
        });
    }
    Ok(url)
}

fn with_digest(location: &url::Url, digest: &Digest) -> url::Url {
    let mut url = location.clone();
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    url
}

/// How many bytes an upload status `Range` (`0-N`, or `bytes=0-N`) says the
/// registry has. distribution reports an empty upload as `0-0`, so that means
/// nothing: resending one byte is safe, skipping one is not.
fn received_bytes(range: &str) -> u64 {
    let range = range.trim().trim_start_matches("bytes=");
    match range
        .split_once('-')
        .map(|(_, end)| end.trim().parse::<u64>())
    {
        Some(Ok(0)) | None | Some(Err(_)) => 0,
        Some(Ok(end)) => end + 1,
    }
}

/// What a streamed request body is waiting for, and since when: the watchdog of
/// [`answered_after_body`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyPhase {
    /// For the connection to take the last chunk (or to start).
    Network,
    /// For its producer to make the next chunk: as long as that takes.
    Producer,
    /// For the registry's answer: the body is complete.
    Ended,
}

/// The phase of the body last built for a request (a 401 rebuilds it).
#[derive(Debug, Clone)]
struct BodyWatch(std::sync::Arc<std::sync::Mutex<(BodyPhase, std::time::Instant)>>);

impl Default for BodyWatch {
    fn default() -> Self {
        BodyWatch(std::sync::Arc::new(std::sync::Mutex::new((
            BodyPhase::Network,
            std::time::Instant::now(),
        ))))
    }
}

impl BodyWatch {
    fn set(&self, phase: BodyPhase) {
        let mut state = self.0.lock().expect("not poisoned");
        if state.0 != phase || phase == BodyPhase::Network {
            *state = (phase, std::time::Instant::now());
        }
    }

    fn get(&self) -> (BodyPhase, std::time::Instant) {
        *self.0.lock().expect("not poisoned")
    }

    /// `inner` as a body this watch follows, from now.
    fn watched<S>(&self, inner: S) -> Watched<S> {
        self.set(BodyPhase::Network);
        Watched {
            inner: Box::pin(inner),
            watch: self.clone(),
        }
    }
}

/// A body stream reporting its phase to a [`BodyWatch`].
struct Watched<S> {
    inner: std::pin::Pin<Box<S>>,
    watch: BodyWatch,
}

impl<S: futures_util::Stream> futures_util::Stream for Watched<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        self.watch.set(match &next {
            std::task::Poll::Pending => BodyPhase::Producer,
            std::task::Poll::Ready(Some(_)) => BodyPhase::Network,
            std::task::Poll::Ready(None) => BodyPhase::Ended,
        });
        next
    }
}

/// The response to a request with a streamed body. Waiting for the body's producer
/// takes as long as it takes; the connection not taking the next chunk, or the
/// registry not answering a complete body, for `wait` is [`RegistryError::Stalled`].
async fn answered_after_body<T>(
    sent: impl std::future::Future<Output = Result<T>>,
    watch: &BodyWatch,
    method: &str,
    url: &url::Url,
    wait: std::time::Duration,
) -> Result<T> {
    let watchdog = async {
        loop {
            tokio::time::sleep(wait / 8).await;
            let (phase, since) = watch.get();
            if phase != BodyPhase::Producer && since.elapsed() >= wait {
                break;
            }
        }
    };
    tokio::select! {
        r = sent => r,
        () = watchdog => Err(stalled(method, url, wait)),
    }
}

/// The file at `path` from `offset` on, as a stream of 1 MiB chunks; opened on
/// first poll so that every request gets its own.
fn file_stream(
    path: std::path::PathBuf,
    offset: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    enum State {
        Start(std::path::PathBuf),
        Reading(tokio::fs::File),
        Done,
    }
    futures_util::stream::unfold(State::Start(path), move |state| async move {
        let mut file = match state {
            State::Start(path) => {
                let opened = async {
                    let mut f = tokio::fs::File::open(&path).await?;
                    f.seek(std::io::SeekFrom::Start(offset)).await?;
                    Ok::<_, std::io::Error>(f)
                };
                match opened.await {
                    Ok(f) => f,
                    Err(e) => return Some((Err(e), State::Done)),
                }
            }
            State::Reading(f) => f,
            State::Done => return None,
        };
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), State::Reading(file)))
            }
            Err(e) => Some((Err(e), State::Done)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::received_bytes;

    #[test]
    fn upload_status_ranges() {
        assert_eq!(received_bytes("0-0"), 0, "distribution's empty upload");
        assert_eq!(received_bytes("0-1048575"), 1 << 20);
        assert_eq!(received_bytes("bytes=0-99"), 100);
        assert_eq!(received_bytes("garbage"), 0);
        assert_eq!(received_bytes("0-x"), 0);
    }
}
