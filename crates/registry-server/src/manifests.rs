//! Manifests (by tag and digest), tag lists, the catalog and the referrers API.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use oci::{Descriptor, Digest, media};
use serde_json::Value;

use crate::error::ApiError;
use crate::route::Ref;
use crate::{MANIFEST_CAP, Registry, json_response, query_param};

type Result<T> = std::result::Result<T, ApiError>;

/// Largest page of a tag list or the catalog.
pub const PAGE_MAX: usize = 10_000;

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The digest `reference` names in `name`, with its media type.
fn resolve(reg: &Registry, name: &str, reference: &Ref) -> Result<(Digest, String)> {
    let unknown = || ApiError::manifest_unknown(&reference.to_string());
    let digest = match reference {
        Ref::Digest(d) => d.clone(),
        Ref::Tag(t) => reg.repos.tag(name, t)?.ok_or_else(unknown)?,
    };
    let media_type = reg.repos.manifest(name, &digest)?.ok_or_else(unknown)?;
    Ok((digest, media_type))
}

pub async fn get(reg: &Arc<Registry>, name: &str, reference: &Ref, head: bool) -> Result<Response> {
    let (digest, media_type) = blocking(|| resolve(reg, name, reference))?;
    let bytes = blocking(|| reg.store.read_document(&digest))?;
    let b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type)
        .header(header::CONTENT_LENGTH, bytes.len())
        .header("Docker-Content-Digest", digest.to_string());
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Ok(b.body(body).expect("valid response parts"))
}

/// Read a body of at most `cap` bytes; more is 413.
async fn read_capped(req: Request, cap: usize) -> Result<Vec<u8>> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("manifest is over the {cap}-byte limit"),
        )
    };
    let mut out = Vec::new();
    let mut over = false;
    let mut seen = 0usize;
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::size_invalid(format!("request body failed: {e}")))?;
        seen += chunk.len();
        over |= seen > cap;
        if over {
            // Drain a little more so the client reads the 413 instead of a reset;
            // past twice the cap the connection is dropped.
            if seen > 2 * cap {
                return Err(too_large());
            }
            continue;
        }
        out.extend_from_slice(&chunk);
    }
    if over {
        return Err(too_large());
    }
    Ok(out)
}

fn descriptors(v: &Value, key: &str) -> Result<Vec<Descriptor>> {
    match v.get(key) {
        None => Ok(Vec::new()),
        Some(x) => serde_json::from_value(x.clone()).map_err(|e| {
            ApiError::manifest_invalid(format!("field {key:?} is not a list of descriptors: {e}"))
        }),
    }
}

fn non_distributable(media_type: &str) -> bool {
    media_type.contains("nondistributable") || media_type.contains("foreign")
}

/// Check a manifest document; returns (media type, subject, artifact type).
/// References are protected by `lease` as they are checked, so GC cannot take them
/// between this check and the manifest's link.
fn validate(
    reg: &Registry,
    lease: &content::Lease,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<(String, Option<Descriptor>, Option<String>)> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::manifest_invalid(format!("manifest is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::manifest_invalid("manifest is not a JSON object"));
    }
    let declared = v.get("mediaType").and_then(Value::as_str);
    if let Some(mt) = declared
        && mt != content_type
    {
        return Err(ApiError::manifest_invalid(format!(
            "mediaType {mt:?} does not match Content-Type {content_type:?}"
        )));
    }
    let media_type = declared.unwrap_or(content_type).to_owned();
    if media_type.is_empty() {
        return Err(ApiError::manifest_invalid("manifest has no media type"));
    }
    let has_manifests = v.get("manifests").is_some();
    if has_manifests && (v.get("layers").is_some() || v.get("config").is_some()) {
        return Err(ApiError::manifest_invalid(
            "a document cannot have both `manifests` and `layers`/`config`",
        ));
    }
    let blob_unknown = |d: &Digest| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            format!("referenced {d} is not known"),
        )
    };
    for m in descriptors(&v, "manifests")? {
        if reg.repos.manifest(name, &m.digest)?.is_none() || !reg.store.protect(lease, &m.digest)? {
            return Err(blob_unknown(&m.digest));
        }
    }
    let mut blobs = descriptors(&v, "layers")?;
    if let Some(c) = v.get("config") {
        blobs.push(
            serde_json::from_value(c.clone())
                .map_err(|e| ApiError::manifest_invalid(format!("config: {e}")))?,
        );
    }
    for b in blobs {
        let present = reg.repos.has_blob(name, &b.digest) && reg.store.protect(lease, &b.digest)?;
        if !present && !non_distributable(&b.media_type) {
            return Err(blob_unknown(&b.digest));
        }
    }
    let subject = match v.get("subject") {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<Descriptor>(s.clone())
                .map_err(|e| ApiError::manifest_invalid(format!("subject: {e}")))?,
        ),
    };
    let artifact_type = v
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            v.get("config")
                .and_then(|c| c.get("mediaType"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    Ok((media_type, subject, artifact_type))
}

pub async fn put(
    reg: &Arc<Registry>,
    name: &str,
    reference: &Ref,
    req: Request,
) -> Result<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = read_capped(req, MANIFEST_CAP).await?;
    let algorithm = match reference {
        Ref::Digest(d) => d.algorithm(),
        Ref::Tag(_) => oci::Algorithm::Sha256,
    };
    let digest = Digest::of(algorithm, &bytes);
    if let Ref::Digest(d) = reference
        && *d != digest
    {
        return Err(ApiError::digest_invalid(format!(
            "manifest hashes to {digest}, not {d}"
        )));
    }
    // Held until the manifest is linked: it keeps the references and the manifest's own
    // blob alive against a concurrent GC.
    let lease = blocking(|| reg.store.lease())?;
    let (media_type, subject, artifact_type) =
        blocking(|| validate(reg, &lease, name, &content_type, &bytes))?;
    blocking(|| -> Result<()> {
        // Order: blob committed → referrer entry → manifest link → tag.
        let expected = content::Expected {
            digest: digest.clone(),
            size: Some(bytes.len() as u64),
        };
        reg.store
            .write_blob(&lease, &mut &bytes[..], Some(&expected))?;
        if let Some(s) = &subject {
            let mut desc = Descriptor::new(&media_type, digest.clone(), bytes.len() as u64);
            desc.artifact_type = artifact_type.clone();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let Some(a) = v
                .get("annotations")
                .and_then(|a| serde_json::from_value(a.clone()).ok())
            {
                desc.annotations = a;
            }
            reg.repos.add_referrer(name, &s.digest, &desc)?;
        }
        reg.repos.link_manifest(name, &digest, &media_type)?;
        if let Ref::Tag(t) = reference {
            reg.repos.set_tag(name, t, &digest)?;
        }
        Ok(())
    })?;
    let mut b = Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::CONTENT_LENGTH, 0);
    if let Some(s) = &subject {
        b = b.header("OCI-Subject", s.digest.to_string());
    }
    Ok(b.body(Body::empty()).expect("valid response parts"))
}

