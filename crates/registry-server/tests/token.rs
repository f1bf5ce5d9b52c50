//! Bearer token auth (case 51): the test token server (`testkit::token`) issues the
//! good tokens; hostile ones are crafted here, and every one of them is a 401 that
//! changes nothing.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use registry_server::{Auth, TokenAuth};
use serde_json::{Value, json};
use testkit::token::{ISSUER, SERVICE, TokenServer, jwt};

const USER: &str = "tokenuser";
const PASSWORD: &str = "t0ken-pw";

async fn start(tokens: &TokenServer) -> common::Running {
    let auth = TokenAuth::load(&tokens.realm(), SERVICE, ISSUER, &tokens.cert_path()).unwrap();
    common::start(false, Some(Auth::Token(auth))).await
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new(testkit::require_tool("openssl"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A request with an optional bearer token; the status, `WWW-Authenticate` and body.
async fn send(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String, String) {
    let mut rb = reqwest::Client::new()
        .request(method, url)
        .body(body.to_vec());
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, r.text().await.unwrap())
}

fn sha256(b: &[u8]) -> String {
    oci::Digest::sha256(b).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_token_are_sent_to_the_realm_with_their_scope() {
    let tokens = TokenServer::start("127.0.0.1", USER, PASSWORD);
    let reg = start(&tokens).await;
    let base = format!("http://{}", reg.addr);
    let realm = tokens.realm();
    let cases = [
        (reqwest::Method::GET, "/v2/", None),
        (
            reqwest::Method::GET,
            "/v2/a/b/tags/list",
            Some("repository:a/b:pull"),
        ),
        (
            reqwest::Method::HEAD,
            "/v2/a/b/manifests/latest",
            Some("repository:a/b:pull"),
        ),
        (
            reqwest::Method::POST,
            "/v2/a/b/blobs/uploads/",
            Some("repository:a/b:pull,push"),
        ),
        (
            reqwest::Method::PUT,
            "/v2/a/b/manifests/v1",
            Some("repository:a/b:pull,push"),
        ),
        (
            reqwest::Method::DELETE,
            "/v2/a/b/manifests/v1",
            Some("repository:a/b:delete"),
        ),
        (
            reqwest::Method::GET,
            "/v2/_catalog",
            Some("registry:catalog:*"),
        ),
        (
            reqwest::Method::POST,
            &format!("/v2/a/b/blobs/uploads/?mount={}&from=c/d", sha256(b"x")),
            Some("repository:a/b:pull,push repository:c/d:pull"),
        ),
    ];
    for (method, path, scope) in cases {
        let (status, challenge, _) =
            send(method.clone(), &format!("{base}{path}"), None, b"").await;
        assert_eq!(status, 401, "{method} {path}");
        let mut want = format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\"");
        if let Some(s) = scope {
            want.push_str(&format!(",scope=\"{s}\""));
        }
        assert_eq!(challenge, want, "{method} {path}");
    }
    // A Basic header is not a token.
    let r = reqwest::Client::new()
        .get(format!("{base}/v2/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_grant_exactly_their_access() {
    let tokens = TokenServer::start("127.0.0.1", USER, PASSWORD);
    let reg = start(&tokens).await;
    let base = format!("http://{}", reg.addr);
    let push = tokens.token_for(&["repository:a/b:pull,push"]);
    let pull = tokens.token_for(&["repository:a/b:pull"]);
    let other = tokens.token_for(&["repository:a/c:pull,push"]);
    let catalog = tokens.token_for(&["registry:catalog:*"]);
    let blob = b"token-pushed blob";
    let upload = format!("{base}/v2/a/b/blobs/uploads/?digest={}", sha256(blob));
    let blob_url = format!("{base}/v2/a/b/blobs/{}", sha256(blob));

    let (status, challenge, body) = send(reqwest::Method::POST, &upload, Some(&pull), blob).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        challenge.ends_with(",error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        body.contains("does not grant push on repository:a/b"),
        "{body}"
    );
    let (status, ..) = send(reqwest::Method::GET, &blob_url, Some(&push), b"").await;
    assert_eq!(status, 404, "nothing was stored by the refused push");

    let (status, _, body) = send(reqwest::Method::POST, &upload, Some(&push), blob).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = send(reqwest::Method::GET, &blob_url, Some(&pull), b"").await;
    assert_eq!((status, body.as_bytes()), (200, &blob[..]));
    let (status, ..) = send(reqwest::Method::GET, &blob_url, Some(&other), b"").await;
    assert_eq!(status, 401, "a token for another repository reads nothing");
    // DELETE needs `delete`, which push does not include (and deletes are off anyway).
    let (status, challenge, _) = send(reqwest::Method::DELETE, &blob_url, Some(&push), b"").await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("scope=\"repository:a/b:delete\""),
        "{challenge}"
    );

    let cat = format!("{base}/v2/_catalog");
    let (status, ..) = send(reqwest::Method::GET, &cat, Some(&push), b"").await;
    assert_eq!(status, 401, "a repository token does not list the catalog");
    let (status, _, body) = send(reqwest::Method::GET, &cat, Some(&catalog), b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("a/b"), "{body}");
    // Any valid token opens the base path.
    let (status, ..) = send(
        reqwest::Method::GET,
        &format!("{base}/v2/"),
        Some(&other),
        b"",
    )
    .await;
    assert_eq!(status, 200);

    // A mount whose source the token cannot pull is a plain upload, not a mount.
    let mount = format!(
        "{base}/v2/a/c/blobs/uploads/?mount={}&from=a/b",
        sha256(blob)
    );
    let (status, ..) = send(reqwest::Method::POST, &mount, Some(&other), b"").await;
    assert_eq!(status, 202, "no pull on a/b: no mount");
    let both = tokens.token_for(&["repository:a/c:pull,push", "repository:a/b:pull"]);
    let (status, ..) = send(reqwest::Method::POST, &mount, Some(&both), b"").await;
    assert_eq!(status, 201, "pull on a/b: mounted");

    let log = reg.log_text();
    assert!(log.contains(&format!("\"user\":\"{USER}\"")), "{log}");
    assert!(!log.contains(&push) && !log.contains("Bearer"), "{log}");
}

/// The attacker's own RSA key and self-signed certificate, and its public key as a JWK.
fn attacker_key(dir: &Path) -> (std::path::PathBuf, String, Value) {
    let (key, cert) = (dir.join("evil.key"), dir.join("evil.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=manifold test token issuer",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let modulus = String::from_utf8(openssl(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-noout",
        "-modulus",
    ]))
    .unwrap();
    let hex = modulus.trim().strip_prefix("Modulus=").unwrap();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let pem = std::fs::read_to_string(&cert).unwrap();
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let jwk = json!({
        "kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(n),
        "kid": "ABCD:EFGH:IJKL:MNOP:QRST:UVWX:YZ23:4567:ABCD:EFGH:IJKL:MNOP",
    });
    (key, der_b64, jwk)
}

/// Case 51 (CVE-2025-24976 and friends): each hostile token is a 401 with
/// `error="invalid_token"` whose message names what is wrong, stores nothing, and
/// leaves the registry serving good tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tokens_are_refused() {
    let tokens = TokenServer::start("127.0.0.1", USER, PASSWORD);
    let reg = start(&tokens).await;
    let dir = tempfile::tempdir().unwrap();
    let (evil_key, evil_cert, jwk) = attacker_key(dir.path());
    let key = tokens.key_path();
    let scope = ["repository:a/b:pull,push"];
    let (header, claims) = tokens.parts_for(&scope);
    let with = |v: &Value, k: &str, x: Value| {
        let mut v = v.clone();
        v[k] = x;
        v
    };
    let without = |v: &Value, k: &str| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove(k);
        v
    };
    let unsigned = |h: &Value, c: &Value, sig: &str| {
        format!(
            "{}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(c.to_string())
        )
    };
    let good = jwt(&header, &claims, &key);
    let (g_head, g_claims, g_sig) = {
        let p: Vec<&str> = good.split('.').collect();
        (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
    };
    let kid_header = json!({"typ": "JWT", "alg": "RS256", "jwk": jwk, "kid": jwk["kid"]});
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            unsigned(&json!({"typ": "JWT", "alg": "none"}), &claims, ""),
            "algorithm \"none\"",
        ),
        (
            "alg None with the good signature",
            format!(
                "{}.{g_claims}.{g_sig}",
                URL_SAFE_NO_PAD.encode(json!({"alg": "None"}).to_string())
            ),
            "algorithm \"None\"",
        ),
        (
            "HS256 keyed with the certificate",
            unsigned(&with(&header, "alg", json!("HS256")), &claims, &g_sig),
            "algorithm \"HS256\"",
        ),
        (
            "embedded jwk and guessed kid, signed by the attacker",
            jwt(&kid_header, &claims, &evil_key),
            "signature",
        ),
        (
            "attacker's certificate in x5c",
            jwt(
                &with(&header, "x5c", json!([evil_cert])),
                &claims,
                &evil_key,
            ),
            "signature",
        ),
        (
            "claims changed after signing",
            format!(
                "{g_head}.{}.{g_sig}",
                URL_SAFE_NO_PAD.encode(
                    with(
                        &claims,
                        "access",
                        json!([{"type": "repository", "name": "a/b", "actions": ["*"]}])
                    )
                    .to_string()
                )
            ),
            "signature",
        ),
        (
            "expired",
            jwt(&header, &with(&claims, "exp", json!(now() - 120)), &key),
            "expired",
        ),
        (
            "no exp",
            jwt(&header, &without(&claims, "exp"), &key),
            "expired",
        ),
        (
            "not valid yet",
            jwt(&header, &with(&claims, "nbf", json!(now() + 3600)), &key),
            "not valid yet",
        ),
        (
            "wrong audience",
            jwt(
                &header,
                &with(&claims, "aud", json!("another-registry")),
                &key,
            ),
            "not for this service",
        ),
        (
            "no audience",
            jwt(&header, &without(&claims, "aud"), &key),
            "not for this service",
        ),
        (
            "wrong issuer",
            jwt(&header, &with(&claims, "iss", json!("evil-issuer")), &key),
            "issuer \"evil-issuer\"",
        ),
        (
            "critical header",
            jwt(&with(&header, "crit", json!(["exp"])), &claims, &key),
            "critical header",
        ),
        ("four parts", format!("{good}.{g_sig}"), "compact form"),
        ("not base64", "!!!.###.$$$".into(), "compact form"),
    ];
    let blob = b"must never be stored";
    let base = format!("http://{}", reg.addr);
    let upload = format!("{base}/v2/a/b/blobs/uploads/?digest={}", sha256(blob));
    for (what, token, says) in &cases {
        let (status, challenge, body) =
            send(reqwest::Method::POST, &upload, Some(token), blob).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            challenge.ends_with(",error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(
            challenge.contains("scope=\"repository:a/b:pull,push\""),
            "{what}: {challenge}"
        );
        let message: Value = serde_json::from_str(&body).unwrap();
        let message = message["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{what}: {message}");
    }
    // No access for the repository: a valid token, the wrong scope.
    let elsewhere = tokens.token_for(&["repository:a/other:pull,push"]);
    let (status, challenge, _) = send(reqwest::Method::POST, &upload, Some(&elsewhere), blob).await;
    assert_eq!(status, 401);
    assert!(
        challenge.ends_with(",error=\"insufficient_scope\""),
        "{challenge}"
    );

    // Nothing reached the store, and good tokens still work.
    let blob_url = format!("{base}/v2/a/b/blobs/{}", sha256(blob));
    let (status, ..) = send(reqwest::Method::HEAD, &blob_url, Some(&good), b"").await;
    assert_eq!(status, 404);
    let (status, ..) = send(reqwest::Method::POST, &upload, Some(&good), blob).await;
    assert_eq!(status, 201);
    // Within the leeway, distribution's 60 s, a just-expired token still counts.
    let late = jwt(&header, &with(&claims, "exp", json!(now() - 30)), &key);
    let (status, ..) = send(reqwest::Method::HEAD, &blob_url, Some(&late), b"").await;
    assert_eq!(status, 200);
}

/// ES256 (JWS's fixed-size `r‖s` signatures) from a second certificate in the bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_from_any_bundle_certificate_are_accepted() {
    let tokens = TokenServer::start("127.0.0.1", USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("ec.key"), dir.path().join("ec.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=ec issuer",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let bundle = dir.path().join("bundle.pem");
    let mut pem = std::fs::read(tokens.cert_path()).unwrap();
    pem.extend(std::fs::read(&cert).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let auth = TokenAuth::load(&tokens.realm(), SERVICE, ISSUER, &bundle).unwrap();
    let reg = common::start(false, Some(Auth::Token(auth))).await;

    let (_, claims) = tokens.parts_for(&["repository:a/b:pull"]);
    let header = json!({"typ": "JWT", "alg": "ES256"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let msg = dir.path().join("msg");
    std::fs::write(&msg, &input).unwrap();
    let der = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        key.to_str().unwrap(),
        msg.to_str().unwrap(),
    ]);
    let raw = der_to_raw(&der, 32);
    let url = format!("http://{}/v2/a/b/tags/list", reg.addr);
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&raw));
    let (status, _, body) = send(reqwest::Method::GET, &url, Some(&token), b"").await;
    assert_eq!(status, 404, "past auth, to an unknown repository: {body}");
    // The ASN.1 form is not JWS's: refused.
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&der));
    let (status, ..) = send(reqwest::Method::GET, &url, Some(&token), b"").await;
    assert_eq!(status, 401);
    // RS256 tokens from the first certificate still count.
    let rs = tokens.token_for(&["repository:a/b:pull"]);
    let (status, ..) = send(reqwest::Method::GET, &url, Some(&rs), b"").await;
    assert_eq!(status, 404);
}

