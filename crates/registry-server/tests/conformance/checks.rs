//! The checks. Pull, push, content discovery, content management, and the
//! server cases of SECURITY-CASES.md section E (41–46, 48, 50; 47 and 49 need a
//! process to kill and a GC to run, and live in their own tests).

use oci::{Algorithm, Digest};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Outcome, Target, expect_error, expect_status, header, location, with_query};
use crate::ensure;

pub(super) async fn ping(t: &Target) -> Outcome {
    let r = t.req(Method::GET, "/v2/").await?;
    expect_status(&r, StatusCode::OK, "GET /v2/")
}

pub(super) async fn pull_unknown(t: &Target) -> Outcome {
    let r = t.push_image("c/unknown", "v1", "unknown").await;
    r?;
    let r = t.req(Method::GET, "/v2/c/unknown/manifests/nope").await?;
    expect_error(r, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "unknown tag").await?;
    let d = Digest::sha256(b"never pushed");
    let r = t
        .req(Method::GET, &format!("/v2/c/unknown/blobs/{d}"))
        .await?;
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "unknown blob").await
}

/// A reference that is neither a tag nor a digest names no manifest: GET and HEAD are
/// 404 (the spec's conformance suite asks for `.INVALID_MANIFEST_NAME`).
pub(super) async fn pull_invalid_reference(t: &Target) -> Outcome {
    t.push_image("c/badref", "v1", "badref").await?;
    for reference in [".INVALID_MANIFEST_NAME", "-dash", "a%2fb"] {
        let path = format!("/v2/c/badref/manifests/{reference}");
        for method in [Method::GET, Method::HEAD] {
            let r = t.req(method.clone(), &path).await?;
            expect_status(&r, StatusCode::NOT_FOUND, &format!("{method} {reference}"))?;
        }
    }
    Ok(())
}

pub(super) async fn blob_is(t: &Target, repo: &str, d: &Digest, bytes: &[u8]) -> Outcome {
    let r = t
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
        .await?;
    expect_status(&r, StatusCode::OK, "HEAD blob")?;
    ensure!(
        header(&r, "content-length") == Some(bytes.len().to_string()),
        "HEAD blob: Content-Length {:?}",
        header(&r, "content-length")
    );
    let r = t.req(Method::GET, &format!("/v2/{repo}/blobs/{d}")).await?;
    expect_status(&r, StatusCode::OK, "GET blob")?;
    ensure!(
        header(&r, "docker-content-digest") == Some(d.to_string()),
        "GET blob: digest header"
    );
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure!(
        got.as_ref() == bytes,
        "GET blob: {} bytes differ",
        got.len()
    );
    Ok(())
}

pub(super) async fn blob_absent(t: &Target, repo: &str, d: &Digest) -> Outcome {
    let r = t
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
        .await?;
    expect_status(
        &r,
        StatusCode::NOT_FOUND,
        "HEAD of a blob that must not exist",
    )
}

pub(super) async fn push_monolithic(t: &Target) -> Outcome {
    let bytes = b"monolithic blob".to_vec();
    let d = Digest::sha256(&bytes);
    let r = t
        .send(
            t.post(&format!("/v2/c/mono/blobs/uploads/?digest={d}"))
                .body(bytes.clone()),
        )
        .await?;
    expect_status(&r, StatusCode::CREATED, "POST ?digest=")?;
    ensure!(location(&r).is_some(), "POST ?digest=: no Location");
    blob_is(t, "c/mono", &d, &bytes).await
}

/// A ranged GET (how clients resume a pull).
pub(super) async fn blob_range(t: &Target) -> Outcome {
    let bytes: Vec<u8> = (0..100u8).collect();
    let d = t.push_blob("c/range", &bytes).await?;
    let url = t.url(&format!("/v2/c/range/blobs/{d}"));
    let r = t
        .send(t.http.get(&url).header("Range", "bytes=10-19"))
        .await?;
    expect_status(&r, StatusCode::PARTIAL_CONTENT, "GET bytes=10-19")?;
    ensure!(
        header(&r, "content-range").as_deref() == Some("bytes 10-19/100"),
        "Content-Range {:?}",
        header(&r, "content-range")
    );
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure!(got.as_ref() == &bytes[10..20], "range body {got:?}");
    let r = t
        .send(t.http.get(&url).header("Range", "bytes=90-"))
        .await?;
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure!(got.as_ref() == &bytes[90..], "open range body {got:?}");
    Ok(())
}

