//! Blob pulls, pushes (monolithic, chunked, mount), upload sessions and deletes.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use content::Expected;
use futures_util::StreamExt;
use oci::Digest;

use crate::error::ApiError;
use crate::route::{check_name, parse_digest};
use crate::{Registry, query_param};

type Result<T> = std::result::Result<T, ApiError>;

/// How much of a request body is gathered before one write.
const WRITE_BUF: usize = 1 << 20;

/// Blocking file and hashing work on the current worker thread.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// `Range: bytes=<a>-[<b>]` (one range) → inclusive bounds within `size`.
fn range(req_range: Option<&str>, size: u64) -> Option<Result<(u64, u64)>> {
    let spec = req_range?.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let unsatisfiable = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UNKNOWN",
            format!("range {spec:?} is outside the blob's {size} bytes"),
        )
        .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
    };
    let a: u64 = a.parse().ok()?;
    let b: u64 = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        b.parse().ok()?
    };
    if a >= size || b < a {
        return Some(Err(unsatisfiable()));
    }
    Some(Ok((a, b.min(size - 1))))
}

pub async fn get(
    reg: &Arc<Registry>,
    name: &str,
    digest: &Digest,
    head: bool,
    req_range: Option<&str>,
) -> Result<Response> {
    if !reg.repos.has_blob(name, digest) {
        return Err(ApiError::blob_unknown(&digest.to_string()));
    }
    let size = reg.store.blob_size(digest)?;
    let span = range(req_range, size).transpose()?;
    let (status, first, len) = match span {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, size),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", digest.to_string());
    if span.is_some() {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {first}-{}/{size}", first + len - 1),
        );
    }
    let body = if head {
        Body::empty()
    } else {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = tokio::fs::File::from_std(reg.store.open_blob(digest)?);
        file.seek(std::io::SeekFrom::Start(first)).await?;
        let reader = file.take(len);
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(reader, 1 << 16))
    };
    Ok(builder.body(body).expect("valid response parts"))
}

pub fn delete(reg: &Arc<Registry>, name: &str, digest: &Digest) -> Result<Response> {
    if !reg.delete {
        return Err(ApiError::unsupported(
            "deletes are disabled on this registry",
        ));
    }
    if !reg.repos.unlink_blob(name, digest)? {
        return Err(ApiError::blob_unknown(&digest.to_string()));
    }
    Ok(empty(StatusCode::ACCEPTED))
}

fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response parts")
}

fn created(name: &str, digest: &Digest) -> Response {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response parts")
}

fn session(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header("Docker-Upload-UUID", id)
        .header(header::CONTENT_LENGTH, 0);
    // An empty session has no range; "0-0" would claim one byte.
    b = b.header(header::RANGE, format!("0-{}", size.saturating_sub(1)));
    b.body(Body::empty()).expect("valid response parts")
}

/// POST: monolithic upload (`?digest=`), cross-repository mount, or a new session.
pub async fn start(reg: &Arc<Registry>, name: &str, req: Request) -> Result<Response> {
    if let (Some(mount), Some(from)) = (query_param(&req, "mount"), query_param(&req, "from")) {
        let digest = parse_digest(&mount)?;
        check_name(&from)?;
        // A token without pull on the source gets a plain upload session, as a
        // registry that cannot mount answers.
        let permitted = req.extensions().get::<crate::MountDenied>().is_none();
        if permitted && reg.repos.has_blob(&from, &digest) && reg.store.contains(&digest) {
            let lease = blocking(|| reg.store.lease())?;
            if blocking(|| reg.store.protect(&lease, &digest))? {
                blocking(|| reg.repos.link_blob(name, &digest))?;
                return Ok(created(name, &digest));
            }
        }
    } else if let Some(d) = query_param(&req, "digest") {
        let digest = parse_digest(&d)?;
        let expected = Expected {
            digest: digest.clone(),
            size: crate::content_length(req.headers()),
        };
        let max = reg.limits.max_blob_size;
        if expected.size.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        let lease = blocking(|| reg.store.lease())?;
        let mut writer = blocking(|| reg.store.writer(Some(&expected)))?;
        let mut stream = req.into_body().into_data_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::size_invalid(format!("request body failed: {e}")))?;
            written += chunk.len() as u64;
            if written > max {
                return Err(too_large(max));
            }
            blocking(|| writer.write(&chunk))?;
        }
        blocking(|| writer.commit(&lease))?;
        blocking(|| reg.repos.link_blob(name, &digest))?;
        return Ok(created(name, &digest));
    }
    let open = blocking(|| reg.uploads.count())?;
    if open >= reg.limits.max_upload_sessions {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            format!(
                "{open} upload sessions are open, the most this registry keeps \
                 (--max-upload-sessions); finish or cancel one"
            ),
        ));
    }
    let client = req
        .extensions()
        .get::<crate::Client>()
        .map(|c| c.0.to_string());
    if let Some(client) = &client {
        let mine = blocking(|| reg.uploads.count_of(client))?;
        let max = reg.limits.max_upload_sessions_per_client;
        if mine >= max {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!(
                    "{client} holds {mine} upload sessions, the most one client may \
                     (--max-upload-sessions-per-client); finish or cancel one"
                ),
            ));
        }
    }
    let id = blocking(|| reg.uploads.create(name, client.as_deref()))?;
    Ok(session(StatusCode::ACCEPTED, name, &id, 0))
}

