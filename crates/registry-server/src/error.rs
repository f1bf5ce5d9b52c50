//! Errors: the spec's error envelope for clients, and the server's own errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oci::error_chain;

/// An error answered to a client as the distribution spec's envelope
/// (`{"errors":[{"code":…,"message":…}]}`).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra headers (`Range` on 416, `WWW-Authenticate` on 401).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn name_invalid(what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("invalid repository name {what:?}"),
        )
    }
    pub fn name_unknown(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {name} is not known"),
        )
    }
    pub fn digest_invalid(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", msg)
    }
    pub fn blob_unknown(digest: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob {digest} is not known"),
        )
    }
    pub fn upload_unknown(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            format!("upload {id} is not known"),
        )
    }
    pub fn manifest_unknown(reference: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest {reference} is not known"),
        )
    }
    pub fn tag_invalid(tag: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!("invalid tag {tag:?}"),
        )
    }
    pub fn manifest_invalid(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", msg)
    }
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", msg)
    }
    pub fn size_invalid(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SIZE_INVALID", msg)
    }
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            format!("internal error: {err}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{"code": self.code, "message": self.message, "detail": null}]
        });
        let mut resp = crate::json_response(self.status, &body);
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

impl From<content::StoreError> for ApiError {
    fn from(e: content::StoreError) -> Self {
        match e {
            content::StoreError::DigestMismatch { expected, actual } => {
                ApiError::digest_invalid(format!("content hashes to {actual}, not {expected}"))
            }
            content::StoreError::SizeMismatch {
                digest,
                expected,
                actual,
            } => {
                ApiError::size_invalid(format!("{digest}: expected {expected} bytes, got {actual}"))
            }
            content::StoreError::NotFound(d) => ApiError::blob_unknown(&d.to_string()),
            other => ApiError::internal(error_chain(&other)),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(e)
    }
}

/// What can stop the server from starting or a maintenance command from running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("content store at {path} failed")]
    Store {
        path: std::path::PathBuf,
        #[source]
        source: content::StoreError,
    },
    #[error("htpasswd file {path} line {line}: expected `user:bcrypt-hash`")]
    Htpasswd {
        path: std::path::PathBuf,
        line: usize,
    },
    #[error("token certificate bundle {path}: {reason}")]
    TokenCerts {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("TLS file {path}: {reason}")]
    Tls {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}