pub(super) async fn start(t: &Target, repo: &str) -> Result<String, String> {
    let r = t
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .await?;
    expect_status(&r, StatusCode::ACCEPTED, "POST upload")?;
    location(&r).ok_or_else(|| "POST upload: no Location".to_owned())
}

pub(super) async fn push_post_put(t: &Target) -> Outcome {
    let bytes = b"post then put".to_vec();
    let d = Digest::sha256(&bytes);
    let loc = start(t, "c/postput").await?;
    let r = t
        .send(
            t.put(&with_query(&loc, &format!("digest={d}")))
                .body(bytes.clone()),
        )
        .await?;
    expect_status(&r, StatusCode::CREATED, "PUT ?digest=")?;
    blob_is(t, "c/postput", &d, &bytes).await
}

pub(super) async fn patch(
    t: &Target,
    loc: &str,
    from: u64,
    chunk: &[u8],
) -> Result<reqwest::Response, String> {
    let end = from + chunk.len() as u64 - 1;
    t.send(
        t.patch(loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{from}-{end}"))
            .body(chunk.to_vec()),
    )
    .await
}

pub(super) async fn push_chunked(t: &Target) -> Outcome {
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256(&bytes);
    let mut loc = start(t, "c/chunked").await?;
    let mut at = 0u64;
    for chunk in bytes.chunks(1000) {
        let r = patch(t, &loc, at, chunk).await?;
        expect_status(&r, StatusCode::ACCEPTED, "PATCH chunk")?;
        at += chunk.len() as u64;
        ensure!(
            header(&r, "range") == Some(format!("0-{}", at - 1)),
            "PATCH: Range {:?}",
            header(&r, "range")
        );
        loc = location(&r).ok_or("PATCH: no Location")?;
    }
    let r = t.req(Method::GET, &loc).await?;
    expect_status(&r, StatusCode::NO_CONTENT, "upload status")?;
    ensure!(
        header(&r, "range") == Some("0-2999".into()),
        "status Range {:?}",
        header(&r, "range")
    );
    let r = t
        .send(t.put(&with_query(&loc, &format!("digest={d}"))))
        .await?;
    expect_status(&r, StatusCode::CREATED, "final PUT")?;
    blob_is(t, "c/chunked", &d, &bytes).await
}

pub(super) async fn chunk_out_of_order(t: &Target) -> Outcome {
    let loc = start(t, "c/order").await?;
    let r = patch(t, &loc, 0, b"0123456789").await?;
    expect_status(&r, StatusCode::ACCEPTED, "first chunk")?;
    let loc = location(&r).ok_or("no Location")?;
    let r = patch(t, &loc, 20, b"abcdefghij").await?;
    expect_status(&r, StatusCode::RANGE_NOT_SATISFIABLE, "chunk past the end")?;
    let r = patch(t, &loc, 5, b"abcdefghij").await?;
    expect_status(&r, StatusCode::RANGE_NOT_SATISFIABLE, "overlapping chunk")?;
    let r = t.req(Method::GET, &loc).await?;
    ensure!(
        header(&r, "range") == Some("0-9".into()),
        "status after refused chunks: {:?}",
        header(&r, "range")
    );
    Ok(())
}

pub(super) async fn chunk_size_mismatch(t: &Target) -> Outcome {
    let loc = start(t, "c/size").await?;
    let r = t
        .send(
            t.patch(&loc)
                .header("Content-Range", "0-99")
                .body(b"only ten b".to_vec()),
        )
        .await?;
    ensure!(
        matches!(r.status().as_u16(), 400 | 416),
        "chunk shorter than its Content-Range: {}",
        r.status()
    );
    let d = Digest::sha256(b"only ten b");
    blob_absent(t, "c/size", &d).await?;
    // A final PUT whose body is not the length it declares: SIZE_INVALID, and the
    // blob is not there.
    let loc = start(t, "c/size").await?;
    let body = b"final chunk".to_vec();
    let d = Digest::sha256(&body);
    let r = t
        .send(
            t.put(&with_query(&loc, &format!("digest={d}")))
                .header("Content-Range", format!("0-{}", body.len() + 9))
                .body(body),
        )
        .await?;
    ensure!(
        matches!(r.status().as_u16(), 400 | 416),
        "final PUT shorter than its Content-Range: {}",
        r.status()
    );
    let code = r.text().await.unwrap_or_default();
    ensure!(
        code.contains("SIZE_INVALID"),
        "final PUT size mismatch: {code:.200}"
    );
    blob_absent(t, "c/size", &d).await
}

pub(super) async fn blob_digest_mismatch(t: &Target) -> Outcome {
    let wrong = Digest::sha256(b"something else");
    let r = t
        .send(
            t.post(&format!("/v2/c/bad/blobs/uploads/?digest={wrong}"))
                .body(b"actual".to_vec()),
        )
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        "POST with wrong digest",
    )
    .await?;
    blob_absent(t, "c/bad", &wrong).await?;
    blob_absent(t, "c/bad", &Digest::sha256(b"actual")).await
}

