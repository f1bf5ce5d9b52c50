//! Bearer token auth, as distribution's `auth.token`: a client without a valid token
//! is sent to the token server (`realm`) with the scope it needs, and comes back with
//! a JWT that the token server signed and whose `access` claim lists what it may do.
//!
//! **Invariant**: a signature is checked only with the key of a bundle certificate,
//! or of an `x5c` leaf whose chain verifies up to a bundle certificate (as
//! distribution does). The `jwk`, `jku` and `kid` headers are never read, so a token
//! cannot bring its own key (CVE-2025-24976); `alg` must name one of the RSA PKCS#1
//! or ECDSA algorithms, never `none` or an HMAC.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use webpki::{EndEntityCert, aws_lc_rs as algs};

use crate::error::{ApiError, ServerError};
use crate::route::Route;

/// Allowance for clock skew on `exp` and `nbf`: distribution's.
pub const LEEWAY_SECS: i64 = 60;
/// Longest token read; longer ones are refused before any decoding.
const TOKEN_MAX: usize = 64 << 10;
/// Most certificates an `x5c` chain may have.
const X5C_MAX: usize = 8;

/// One action on one resource: `repository:library/busybox:pull`,
/// `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub kind: &'static str,
    pub name: String,
    pub action: &'static str,
}

impl Access {
    fn repo(name: &str, action: &'static str) -> Access {
        Access {
            kind: "repository",
            name: name.to_owned(),
            action,
        }
    }
}

/// What a request needs: the accesses, and a cross-repository mount's source, whose
/// `pull` lets the mount happen (without it the POST starts a plain upload).
#[derive(Debug, Default)]
pub struct Needs {
    pub access: Vec<Access>,
    pub mount_from: Option<String>,
}

/// distribution's mapping from method and route to actions: pull to read, pull and
/// push to write, delete to delete; `registry:catalog:*` for the catalog; the base
/// path (and a path with no route) needs a valid token and nothing more.
pub fn needs(method: &Method, route: Option<&Route>, mount_from: Option<String>) -> Needs {
    let name = match route {
        Some(Route::Catalog) => {
            return Needs {
                access: vec![Access {
                    kind: "registry",
                    name: "catalog".into(),
                    action: "*",
                }],
                mount_from: None,
            };
        }
        Some(
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::ManifestInvalid { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. },
        ) => name,
        Some(Route::Ping) | None => return Needs::default(),
    };
    let access = match *method {
        Method::GET | Method::HEAD => vec![Access::repo(name, "pull")],
        Method::DELETE => vec![Access::repo(name, "delete")],
        _ => vec![Access::repo(name, "pull"), Access::repo(name, "push")],
    };
    let mount_from = match route {
        Some(Route::UploadStart { .. }) if *method == Method::POST => mount_from,
        _ => None,
    };
    Needs { access, mount_from }
}

/// A verified token's holder and grants.
#[derive(Debug)]
pub struct Granted {
    pub subject: Option<String>,
    grants: HashSet<(String, String, String)>,
}

impl Granted {
    pub fn allows(&self, a: &Access) -> bool {
        let key = |action: &str| (a.kind.to_owned(), a.name.clone(), action.to_owned());
        self.grants.contains(&key(a.action)) || self.grants.contains(&key("*"))
    }
}

/// Why a token was refused. Said in the 401's message; never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("the token is not a JWS in compact form")]
    Malformed,
    #[error("the token's algorithm {0:?} is not accepted (RS256/384/512, ES256/384/512)")]
    Algorithm(String),
    #[error("the token has a critical header this registry does not understand")]
    Critical,
    #[error("the token's signature does not verify with any certificate in the bundle")]
    Signature,
    #[error("the token's issuer {0:?} is not trusted")]
    Issuer(String),
    #[error("the token is not for this service")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYet,
}

/// The registry's token settings: where clients get tokens, and whose tokens count.
pub struct TokenAuth {
    realm: String,
    service: String,
    issuer: String,
    certs: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("realm", &self.realm)
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .field("certs", &self.certs.len())
            .finish()
    }
}