/// A CA (`ca.pem`, `ca.key`) and a leaf it signed (`NAME.pem`, `NAME.key`) in `dir`,
/// as openssl makes them; returns the leaf's DER in base64 (for `x5c`).
fn ca_and_leaf(dir: &Path, ca: &str, leaf: &str) -> String {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    if !dir.join(format!("{ca}.pem")).exists() {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=manifold test token CA",
            "-keyout",
            &p(&format!("{ca}.key")),
            "-out",
            &p(&format!("{ca}.pem")),
        ]);
    }
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=token signer",
        "-keyout",
        &p(&format!("{leaf}.key")),
        "-out",
        &p(&format!("{leaf}.csr")),
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&format!("{leaf}.csr")),
        "-CA",
        &p(&format!("{ca}.pem")),
        "-CAkey",
        &p(&format!("{ca}.key")),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p("leaf.ext"),
        "-out",
        &p(&format!("{leaf}.pem")),
    ]);
    let pem = std::fs::read_to_string(dir.join(format!("{leaf}.pem"))).unwrap();
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// distribution's other way to name the signer: an `x5c` chain whose leaf was issued
/// by a bundle CA. A leaf from another CA with the same name, a leaf that did not
/// sign the token, or no `x5c` at all is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x5c_leaves_issued_by_a_bundle_ca_may_sign() {
    let tokens = TokenServer::start("127.0.0.1", USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let leaf = ca_and_leaf(d, "ca", "leaf");
    let evil_leaf = ca_and_leaf(d, "evilca", "evil");
    let auth = TokenAuth::load(&tokens.realm(), SERVICE, ISSUER, &d.join("ca.pem")).unwrap();
    let reg = common::start(false, Some(Auth::Token(auth))).await;
    let url = format!("http://{}/v2/a/b/tags/list", reg.addr);
    let (_, claims) = tokens.parts_for(&["repository:a/b:pull"]);
    let header = |x5c: Option<&str>| match x5c {
        Some(c) => json!({"typ": "JWT", "alg": "RS256", "x5c": [c]}),
        None => json!({"typ": "JWT", "alg": "RS256"}),
    };
    let cases = [
        (
            "leaf of the bundle CA",
            header(Some(&leaf)),
            "leaf.key",
            404,
        ),
        ("no x5c", header(None), "leaf.key", 401),
        (
            "leaf of another CA",
            header(Some(&evil_leaf)),
            "evil.key",
            401,
        ),
        ("good leaf, other key", header(Some(&leaf)), "evil.key", 401),
        ("the CA's own key", header(None), "ca.key", 404),
    ];
    for (what, h, key, want) in cases {
        let token = jwt(&h, &claims, &d.join(key));
        let (status, _, body) = send(reqwest::Method::GET, &url, Some(&token), b"").await;
        assert_eq!(status, want, "{what}: {body}");
    }
    // Tokens of the token server's own certificate, not in this bundle, count for nothing.
    let theirs = tokens.token_for(&["repository:a/b:pull"]);
    let (status, ..) = send(reqwest::Method::GET, &url, Some(&theirs), b"").await;
    assert_eq!(status, 401);
}

