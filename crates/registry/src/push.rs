//! Writing to a registry: blobs (skip if present, cross-repository mount, monolithic
//! or streamed upload resumed from the upload status) and manifests.

use std::io::Read;

use reqwest::{StatusCode, header};

use content::Store;
use oci::{Descriptor, Digest};

use crate::client::{Access, Client, Repo, stalled};
use crate::error::{RegistryError, Result, redact};

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
        if self.blob_exists(repo, &desc.digest).await? {
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
            return Ok(BlobPush::Mounted);
        }
        let location = upload_location(&uploads, &resp)?;
        if desc.size <= self.monolithic_max {
            self.upload_monolithic(repo, &location, desc, store).await?;
        } else {
            self.upload_streamed(repo, location, desc, store).await?;
        }
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
        self.send(repo, Access::Push, None, |http| {
            http.put(url.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone())
        })
        .await?;
        Ok(())
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
        self.send(repo, Access::Push, None, |http| {
            http.put(url.clone()).header(header::CONTENT_LENGTH, 0)
        })
        .await?;
        Ok(())
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
        let ended = std::sync::Mutex::new(None);
        let sent = self.send_unretried(repo, Access::Push, |http| {
            let (body, end) = EndSignal::new(file_stream(path.clone(), offset));
            *ended.lock().expect("not poisoned") = Some(end);
            http.patch(location.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, format!("{offset}-{}", desc.size - 1))
                .header(header::CONTENT_LENGTH, desc.size - offset)
                .body(reqwest::Body::wrap_stream(body))
        });
        let resp =
            answered_after_body(sent, &ended, "PATCH", location, self.limits.read_timeout).await?;
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
        let (body, end) = EndSignal::new(body);
        let ended = std::sync::Mutex::new(Some(end));
        let body = std::sync::Mutex::new(Some(reqwest::Body::wrap_stream(body)));
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
            answered_after_body(sent, &ended, "PATCH", &location, self.limits.read_timeout).await?;
        let location = upload_location(&location, &resp)?;
        let Ok(digest) = digest.await else {
            let _ = self
                .send_unretried(repo, Access::Push, |http| http.delete(location.clone()))
                .await;
            return Err(RegistryError::Cancelled {
                url: redact(&location),
            });
        };
        let url = with_digest(&location, &digest);
        self.send(repo, Access::Push, None, |http| {
            http.put(url.clone()).header(header::CONTENT_LENGTH, 0)
        })
        .await?;
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

/// A body stream that says when it has ended (or was dropped unfinished).
struct EndSignal<S> {
    inner: std::pin::Pin<Box<S>>,
    end: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<S> EndSignal<S> {
    fn new(inner: S) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (end, ended) = tokio::sync::oneshot::channel();
        let inner = Box::pin(inner);
        (
            EndSignal {
                inner,
                end: Some(end),
            },
            ended,
        )
    }
}

impl<S: futures_util::Stream> futures_util::Stream for EndSignal<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let std::task::Poll::Ready(None) = next
            && let Some(end) = self.end.take()
        {
            let _ = end.send(());
        }
        next
    }
}

/// The response to a request with a streamed body: it may take as long as the
/// body's producer, then at most `wait` from the body's end (`ended`
/// holds the signal of the body last built).
async fn answered_after_body<T>(
    sent: impl std::future::Future<Output = Result<T>>,
    ended: &std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    method: &str,
    url: &url::Url,
    wait: std::time::Duration,
) -> Result<T> {
    let timer = async {
        loop {
            let signal = ended.lock().expect("not poisoned").take();
            match signal {
                // Ended, or dropped unfinished: either way the registry has all it
                // will get.
                Some(end) => {
                    let _ = end.await;
                    // A body built since (after a 401) is timed from its own end.
                    if ended.lock().expect("not poisoned").is_none() {
                        break;
                    }
                }
                // Not built yet (the request is being authenticated).
                None => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        tokio::time::sleep(wait).await;
    };
    tokio::select! {
        r = sent => r,
        () = timer => Err(stalled(method, url, wait)),
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