impl TokenAuth {
    /// Settings with the signing certificates of the PEM bundle `root_certs`.
    pub fn load(
        realm: &str,
        service: &str,
        issuer: &str,
        root_certs: &Path,
    ) -> Result<TokenAuth, ServerError> {
        let bad = |reason: String| ServerError::TokenCerts {
            path: root_certs.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(root_certs)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        for (i, c) in certs.iter().enumerate() {
            EndEntityCert::try_from(c).map_err(|e| bad(format!("certificate {}: {e}", i + 1)))?;
        }
        Ok(TokenAuth {
            realm: realm.to_owned(),
            service: service.to_owned(),
            issuer: issuer.to_owned(),
            certs,
        })
    }

    /// The bearer token's grants, or the 401 that sends the client to the realm.
    /// `Ok` does not mean every access in `needs` is granted: see `challenge`.
    pub fn authenticate(&self, headers: &HeaderMap, needs: &Needs) -> Result<Granted, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(token) = token else {
            return Err(self.challenge(needs, None, "authentication required".into()));
        };
        self.verify(token, now())
            .map_err(|e| self.challenge(needs, Some("invalid_token"), e.to_string()))
    }

    /// The 401 answer naming the scope `needs` asks for.
    pub fn challenge(&self, needs: &Needs, error: Option<&str>, message: String) -> ApiError {
        let mut value = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            quote(&self.realm),
            quote(&self.service)
        );
        let scope = scope(needs);
        if !scope.is_empty() {
            value.push_str(&format!(",scope=\"{}\"", quote(&scope)));
        }
        if let Some(e) = error {
            value.push_str(&format!(",error=\"{e}\""));
        }
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
            .with_header(header::WWW_AUTHENTICATE, value)
    }

    /// Check a compact JWS at time `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Granted, TokenError> {
        if token.len() > TOKEN_MAX {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed);
        let json = |b: Vec<u8>| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&b)
                .map_err(|_| TokenError::Malformed)
        };
        let head = json(decode(h)?)?;
        let alg = head
            .get("alg")
            .and_then(|a| a.as_str())
            .ok_or(TokenError::Malformed)?;
        let (verifier, fixed_len) = algorithm(alg).ok_or(TokenError::Algorithm(alg.into()))?;
        if head.contains_key("crit") {
            return Err(TokenError::Critical);
        }
        let mut sig = decode(s)?;
        if let Some(len) = fixed_len {
            sig = ecdsa_der(&sig, len).ok_or(TokenError::Signature)?;
        }
        let input = &token.as_bytes()[..h.len() + 1 + c.len()];
        let signs = |cert: &CertificateDer<'_>| {
            EndEntityCert::try_from(cert)
                .is_ok_and(|ee| ee.verify_signature(verifier, input, &sig).is_ok())
        };
        let signed = self.certs.iter().any(signs)
            || self.x5c_leaf(&head, now).is_some_and(|leaf| signs(&leaf));
        if !signed {
            return Err(TokenError::Signature);
        }
        // Only now, with the signature good, are the claims worth reading.
        let claims = json(decode(c)?)?;
        self.check_claims(&claims, now)
    }

    /// The leaf of the token's `x5c` chain, if the chain verifies up to a bundle
    /// certificate at `now` (any extended key usage, as distribution accepts).
    fn x5c_leaf(
        &self,
        head: &serde_json::Map<String, serde_json::Value>,
        now: i64,
    ) -> Option<CertificateDer<'static>> {
        let chain = head.get("x5c")?.as_array()?;
        if chain.is_empty() || chain.len() > X5C_MAX {
            return None;
        }
        let ders = chain
            .iter()
            .map(|c| {
                let der = STANDARD.decode(c.as_str()?).ok()?;
                Some(CertificateDer::from(der))
            })
            .collect::<Option<Vec<_>>>()?;
        let anchors: Vec<_> = self
            .certs
            .iter()
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
            .collect();
        let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).ok()?));
        EndEntityCert::try_from(&ders[0])
            .ok()?
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &ders[1..],
                time,
                AnyUsage,
                None,
                None,
            )
            .ok()?;
        ders.into_iter().next()
    }

    fn check_claims(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        now: i64,
    ) -> Result<Granted, TokenError> {
        let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
        if iss != self.issuer {
            return Err(TokenError::Issuer(iss.into()));
        }
        let for_us = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => *a == self.service,
            Some(serde_json::Value::Array(a)) => {
                a.iter().any(|a| a.as_str() == Some(&self.service))
            }
            _ => false,
        };
        if !for_us {
            return Err(TokenError::Audience);
        }
        // A missing `exp` is an expired token, a missing `nbf` no restriction, as in
        // distribution.
        let time = |k: &str| claims.get(k).and_then(|v| v.as_f64()).map(|t| t as i64);
        if now > time("exp").unwrap_or(0).saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Expired);
        }
        if now < time("nbf").unwrap_or(0).saturating_sub(LEEWAY_SECS) {
            return Err(TokenError::NotYet);
        }
        let mut grants = HashSet::new();
        let entries = claims.get("access").and_then(|v| v.as_array());
        for e in entries.into_iter().flatten() {
            let field = |k: &str| e.get(k).and_then(|v| v.as_str());
            let (Some(kind), Some(name)) = (field("type"), field("name")) else {
                continue;
            };
            let actions = e.get("actions").and_then(|v| v.as_array());
            for a in actions.into_iter().flatten().filter_map(|a| a.as_str()) {
                grants.insert((kind.to_owned(), name.to_owned(), a.to_owned()));
            }
        }
        Ok(Granted {
            subject: claims
                .get("sub")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            grants,
        })
    }
}

