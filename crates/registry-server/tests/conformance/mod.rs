//! A distribution-spec v1.1 conformance suite, written once and run against every
//! registry: each check takes a [`Target`] and returns what went wrong.
//!
//! Every check uses its own repositories, so checks can run in any order.

#![allow(dead_code)]

mod checks;

use oci::{Algorithm, Digest};
use reqwest::{Method, Response, StatusCode};

use checks::*;

/// A registry under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub http: reqwest::Client,
}

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

pub type Outcome = Result<(), String>;

/// Fail the check with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

impl Target {
    pub fn new(addr: &str) -> Target {
        Target {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request without a body; manifest requests accept every manifest type.
    pub async fn req(&self, method: Method, path: &str) -> Result<Response, String> {
        let mut rb = self.http.request(method, self.url(path));
        if path.contains("/manifests/") {
            rb = rb.header("Accept", ACCEPT);
        }
        rb.send().await.map_err(|e| chain(&e))
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Response, String> {
        rb.send().await.map_err(|e| chain(&e))
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.put(self.url(path))
    }
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }
    pub fn patch(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.patch(self.url(path))
    }

    /// Push `bytes` as a blob with one POST `?digest=`.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<Digest, String> {
        let d = Digest::sha256(bytes);
        let r = self
            .send(
                self.post(&format!("/v2/{repo}/blobs/uploads/?digest={d}"))
                    .body(bytes.to_vec()),
            )
            .await?;
        if r.status() == StatusCode::CREATED {
            return Ok(d);
        }
        // Registries may refuse monolithic POST: fall back to POST + PUT.
        let loc =
            location(&r).ok_or_else(|| format!("push blob: {} without Location", r.status()))?;
        let r = self
            .send(
                self.put(&with_query(&loc, &format!("digest={d}")))
                    .body(bytes.to_vec()),
            )
            .await?;
        expect_status(&r, StatusCode::CREATED, "finish blob upload")?;
        Ok(d)
    }

    /// Put a manifest; returns the response.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Response, String> {
        self.send(
            self.put(&format!("/v2/{repo}/manifests/{reference}"))
                .header("Content-Type", media_type)
                .body(bytes.to_vec()),
        )
        .await
    }

    /// Push a one-layer image tagged `tag`; returns the manifest bytes and digest.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: &str,
        seed: &str,
    ) -> Result<(Vec<u8>, Digest), String> {
        let (manifest, _) = self.image_manifest(repo, seed, None).await?;
        let r = self
            .put_manifest(repo, tag, oci::media::OCI_MANIFEST, &manifest)
            .await?;
        expect_status(&r, StatusCode::CREATED, "put manifest")?;
        let d = Digest::sha256(&manifest);
        Ok((manifest, d))
    }

    /// Push a config and layer, and build (not push) a manifest for them.
    pub async fn image_manifest(
        &self,
        repo: &str,
        seed: &str,
        extra: Option<(&str, serde_json::Value)>,
    ) -> Result<(Vec<u8>, Digest), String> {
        let layer = format!("layer of {seed}").into_bytes();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&layer).to_string()]}
        }))
        .expect("json");
        let ld = self.push_blob(repo, &layer).await?;
        let cd = self.push_blob(repo, &config).await?;
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::media::OCI_MANIFEST,
            "config": {"mediaType": oci::media::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
            "layers": [{"mediaType": oci::media::OCI_LAYER_TAR, "digest": ld.to_string(), "size": layer.len()}],
        });
        if let Some((k, v)) = extra {
            m[k] = v;
        }
        let bytes = serde_json::to_vec(&m).expect("json");
        let d = Digest::of(Algorithm::Sha256, &bytes);
        Ok((bytes, d))
    }
}

/// A GET sent byte for byte (HTTP clients normalise `%2e%2e` away); returns the status
/// and the body.
pub async fn raw_get(t: &Target, path: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = t.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// An error with its causes.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s = format!("{s}: {c}");
        cur = c.source();
    }
    s
}

pub fn location(r: &Response) -> Option<String> {
    r.headers()
        .get("location")?
        .to_str()
        .ok()
        .map(str::to_owned)
}