pub(super) async fn upload_digest_mismatch(t: &Target) -> Outcome {
    let wrong = Digest::sha256(b"something else 2");
    let loc = start(t, "c/bad2").await?;
    let r = t
        .send(
            t.put(&with_query(&loc, &format!("digest={wrong}")))
                .body(b"actual 2".to_vec()),
        )
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        "final PUT with wrong digest",
    )
    .await?;
    blob_absent(t, "c/bad2", &wrong).await?;
    blob_absent(t, "c/bad2", &Digest::sha256(b"actual 2")).await
}

pub(super) async fn upload_cancel(t: &Target) -> Outcome {
    let loc = start(t, "c/cancel").await?;
    let r = t.req(Method::DELETE, &loc).await?;
    expect_status(&r, StatusCode::NO_CONTENT, "DELETE upload")?;
    let r = t.req(Method::GET, &loc).await?;
    expect_error(
        r,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
        "status of a cancelled upload",
    )
    .await
}

/// Case 48: resume from the upload status, and a duplicate final PUT.
pub(super) async fn upload_resume(t: &Target) -> Outcome {
    let bytes: Vec<u8> = (0..2000u32).map(|i| (i % 7) as u8).collect();
    let d = Digest::sha256(&bytes);
    let loc = start(t, "c/resume").await?;
    let r = patch(t, &loc, 0, &bytes[..700]).await?;
    expect_status(&r, StatusCode::ACCEPTED, "first chunk")?;
    // The client "lost" that response: ask where to continue.
    let r = t.req(Method::GET, &loc).await?;
    expect_status(&r, StatusCode::NO_CONTENT, "upload status")?;
    let range = header(&r, "range").ok_or("no Range")?;
    let end: u64 = range
        .split('-')
        .nth(1)
        .and_then(|e| e.parse().ok())
        .ok_or("bad Range")?;
    let loc = location(&r).unwrap_or(loc);
    let r = patch(t, &loc, end + 1, &bytes[end as usize + 1..]).await?;
    expect_status(&r, StatusCode::ACCEPTED, "resumed chunk")?;
    let loc = location(&r).ok_or("no Location")?;
    let put = with_query(&loc, &format!("digest={d}"));
    let r = t.send(t.put(&put)).await?;
    expect_status(&r, StatusCode::CREATED, "final PUT")?;
    // The response was "lost" too: the PUT again fails, and a HEAD says the blob is there.
    let r = t.send(t.put(&put)).await?;
    ensure!(
        r.status().is_client_error(),
        "duplicate final PUT: {}",
        r.status()
    );
    blob_is(t, "c/resume", &d, &bytes).await
}

pub(super) async fn mount(t: &Target) -> Outcome {
    let bytes = b"mounted blob".to_vec();
    let d = t.push_blob("c/mount-a", &bytes).await?;
    let r = t
        .req(
            Method::POST,
            &format!("/v2/c/mount-b/blobs/uploads/?mount={d}&from=c/mount-a"),
        )
        .await?;
    expect_status(&r, StatusCode::CREATED, "mount")?;
    ensure!(
        header(&r, "docker-content-digest") == Some(d.to_string()),
        "mount: digest header"
    );
    blob_is(t, "c/mount-b", &d, &bytes).await
}