/// Any extended key usage, or none: Go's `x509.ExtKeyUsageAny`, which distribution
/// verifies token chains with.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        // Still refuse a malformed extension.
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

/// The verifier for a JWS `alg`, and for ECDSA the length of its fixed-size `r‖s`
/// signature (JWS's form; webpki takes ASN.1).
fn algorithm(alg: &str) -> Option<(&'static dyn SignatureVerificationAlgorithm, Option<usize>)> {
    Some(match alg {
        "RS256" => (algs::RSA_PKCS1_2048_8192_SHA256, None),
        "RS384" => (algs::RSA_PKCS1_2048_8192_SHA384, None),
        "RS512" => (algs::RSA_PKCS1_2048_8192_SHA512, None),
        "ES256" => (algs::ECDSA_P256_SHA256, Some(64)),
        "ES384" => (algs::ECDSA_P384_SHA384, Some(96)),
        "ES512" => (algs::ECDSA_P521_SHA512, Some(132)),
        _ => return None,
    })
}

/// JWS `r‖s` → ASN.1 `SEQUENCE { INTEGER r, INTEGER s }`.
fn ecdsa_der(raw: &[u8], len: usize) -> Option<Vec<u8>> {
    if raw.len() != len {
        return None;
    }
    let (r, s) = raw.split_at(len / 2);
    let int = |v: &[u8]| {
        let v = &v[v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1)..];
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        der_len(&mut out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    der_len(&mut out, body.len());
    out.extend_from_slice(&body);
    Some(out)
}

fn der_len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        // Signatures here are at most 139 bytes long.
        out.extend_from_slice(&[0x81, n as u8]);
    }
}

/// The challenge's scope: distribution's `type:name:action,action`, space-separated.
fn scope(needs: &Needs) -> String {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    let extra = needs.mount_from.as_ref().map(|f| Access::repo(f, "pull"));
    for a in needs.access.iter().chain(extra.as_ref()) {
        let res = format!("{}:{}", a.kind, a.name);
        match out.iter_mut().find(|(r, _)| *r == res) {
            Some((_, actions)) if !actions.contains(&a.action) => actions.push(a.action),
            Some(_) => {}
            None => out.push((res, vec![a.action])),
        }
    }
    out.iter()
        .map(|(r, a)| format!("{r}:{}", a.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value inside a quoted header parameter: `"` and `\` escaped.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_distribution() {
        let m = |method: Method, route: Route| scope(&needs(&method, Some(&route), None));
        let name = || "a/b".to_owned();
        assert_eq!(
            m(Method::GET, Route::Tags { name: name() }),
            "repository:a/b:pull"
        );
        assert_eq!(
            m(
                Method::PATCH,
                Route::Upload {
                    name: name(),
                    id: "x".into()
                }
            ),
            "repository:a/b:pull,push"
        );
        assert_eq!(m(Method::GET, Route::Catalog), "registry:catalog:*");
        assert_eq!(m(Method::GET, Route::Ping), "");
        let n = needs(
            &Method::POST,
            Some(&Route::UploadStart { name: name() }),
            Some("c".into()),
        );
        assert_eq!(scope(&n), "repository:a/b:pull,push repository:c:pull");
    }

    #[test]
    fn ecdsa_signatures_become_asn1() {
        let mut raw = vec![0u8; 64];
        raw[31] = 1; // r = 1
        raw[32] = 0x80; // s has its top bit set: a zero byte keeps it positive
        let der = ecdsa_der(&raw, 64).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 0x21, 0x00]);
        assert_eq!(der.len(), 2 + 3 + 3 + 32);
        assert!(ecdsa_der(&raw[..63], 64).is_none());
    }
}
