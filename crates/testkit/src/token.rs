//! A token server for the distribution registry's `auth.token` mode, written for the
//! tests: one user with a password (HTTP Basic), RS256 JWTs signed with the `openssl`
//! CLI by a key whose self-signed certificate (made per server) travels in the `x5c`
//! header and is the registry's `rootcertbundle`.
//!
//! distribution 2.8 accepts a token when: `iss` is the configured issuer, `aud` the
//! configured service, `now ≤ exp + 60 s` and `now ≥ nbf − 60 s`, the `x5c` leaf
//! certificate verifies against the root bundle, and the signature verifies with the
//! leaf's key. `access` lists what the token grants per repository.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use crate::http::{Exchange, Server};
use crate::registry::Auth;
use crate::require_tool;

/// The `service` the registry is configured with and tokens are issued for.
pub const SERVICE: &str = "manifold-test-registry";
/// The `iss` of every token.
pub const ISSUER: &str = "manifold-test-token-issuer";
/// distribution's allowance for clock skew on `exp` and `nbf`.
const REGISTRY_LEEWAY_SECS: u64 = 60;

/// One request the token server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Whether an `Authorization` header came with it (right or wrong).
    pub authorization: bool,
    /// Requested scopes (`repository:name:pull,push`), one per entry.
    pub scopes: Vec<String>,
}

struct State {
    user: String,
    password: String,
    key: PathBuf,
    /// base64 DER of the certificate, for `x5c`.
    cert_der_b64: String,
    expires_in: AtomicU64,
    serial: AtomicU64,
    log: Mutex<Vec<TokenRequest>>,
}

/// A running token server; stopped (and its key deleted) on drop.
pub struct TokenServer {
    http: Server,
    dir: tempfile::TempDir,
    state: Arc<State>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("realm", &self.realm())
            .finish()
    }
}

impl TokenServer {
    /// Start on a free port of `ip`, accepting `user`/`password`.
    pub fn start(ip: &str, user: &str, password: &str) -> TokenServer {
        let openssl = require_tool("openssl");
        let dir = tempfile::tempdir().expect("temp dir");
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let out = Command::new(openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=manifold test token issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl req");
        assert!(
            out.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem = std::fs::read_to_string(&cert).expect("read certificate");
        // The base64 between the PEM armour lines is the DER certificate.
        let cert_der_b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let state = Arc::new(State {
            user: user.to_owned(),
            password: password.to_owned(),
            key,
            cert_der_b64,
            expires_in: AtomicU64::new(300),
            serial: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let http = {
            let state = state.clone();
            Server::start(ip, move |ex| state.handle(ex))
        };
        TokenServer { http, dir, state }
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> String {
        self.http.url("/token")
    }

    /// The certificate the registry must trust (its `rootcertbundle`).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Registry settings that send clients here.
    pub fn registry_auth(&self) -> Auth {
        Auth::Token {
            realm: self.realm(),
            service: SERVICE.into(),
            issuer: ISSUER.into(),
            root_cert_bundle: self.cert_path(),
        }
    }

    /// Lifetime of tokens issued from now on, as `expires_in` says. The `exp` claim
    /// is set 60 s earlier than that, so that with the registry's leeway a token
    /// stops being accepted `secs` after it was issued.
    pub fn set_expires_in(&self, secs: u64) {
        self.state.expires_in.store(secs.max(1), Ordering::SeqCst);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.state.serial.load(Ordering::SeqCst)
    }

    /// The key that signs this server's tokens (PEM), for tests that sign their own.
    pub fn key_path(&self) -> PathBuf {
        self.state.key.clone()
    }

    /// A token as the server issues it for `scopes` (`repository:a/b:pull,push`,
    /// `registry:catalog:*`), without a request.
    pub fn token_for(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.state.issue(&scopes)
    }

    /// The header and claims of a token for `scopes`, to alter and sign with `jwt`.
    pub fn parts_for(&self, scopes: &[&str]) -> (serde_json::Value, serde_json::Value) {
        let token = self.token_for(scopes);
        let mut parts = token.split('.').map(|p| {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("json")
        });
        (parts.next().unwrap(), parts.next().unwrap())
    }
}

/// A compact JWS of `header` and `claims`, its signature made with the RSA key at
/// `key` (PKCS#1 v1.5 over SHA-256, whatever `header.alg` says).
pub fn jwt(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    key: &std::path::Path,
) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign_rs256(key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// RS256: PKCS#1 v1.5 over SHA-256, as `openssl dgst -sign` makes it.
pub fn sign_rs256(key: &std::path::Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(require_tool("openssl"))
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl dgst finishes");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "openssl dgst -sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl State {
    fn handle(&self, mut ex: Exchange) {
        let req = ex.request.clone();
        let scopes: Vec<String> = req
            .query_values("scope")
            .iter()
            .flat_map(|s| s.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect();
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(TokenRequest {
                method: req.method.clone(),
                path: req.path().to_owned(),
                query: req.query().to_owned(),
                authorization: req.header("authorization").is_some(),
                scopes: scopes.clone(),
            });
        let _ = ex.body();
        if req.method != "GET" || req.path() != "/token" {
            ex.respond(404, &[], b"not found");
            return;
        }
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.user, self.password))
        );
        if req.header("authorization") != Some(expected.as_str()) {
            let body = json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad or missing credentials"}]});
            ex.respond(
                401,
                &[
                    ("Content-Type", "application/json"),
                    ("WWW-Authenticate", "Basic realm=\"token\""),
                ],
                body.to_string().as_bytes(),
            );
            return;
        }
        let token = self.issue(&scopes);
        let expires_in = self.expires_in.load(Ordering::SeqCst);
        let body = json!({"token": token, "access_token": token, "expires_in": expires_in});
        ex.respond(
            200,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
    }

    /// A signed JWT granting exactly the repository actions `scopes` ask for.
    fn issue(&self, scopes: &[String]) -> String {
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| {
                let (kind, rest) = s.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
                (kind == "repository" || kind == "registry")
                    .then(|| json!({"type": kind, "name": name, "actions": actions}))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let serial = self.serial.fetch_add(1, Ordering::SeqCst) + 1;
        let life = self.expires_in.load(Ordering::SeqCst);
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64]});
        let claims = json!({
            "iss": ISSUER,
            "sub": self.user,
            "aud": SERVICE,
            "exp": (now + life).saturating_sub(REGISTRY_LEEWAY_SECS),
            "nbf": now,
            "iat": now,
            "jti": format!("{}-{serial}-{now}", std::process::id()),
            "access": access,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        sign_rs256(&self.key, input)
    }
}