/// A blob over the registry's `--max-blob-size`.
fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "SIZE_INVALID",
        format!(
            "the blob is larger than {max} bytes, the most this registry takes (--max-blob-size)"
        ),
    )
}

pub async fn status(reg: &Arc<Registry>, name: &str, id: &str) -> Result<Response> {
    let data = reg.uploads.data(name, id)?;
    let _lock = reg.uploads.lock(id).await;
    let size = std::fs::metadata(&data)
        .map_err(|_| ApiError::upload_unknown(id))?
        .len();
    Ok(session(StatusCode::NO_CONTENT, name, id, size))
}

pub async fn cancel(reg: &Arc<Registry>, name: &str, id: &str) -> Result<Response> {
    reg.uploads.data(name, id)?;
    let _lock = reg.uploads.lock(id).await;
    reg.uploads.remove(id)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `Content-Range: <start>-<end>` (also accepts a `bytes ` prefix).
fn content_range(req: &Request) -> Result<Option<(u64, u64)>> {
    let Some(v) = req.headers().get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or_default();
    let s = s.strip_prefix("bytes ").unwrap_or(s);
    let s = s.split('/').next().unwrap_or_default();
    let bad = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("invalid Content-Range {s:?}"),
        )
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

/// Append the request body to session `id`'s data, honouring `Content-Range`.
/// Returns the new size.
async fn append(reg: &Arc<Registry>, name: &str, id: &str, req: Request) -> Result<u64> {
    let data = reg.uploads.data(name, id)?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&data)
        .map_err(|_| ApiError::upload_unknown(id))?;
    let size = file.metadata()?.len();
    let range = content_range(&req)?;
    let declared = crate::content_length(req.headers());
    if let Some((a, b)) = range {
        if a != size {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!("chunk starts at {a}, upload {id} has {size} bytes"),
            )
            .with_header(header::RANGE, format!("0-{}", size.saturating_sub(1)))
            .with_header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")));
        }
        if let Some(n) = declared
            && n != b - a + 1
        {
            return Err(ApiError::size_invalid(format!(
                "Content-Range {a}-{b} is {} bytes, Content-Length is {n}",
                b - a + 1
            )));
        }
    }
    let max = reg.limits.max_blob_size;
    if declared.is_some_and(|n| size.saturating_add(n) > max) {
        return Err(too_large(max));
    }
    let mut written = 0u64;
    let mut stream = req.into_body().into_data_stream();
    let mut failed = None;
    // Frames are small: gather them and write a megabyte at a time.
    let mut buf = Vec::with_capacity(WRITE_BUF);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                written += c.len() as u64;
                if size + written > max {
                    failed = Some(too_large(max));
                    break;
                }
                buf.extend_from_slice(&c);
                if buf.len() >= WRITE_BUF {
                    if let Err(e) = blocking(|| file.write_all(&buf)) {
                        failed = Some(e.into());
                        break;
                    }
                    buf.clear();
                }
            }
            Err(e) => {
                failed = Some(ApiError::size_invalid(format!("request body failed: {e}")));
                break;
            }
        }
    }
    if failed.is_none()
        && !buf.is_empty()
        && let Err(e) = blocking(|| file.write_all(&buf))
    {
        failed = Some(e.into());
    }
    let short = range.is_some_and(|(a, b)| written != b - a + 1);
    if failed.is_some() || short {
        // Nothing of a bad chunk stays in the session (a full disk gets its space
        // back).
        blocking(|| file.set_len(size))?;
        return Err(failed.unwrap_or_else(|| {
            ApiError::size_invalid("chunk length does not match its Content-Range")
        }));
    }
    Ok(size + written)
}

pub async fn patch(reg: &Arc<Registry>, name: &str, id: &str, req: Request) -> Result<Response> {
    reg.uploads.data(name, id)?;
    let _lock = reg.uploads.lock(id).await;
    let size = append(reg, name, id, req).await?;
    Ok(session(StatusCode::ACCEPTED, name, id, size))
}

/// PUT `?digest=`: the last chunk (optional), then verify and commit.
pub async fn finish(reg: &Arc<Registry>, name: &str, id: &str, req: Request) -> Result<Response> {
    let data = reg.uploads.data(name, id)?;
    let _lock = reg.uploads.lock(id).await;
    let digest = query_param(&req, "digest")
        .ok_or_else(|| ApiError::digest_invalid("the final PUT needs ?digest="))
        .and_then(|d| parse_digest(&d))?;
    append(reg, name, id, req).await?;
    let lease = blocking(|| reg.store.lease())?;
    let expected = Expected {
        digest: digest.clone(),
        size: None,
    };
    // The session file becomes the blob (renamed, not copied).
    let committed = blocking(|| {
        reg.store
            .adopt_file(&lease, &data, &expected)
            .map_err(ApiError::from)
    });
    // A failed verification ends the session too: nothing of it is visible.
    blocking(|| reg.uploads.remove(id))?;
    committed?;
    blocking(|| reg.repos.link_blob(name, &digest))?;
    Ok(created(name, &digest))
}