pub(super) async fn mount_unknown_falls_back(t: &Target) -> Outcome {
    let d = Digest::sha256(b"not anywhere");
    let r = t
        .req(
            Method::POST,
            &format!("/v2/c/mount-c/blobs/uploads/?mount={d}&from=c/mount-a"),
        )
        .await?;
    expect_status(&r, StatusCode::ACCEPTED, "mount of an unknown blob")?;
    ensure!(location(&r).is_some(), "fallback session has no Location");
    Ok(())
}

pub(super) async fn manifest_by_tag_and_digest(t: &Target) -> Outcome {
    let (m, d) = t.push_image("c/manifest", "v1", "manifest").await?;
    for reference in ["v1".to_owned(), d.to_string()] {
        let path = format!("/v2/c/manifest/manifests/{reference}");
        let r = t
            .send(
                t.http
                    .get(t.url(&path))
                    .header("Accept", oci::media::OCI_MANIFEST),
            )
            .await?;
        expect_status(&r, StatusCode::OK, "GET manifest")?;
        ensure!(
            header(&r, "content-type").as_deref() == Some(oci::media::OCI_MANIFEST),
            "Content-Type"
        );
        ensure!(
            header(&r, "docker-content-digest") == Some(d.to_string()),
            "digest header"
        );
        ensure!(
            r.bytes().await.map_err(|e| e.to_string())?.as_ref() == m.as_slice(),
            "bytes differ"
        );
        let r = t.req(Method::HEAD, &path).await?;
        expect_status(&r, StatusCode::OK, "HEAD manifest")?;
        ensure!(
            header(&r, "content-length") == Some(m.len().to_string()),
            "HEAD Content-Length"
        );
    }
    Ok(())
}

pub(super) async fn manifest_put_by_digest(t: &Target) -> Outcome {
    let (m, d) = t.image_manifest("c/bydigest", "bydigest", None).await?;
    let r = t
        .put_manifest("c/bydigest", &d.to_string(), oci::media::OCI_MANIFEST, &m)
        .await?;
    expect_status(&r, StatusCode::CREATED, "PUT by digest")?;
    let wrong = Digest::sha256(b"other");
    let r = t
        .put_manifest(
            "c/bydigest",
            &wrong.to_string(),
            oci::media::OCI_MANIFEST,
            &m,
        )
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        "PUT under another digest",
    )
    .await?;
    let r = t
        .req(Method::HEAD, &format!("/v2/c/bydigest/manifests/{wrong}"))
        .await?;
    expect_status(&r, StatusCode::NOT_FOUND, "manifest under a wrong digest")
}

/// Case 43 (CVE-2021-41190).
pub(super) async fn manifest_media_type_mismatch(t: &Target) -> Outcome {
    let (m, _) = t.image_manifest("c/mt", "mt", None).await?;
    let r = t
        .put_manifest("c/mt", "v1", oci::media::OCI_INDEX, &m)
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
        "mediaType ≠ Content-Type",
    )
    .await
}

pub(super) async fn manifest_ambiguous(t: &Target) -> Outcome {
    let (_, inner) = t.push_image("c/ambiguous", "inner", "ambiguous").await?;
    let extra =
        json!([{"mediaType": oci::media::OCI_MANIFEST, "digest": inner.to_string(), "size": 1}]);
    let (m, _) = t
        .image_manifest("c/ambiguous", "ambiguous", Some(("manifests", extra)))
        .await?;
    let r = t
        .put_manifest("c/ambiguous", "v1", oci::media::OCI_MANIFEST, &m)
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
        "manifests and layers",
    )
    .await
}

/// Case 44.
pub(super) async fn manifest_blob_unknown(t: &Target) -> Outcome {
    let (m, _) = t.image_manifest("c/missing", "missing", None).await?;
    let mut v: serde_json::Value = serde_json::from_slice(&m).expect("json");
    v["layers"][0]["digest"] = json!(Digest::sha256(b"never uploaded").to_string());
    let m = serde_json::to_vec(&v).expect("json");
    let r = t
        .put_manifest("c/missing", "v1", oci::media::OCI_MANIFEST, &m)
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "MANIFEST_BLOB_UNKNOWN",
        "unknown layer",
    )
    .await
}