/// ASN.1 `SEQUENCE { INTEGER r, INTEGER s }` → `r‖s`, each `n` bytes.
fn der_to_raw(der: &[u8], n: usize) -> Vec<u8> {
    assert_eq!(der[0], 0x30);
    let mut i = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        let len = der[i + 1] as usize;
        let v = &der[i + 2..i + 2 + len];
        let v = &v[v.len().saturating_sub(n)..];
        out.extend(std::iter::repeat_n(0, n - v.len()));
        out.extend_from_slice(v);
        i += 2 + len;
    }
    out
}

#[test]
fn a_bundle_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let err = TokenAuth::load("http://127.0.0.1:1/token", SERVICE, ISSUER, &path).unwrap_err();
    assert!(err.to_string().contains("empty.pem"), "{err}");
}

/// skopeo logs in with Basic credentials at the token server and pushes and pulls with
/// the bearer token it gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_and_pulls_with_tokens() {
    let tokens = TokenServer::start("127.0.0.1", USER, PASSWORD);
    let reg = start(&tokens).await;
    let d = tempfile::tempdir().unwrap();
    let src = content::Store::open(d.path()).unwrap();
    let lease = src.lease().unwrap();
    let idx = testkit::write_index(&src, &lease, &["linux/amd64", "linux/arm64"]);
    src.set_name("src", &idx).unwrap();
    let dest = format!("docker://{}/tok/img:v1", reg.addr);
    let creds = format!("{USER}:{PASSWORD}");
    let skopeo = |args: &[&str]| {
        let out = Command::new(testkit::require_tool("skopeo"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let layout = format!("oci:{}:src", d.path().join("oci").display());
    let (ok, err) = skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &layout,
        &dest,
    ]);
    assert!(!ok, "no credentials, no push");
    assert!(
        err.contains("401") || err.contains("unauthorized") || err.contains("authentication"),
        "{err}"
    );
    let (ok, err) = skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &layout,
        &dest,
    ]);
    assert!(ok, "{err}");
    let back = tempfile::tempdir().unwrap();
    let (ok, err) = skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &dest,
        &format!("oci:{}:back", back.path().display()),
    ]);
    assert!(ok, "{err}");
    let requests = tokens.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.scopes.iter().any(|s| s == "repository:tok/img:pull,push")),
        "{requests:?}"
    );
}