pub fn delete(reg: &Arc<Registry>, name: &str, reference: &Ref) -> Result<Response> {
    if !reg.delete {
        return Err(ApiError::unsupported(
            "deletes are disabled on this registry",
        ));
    }
    let found = blocking(|| -> Result<bool> {
        Ok(match reference {
            Ref::Tag(t) => reg.repos.remove_tag(name, t)?,
            Ref::Digest(d) => {
                // Tags first: a tag never points at an unlinked manifest.
                reg.repos.untag_digest(name, d)?;
                reg.repos.unlink_manifest(name, d)?
            }
        })
    })?;
    if !found {
        return Err(ApiError::manifest_unknown(&reference.to_string()));
    }
    Ok(Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response parts"))
}

/// `n` and `last` of a paginated list: `n` must be a non-negative integer, clamped.
fn page(req: &Request) -> Result<(Option<usize>, Option<String>)> {
    let n = match query_param(req, "n") {
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map(|n| n.min(PAGE_MAX as u64) as usize)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "PAGINATION_NUMBER_INVALID",
                        format!("invalid page size n={s:?}"),
                    )
                })?,
        ),
    };
    Ok((n, query_param(req, "last")))
}

/// Apply `n`/`last` to a sorted list; the `Link` header of the next page, if any.
fn paginate(
    all: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
    path: &str,
) -> (Vec<String>, Option<String>) {
    let mut items: Vec<String> = match last {
        Some(l) => all.into_iter().filter(|t| t.as_str() > l).collect(),
        None => all,
    };
    let n = n.unwrap_or(PAGE_MAX);
    let more = items.len() > n;
    items.truncate(n);
    let link = match (more, items.last()) {
        (true, Some(l)) => Some(format!("<{path}?n={n}&last={l}>; rel=\"next\"")),
        _ => None,
    };
    (items, link)
}

fn list_response(v: Value, link: Option<String>) -> Response {
    let mut r = json_response(StatusCode::OK, &v);
    if let Some(l) = link
        && let Ok(h) = header::HeaderValue::from_str(&l)
    {
        r.headers_mut().insert(header::LINK, h);
    }
    r
}

pub fn tags(reg: &Arc<Registry>, name: &str, req: &Request) -> Result<Response> {
    let (n, last) = page(req)?;
    let all = blocking(|| reg.repos.tags(name))?.ok_or_else(|| ApiError::name_unknown(name))?;
    let (tags, link) = paginate(all, n, last.as_deref(), &format!("/v2/{name}/tags/list"));
    Ok(list_response(
        serde_json::json!({"name": name, "tags": tags}),
        link,
    ))
}

pub fn catalog(reg: &Arc<Registry>, req: &Request) -> Result<Response> {
    let (n, last) = page(req)?;
    let all = blocking(|| reg.repos.catalog())?;
    let (repos, link) = paginate(all, n, last.as_deref(), "/v2/_catalog");
    Ok(list_response(
        serde_json::json!({"repositories": repos}),
        link,
    ))
}

pub fn referrers(
    reg: &Arc<Registry>,
    name: &str,
    subject: &Digest,
    req: &Request,
) -> Result<Response> {
    let filter = query_param(req, "artifactType");
    let mut list = blocking(|| reg.repos.referrers(name, subject))?;
    if let Some(f) = &filter {
        list.retain(|d| d.artifact_type.as_deref() == Some(f.as_str()));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": list,
    });
    let mut r = json_response(StatusCode::OK, &index);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(media::OCI_INDEX),
    );
    if filter.is_some() {
        r.headers_mut().insert(
            "OCI-Filters-Applied",
            header::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}