pub(super) async fn manifest_subject_unknown(t: &Target) -> Outcome {
    let subject = json!({"mediaType": oci::media::OCI_MANIFEST, "digest": Digest::sha256(b"no such manifest").to_string(), "size": 16});
    let (m, _) = t
        .image_manifest("c/subject", "subject", Some(("subject", subject)))
        .await?;
    let r = t
        .put_manifest("c/subject", "v1", oci::media::OCI_MANIFEST, &m)
        .await?;
    expect_status(&r, StatusCode::CREATED, "manifest with an unknown subject")?;
    ensure!(
        header(&r, "oci-subject") == Some(Digest::sha256(b"no such manifest").to_string()),
        "no OCI-Subject header"
    );
    Ok(())
}

pub(super) async fn padded_manifest(
    t: &Target,
    repo: &str,
    total: usize,
) -> Result<Vec<u8>, String> {
    let (m, _) = t
        .image_manifest(repo, repo, Some(("annotations", json!({"pad": ""}))))
        .await?;
    let pad = total - m.len();
    let (m, _) = t
        .image_manifest(
            repo,
            repo,
            Some(("annotations", json!({"pad": "x".repeat(pad)}))),
        )
        .await?;
    assert_eq!(m.len(), total);
    Ok(m)
}

/// Case 41: a 3.9 MB manifest is accepted.
pub(super) async fn manifest_large(t: &Target) -> Outcome {
    let m = padded_manifest(t, "c/large", 3_900_000).await?;
    let r = t
        .put_manifest("c/large", "v1", oci::media::OCI_MANIFEST, &m)
        .await?;
    expect_status(&r, StatusCode::CREATED, "3.9 MB manifest")
}

/// Case 41: 4 MiB + 1 is refused with 413 and not stored.
pub(super) async fn manifest_too_large(t: &Target) -> Outcome {
    let m = padded_manifest(t, "c/huge", (4 << 20) + 1).await?;
    let r = t
        .put_manifest("c/huge", "v1", oci::media::OCI_MANIFEST, &m)
        .await?;
    expect_status(&r, StatusCode::PAYLOAD_TOO_LARGE, "4 MiB + 1 manifest")?;
    let r = t.req(Method::HEAD, "/v2/c/huge/manifests/v1").await?;
    expect_status(&r, StatusCode::NOT_FOUND, "refused manifest")
}

pub(super) async fn tag_page(
    t: &Target,
    path: &str,
) -> Result<(Vec<String>, Option<String>), String> {
    let r = t.req(Method::GET, path).await?;
    expect_status(&r, StatusCode::OK, "tags list")?;
    let link = header(&r, "link");
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    let tags = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok((tags, link))
}

/// Link `<url>; rel="next"` → url, which must stay on this host (case 45).
fn next_link(link: &str, t: &Target) -> Result<String, String> {
    let url = link
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    ensure!(
        url.starts_with("/v2/") || url.starts_with(&t.base),
        "Link leaves the host: {url}"
    );
    Ok(url.to_owned())
}

pub(super) async fn tags_pagination(t: &Target) -> Outcome {
    for tag in ["a", "b", "c", "d", "e"] {
        t.push_image("c/tags", tag, "tags").await?;
    }
    let (all, link) = tag_page(t, "/v2/c/tags/tags/list").await?;
    ensure!(all == ["a", "b", "c", "d", "e"], "all tags: {all:?}");
    ensure!(link.is_none(), "Link on the last page");
    let (page, link) = tag_page(t, "/v2/c/tags/tags/list?n=2").await?;
    ensure!(page == ["a", "b"], "first page: {page:?}");
    let next = next_link(&link.ok_or("no Link with more tags")?, t)?;
    let (page, _) = tag_page(t, &next).await?;
    ensure!(page == ["c", "d"], "second page: {page:?}");
    let (page, link) = tag_page(t, "/v2/c/tags/tags/list?n=2&last=d").await?;
    ensure!(
        page == ["e"] && link.is_none(),
        "after d: {page:?} {link:?}"
    );
    let (page, _) = tag_page(t, "/v2/c/tags/tags/list?n=0").await?;
    ensure!(page.is_empty(), "n=0: {page:?}");
    Ok(())
}