pub fn header(r: &Response, name: &str) -> Option<String> {
    r.headers().get(name)?.to_str().ok().map(str::to_owned)
}

pub fn with_query(url: &str, q: &str) -> String {
    if url.contains('?') {
        format!("{url}&{q}")
    } else {
        format!("{url}?{q}")
    }
}

pub fn expect_status(r: &Response, want: StatusCode, what: &str) -> Outcome {
    if r.status() == want {
        Ok(())
    } else {
        Err(format!("{what}: status {} (want {want})", r.status()))
    }
}

/// Check an error response's status and the spec envelope's first code.
pub async fn expect_error(r: Response, want: StatusCode, code: &str, what: &str) -> Outcome {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let got = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_owned));
    if status == want && got.as_deref() == Some(code) {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {status} {got:?} (want {want} {code}); body {body:.200}"
        ))
    }
}

/// Every check, in order.
pub const ALL: &[&str] = &[
    "ping",
    "pull_unknown",
    "pull_invalid_reference",
    "push_monolithic",
    "blob_range",
    "push_post_put",
    "push_chunked",
    "chunk_out_of_order",
    "chunk_size_mismatch",
    "blob_digest_mismatch",
    "upload_digest_mismatch",
    "upload_cancel",
    "upload_resume",
    "mount",
    "mount_unknown_falls_back",
    "manifest_by_tag_and_digest",
    "manifest_put_by_digest",
    "manifest_media_type_mismatch",
    "manifest_ambiguous",
    "manifest_blob_unknown",
    "manifest_subject_unknown",
    "manifest_large",
    "manifest_too_large",
    "tags_pagination",
    "tags_pagination_bad_n",
    "catalog",
    "referrers",
    "names_invalid",
    "digests_invalid",
    "sha512_blob",
    "deletes",
    "delete_cross_repo",
];

/// Run the check called `name`.
pub async fn run(name: &str, t: &Target) -> Outcome {
    match name {
        "ping" => ping(t).await,
        "pull_unknown" => pull_unknown(t).await,
        "pull_invalid_reference" => pull_invalid_reference(t).await,
        "push_monolithic" => push_monolithic(t).await,
        "blob_range" => blob_range(t).await,
        "push_post_put" => push_post_put(t).await,
        "push_chunked" => push_chunked(t).await,
        "chunk_out_of_order" => chunk_out_of_order(t).await,
        "chunk_size_mismatch" => chunk_size_mismatch(t).await,
        "blob_digest_mismatch" => blob_digest_mismatch(t).await,
        "upload_digest_mismatch" => upload_digest_mismatch(t).await,
        "upload_cancel" => upload_cancel(t).await,
        "upload_resume" => upload_resume(t).await,
        "mount" => mount(t).await,
        "mount_unknown_falls_back" => mount_unknown_falls_back(t).await,
        "manifest_by_tag_and_digest" => manifest_by_tag_and_digest(t).await,
        "manifest_put_by_digest" => manifest_put_by_digest(t).await,
        "manifest_media_type_mismatch" => manifest_media_type_mismatch(t).await,
        "manifest_ambiguous" => manifest_ambiguous(t).await,
        "manifest_blob_unknown" => manifest_blob_unknown(t).await,
        "manifest_subject_unknown" => manifest_subject_unknown(t).await,
        "manifest_large" => manifest_large(t).await,
        "manifest_too_large" => manifest_too_large(t).await,
        "tags_pagination" => tags_pagination(t).await,
        "tags_pagination_bad_n" => tags_pagination_bad_n(t).await,
        "catalog" => catalog(t).await,
        "referrers" => referrers(t).await,
        "names_invalid" => names_invalid(t).await,
        "digests_invalid" => digests_invalid(t).await,
        "sha512_blob" => sha512_blob(t).await,
        "deletes" => deletes(t).await,
        "delete_cross_repo" => delete_cross_repo(t).await,
        "delete_disabled" => delete_disabled(t).await,
        other => Err(format!("no check named {other}")),
    }
}
