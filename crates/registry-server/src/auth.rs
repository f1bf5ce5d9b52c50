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
        Ok(Htpasswd { users })
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
        let hash = self.users.get(user).ok_or_else(denied)?;
        if bcrypt::verify(password, hash).unwrap_or(false) {
            Ok(user.to_owned())
        } else {
            Err(denied())
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