/// Case 45 (CVE-2023-2253): absurd `n` and `last` are refused or clamped.
pub(super) async fn tags_pagination_bad_n(t: &Target) -> Outcome {
    t.push_image("c/badn", "v1", "badn").await?;
    for n in ["-1", "1e12", "abc"] {
        let r = t
            .req(Method::GET, &format!("/v2/c/badn/tags/list?n={n}"))
            .await?;
        ensure!(
            r.status() == StatusCode::BAD_REQUEST,
            "n={n}: {}",
            r.status()
        );
    }
    let (page, _) = tag_page(t, "/v2/c/badn/tags/list?n=1000000000000").await?;
    ensure!(page == ["v1"], "huge n: {page:?}");
    let last = "z".repeat(10_000);
    let (page, _) = tag_page(t, &format!("/v2/c/badn/tags/list?last={last}")).await?;
    ensure!(page.is_empty(), "huge last: {page:?}");
    Ok(())
}

pub(super) async fn catalog(t: &Target) -> Outcome {
    t.push_image("c/catalog-a", "v1", "cat").await?;
    t.push_image("c/catalog-b", "v1", "cat").await?;
    let r = t.req(Method::GET, "/v2/_catalog").await?;
    expect_status(&r, StatusCode::OK, "catalog")?;
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    let repos: Vec<&str> = v["repositories"]
        .as_array()
        .ok_or("no repositories")?
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    ensure!(
        repos.contains(&"c/catalog-a") && repos.contains(&"c/catalog-b"),
        "catalog: {repos:?}"
    );
    let r = t.req(Method::GET, "/v2/_catalog?n=1").await?;
    expect_status(&r, StatusCode::OK, "catalog page")?;
    next_link(&header(&r, "link").ok_or("catalog n=1: no Link")?, t)?;
    Ok(())
}

pub(super) async fn referrers(t: &Target) -> Outcome {
    let (_, subject) = t.push_image("c/referrers", "v1", "referrers").await?;
    let subj =
        json!({"mediaType": oci::media::OCI_MANIFEST, "digest": subject.to_string(), "size": 1});
    let (m, _) = t
        .image_manifest("c/referrers", "sig", Some(("subject", subj)))
        .await?;
    let mut v: serde_json::Value = serde_json::from_slice(&m).expect("json");
    v["artifactType"] = json!("application/vnd.example.sig");
    let m = serde_json::to_vec(&v).expect("json");
    let d = Digest::sha256(&m);
    let r = t
        .put_manifest("c/referrers", &d.to_string(), oci::media::OCI_MANIFEST, &m)
        .await?;
    expect_status(&r, StatusCode::CREATED, "put referrer")?;
    let r = t
        .req(Method::GET, &format!("/v2/c/referrers/referrers/{subject}"))
        .await?;
    expect_status(&r, StatusCode::OK, "referrers")?;
    let idx: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    let list = idx["manifests"].as_array().ok_or("no manifests")?;
    ensure!(
        list.len() == 1 && list[0]["digest"] == json!(d.to_string()),
        "referrers: {idx}"
    );
    ensure!(
        list[0]["artifactType"] == json!("application/vnd.example.sig"),
        "artifactType: {idx}"
    );
    let r = t
        .req(
            Method::GET,
            &format!("/v2/c/referrers/referrers/{subject}?artifactType=application/other"),
        )
        .await?;
    ensure!(
        header(&r, "oci-filters-applied").as_deref() == Some("artifactType"),
        "no OCI-Filters-Applied"
    );
    let idx: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    ensure!(
        idx["manifests"].as_array().is_some_and(Vec::is_empty),
        "filtered: {idx}"
    );
    Ok(())
}

/// Case 46: hostile names never reach a path.
pub(super) async fn names_invalid(t: &Target) -> Outcome {
    for path in [
        "/v2/c/%2e%2e/x/manifests/latest",
        "/v2/c/%2E%2E/%2e%2e/manifests/latest",
        "/v2/Upper/manifests/latest",
        "/v2/c/a..b/manifests/latest",
        "/v2/c/-a/tags/list",
    ] {
        let (status, body) = super::raw_get(t, path).await?;
        ensure!(
            status == 400 && body.contains("NAME_INVALID"),
            "{path}: {status} {body:.200}"
        );
    }
    Ok(())
}

