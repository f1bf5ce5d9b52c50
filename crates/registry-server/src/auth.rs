//! Basic auth against an htpasswd file (bcrypt entries only), and the access log.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;

use crate::error::{ApiError, ServerError};

/// Users and their bcrypt hashes. Passwords are never stored or logged.
#[derive(Clone)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Checked for a user the file does not name, so that an unknown user costs what
    /// a known one does (no timing tells which users exist): a hash of a random
    /// password at the cost the file's entries use.
    dummy: String,
}

/// bcrypt verifications done by this process (every registry in it): a test hook,
/// so a test can see that an unknown user is verified too.
static BCRYPT_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many bcrypt verifications this process has done.
pub fn bcrypt_calls() -> u64 {
    BCRYPT_CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The cost of a `$2?$NN$…` bcrypt hash.
fn cost_of(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.len())
            .finish()
    }
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
            op: "read htpasswd file",
            path: path.to_owned(),
            source,
        })?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((u, h)) if !u.is_empty() && h.starts_with("$2") => {
                    users.insert(u.to_owned(), h.to_owned());
                }
                _ => {
                    return Err(ServerError::Htpasswd {
                        path: path.to_owned(),
                        line: i + 1,
                    });
                }
            }
        }
        // The highest cost in the file (bcrypt's default when the file is empty).
        let cost = users
            .values()
            .filter_map(|h| cost_of(h))
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST)
            .clamp(4, 31);
        let mut random = [0u8; 18];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
            .map_err(|source| ServerError::Io {
                op: "read random bytes for",
                path: path.to_owned(),
                source,
            })?;
        let dummy = bcrypt::hash(random, cost).map_err(|_| ServerError::Htpasswd {
            path: path.to_owned(),
            line: 0,
        })?;
        Ok(Htpasswd { users, dummy })
    }

    /// The authenticated user, or the 401 to answer.
    pub fn check(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let denied = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            )
            .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"manifold\"")
        };
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(denied)?;
        let encoded = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
            .ok_or_else(denied)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(denied)?;
        let (user, password) = decoded.split_once(':').ok_or_else(denied)?;
        let known = self.users.get(user);
        let hash = known.unwrap_or(&self.dummy);
        // bcrypt takes milliseconds of CPU on purpose: off the async workers.
        let matches = tokio::task::block_in_place(|| {
            BCRYPT_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            bcrypt::verify(password, hash).unwrap_or(false)
        });
        match (known, matches) {
            (Some(_), true) => Ok(user.to_owned()),
            _ => Err(denied()),
        }
    }
}

/// Where access-log lines go: one JSON object per request.
pub struct AccessLog {
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessLog")
    }
}

/// One request, as logged. Holds no header values, so no credential can reach the log.
#[derive(Debug, serde::Serialize)]
pub struct Entry<'a> {
    pub time: u64,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub duration_ms: f64,
    pub user: Option<&'a str>,
}

impl AccessLog {
    pub fn new(out: Box<dyn Write + Send>) -> AccessLog {
        AccessLog {
            out: Mutex::new(out),
        }
    }

    pub fn write(&self, entry: &Entry<'_>) {
        let mut line = serde_json::to_vec(entry).expect("log entries serialise");
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk or closed stderr must not fail requests.
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
}