pub(super) async fn digests_invalid(t: &Target) -> Outcome {
    let hex = "a".repeat(64);
    for d in [
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha256:{}", &hex[..63]),
        format!("sha384:{}", "a".repeat(96)),
        format!("sha256:{}%2f..", &hex[..60]),
    ] {
        let (status, body) = super::raw_get(t, &format!("/v2/c/digests/blobs/{d}")).await?;
        ensure!(
            status == 400 && body.contains("DIGEST_INVALID"),
            "{d}: {status} {body:.200}"
        );
    }
    Ok(())
}

pub(super) async fn sha512_blob(t: &Target) -> Outcome {
    let bytes = b"sha512 content".to_vec();
    let d = Digest::of(Algorithm::Sha512, &bytes);
    let r = t
        .send(
            t.post(&format!("/v2/c/sha512/blobs/uploads/?digest={d}"))
                .body(bytes.clone()),
        )
        .await?;
    let r = if r.status() == StatusCode::ACCEPTED {
        let loc = location(&r).ok_or("no Location")?;
        t.send(
            t.put(&with_query(&loc, &format!("digest={d}")))
                .body(bytes.clone()),
        )
        .await?
    } else {
        r
    };
    expect_status(&r, StatusCode::CREATED, "sha512 upload")?;
    blob_is(t, "c/sha512", &d, &bytes).await
}

/// Content management with deletes enabled.
pub(super) async fn deletes(t: &Target) -> Outcome {
    let (_, d) = t.push_image("c/delete", "v1", "delete").await?;
    t.push_image("c/delete", "v2", "delete").await?;
    let r = t.req(Method::DELETE, "/v2/c/delete/manifests/v2").await?;
    expect_status(&r, StatusCode::ACCEPTED, "DELETE tag")?;
    let (tags, _) = tag_page(t, "/v2/c/delete/tags/list").await?;
    ensure!(tags == ["v1"], "tags after tag delete: {tags:?}");
    let r = t
        .req(Method::HEAD, &format!("/v2/c/delete/manifests/{d}"))
        .await?;
    expect_status(&r, StatusCode::OK, "manifest after its other tag's delete")?;
    let r = t
        .req(Method::DELETE, &format!("/v2/c/delete/manifests/{d}"))
        .await?;
    expect_status(&r, StatusCode::ACCEPTED, "DELETE manifest")?;
    for reference in [d.to_string(), "v1".to_owned()] {
        let r = t
            .req(Method::GET, &format!("/v2/c/delete/manifests/{reference}"))
            .await?;
        expect_status(&r, StatusCode::NOT_FOUND, "deleted manifest")?;
    }
    let bd = t.push_blob("c/delete", b"deleted blob").await?;
    let r = t
        .req(Method::DELETE, &format!("/v2/c/delete/blobs/{bd}"))
        .await?;
    expect_status(&r, StatusCode::ACCEPTED, "DELETE blob")?;
    blob_absent(t, "c/delete", &bd).await
}

/// Case 50: a delete in one repository never shows in another.
pub(super) async fn delete_cross_repo(t: &Target) -> Outcome {
    let bytes = b"shared blob".to_vec();
    let d = t.push_blob("c/share-a", &bytes).await?;
    t.push_blob("c/share-b", &bytes).await?;
    blob_is(t, "c/share-a", &d, &bytes).await?;
    let r = t
        .req(Method::DELETE, &format!("/v2/c/share-a/blobs/{d}"))
        .await?;
    expect_status(&r, StatusCode::ACCEPTED, "DELETE blob")?;
    blob_absent(t, "c/share-a", &d).await?;
    blob_is(t, "c/share-b", &d, &bytes).await
}

/// Case 50, on a registry started without deletes.
pub async fn delete_disabled(t: &Target) -> Outcome {
    let (_, d) = t.push_image("c/nodelete", "v1", "nodelete").await?;
    for reference in [d.to_string(), "v1".to_owned()] {
        let r = t
            .req(
                Method::DELETE,
                &format!("/v2/c/nodelete/manifests/{reference}"),
            )
            .await?;
        expect_error(
            r,
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "DELETE with deletes disabled",
        )
        .await?;
    }
    let r = t.req(Method::GET, "/v2/c/nodelete/manifests/v1").await?;
    expect_status(&r, StatusCode::OK, "manifest after refused deletes")
}
