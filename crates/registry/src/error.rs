use std::fmt;

/// One entry of the distribution spec's error envelope.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct SpecError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.detail.is_null() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("{method} {url}: {status}{}", envelope(.errors, .body))]
    Http {
        method: String,
        url: String,
        status: u16,
        errors: Vec<SpecError>,
        body: String,
        retry_after: Option<std::time::Duration>,
    },
    #[error("{method} {url}")]
    Transport {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("authentication with {registry} failed: {reason}")]
    Auth { registry: String, reason: String },
    #[error("{what} from {url} is larger than {cap} bytes")]
    TooLarge {
        what: &'static str,
        url: String,
        cap: u64,
    },
    #[error("{url} returned content with digest {actual}, expected {expected}")]
    DigestMismatch {
        url: String,
        expected: oci::Digest,
        actual: oci::Digest,
    },
    #[error("refusing to contact {target} (from {url}): {reason}")]
    Forbidden {
        url: String,
        target: String,
        reason: &'static str,
    },
    #[error("invalid registry response from {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("{reference} has no image for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    /// A source of `imagetools create` its repository does not have (the registry's
    /// answer is the source).
    #[error("source {what}{} not found in {repository}", from_file(.file.as_deref()))]
    SourceNotFound {
        /// `sha256:…`, or `tag T`.
        what: String,
        repository: String,
        /// The descriptor file that named it.
        file: Option<String>,
        /// Whether the repository is the target's (a digest or descriptor source).
        in_target: bool,
        #[source]
        source: Box<RegistryError>,
    },
    /// A descriptor (from a file) whose size is not that of the content it names.
    #[error(
        "{}: the descriptor says {digest} is {expected} bytes, {repository} has {actual}",
        .file.as_deref().unwrap_or("the descriptor")
    )]
    DescriptorSize {
        file: Option<String>,
        digest: oci::Digest,
        repository: String,
        expected: u64,
        actual: u64,
    },
    /// A platform `imagetools create --platform` asks for that no source has.
    #[error("no source has platform {platform} (the sources have {available})")]
    PlatformNotInSources { platform: String, available: String },
    #[error("invalid document from {url}")]
    Document {
        url: String,
        #[source]
        source: oci::DocumentError,
    },
    #[error(transparent)]
    Store(#[from] content::StoreError),
    #[error("reading credentials failed")]
    Credentials(#[from] crate::credentials::CredentialError),
    #[error("invalid registry configuration in {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("{method} {url}: no response for {}s", .after.as_secs())]
    Stalled {
        method: String,
        url: String,
        after: std::time::Duration,
    },
    #[error("upload {url} cancelled: the blob's producer stopped before it was complete")]
    Cancelled { url: String },
    /// A read failed at every mirror of a registry and then at the registry itself,
    /// whose error is the source.
    #[error("{what}: {}, then the registry failed too", mirror_failures(.mirrors))]
    AllSources {
        what: String,
        mirrors: Vec<MirrorFailure>,
        #[source]
        registry: Box<RegistryError>,
    },
}

/// Why one mirror could not serve a read.
#[derive(Debug)]
pub struct MirrorFailure {
    /// The mirror's repository URL (`http://mirror:5000/v2/library/alpine/`).
    pub mirror: String,
    pub error: RegistryError,
}

fn mirror_failures(mirrors: &[MirrorFailure]) -> String {
    let list: Vec<String> = mirrors
        .iter()
        .map(|m| {
            format!(
                "mirror {} failed ({})",
                m.mirror,
                oci::error_chain(&m.error)
            )
        })
        .collect();
    list.join("; ")
}

fn from_file(file: Option<&str>) -> String {
    file.map(|f| format!(" (from {f})")).unwrap_or_default()
}

fn envelope(errors: &[SpecError], body: &str) -> String {
    if !errors.is_empty() {
        let list: Vec<_> = errors.iter().map(ToString::to_string).collect();
        format!(" ({})", list.join("; "))
    } else if !body.trim().is_empty() {
        format!(" ({})", body.trim())
    } else {
        String::new()
    }
}

impl RegistryError {
    /// Whether trying again may succeed: 5xx, 429, 408, connection-level failures and
    /// a registry that stopped answering.
    pub fn is_temporary(&self) -> bool {
        match self {
            RegistryError::Http { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            RegistryError::Stalled { .. } => true,
            RegistryError::AllSources { registry, .. } => registry.is_temporary(),
            RegistryError::Transport { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
                    || source.is_decode()
            }
            _ => false,
        }
    }

    /// HTTP status, when the registry answered (after its mirrors failed, the
    /// registry's own).
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Http { status, .. } => Some(*status),
            RegistryError::AllSources { registry, .. } => registry.status(),
            _ => None,
        }
    }

    /// Whether the registry said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A URL for messages and logs: without userinfo, and with the value of every query
/// parameter that signs or authorises the request replaced (the pre-signed blob URLs
/// of S3, GCS and Azure, tokens in the query).
pub fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = match secret_query_key(&k) {
                    true => "REDACTED".to_owned(),
                    false => v.into_owned(),
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Query parameters whose values are credentials or signatures.
fn secret_query_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "sig"
            | "signature"
            | "token"
            | "access_token"
            | "x-amz-signature"
            | "x-amz-credential"
            | "x-amz-security-token"
            | "x-goog-signature"
            | "x-goog-credential"
            | "googleaccessid"
            | "password"
            | "_state"
    ) || k.contains("token")
        || k.contains("signature")
        || k.contains("secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_userinfo_and_signed_query_values() {
        let u = url::Url::parse(
            "https://user:pw@bucket.s3.amazonaws.com/blob?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIA%2F20261207&X-Amz-Signature=abc123&X-Amz-Security-Token=tok\
             &sig=azure&se=2026-12-08&token=t0k&keep=yes",
        )
        .unwrap();
        let r = redact(&u);
        for gone in ["user", "pw@", "AKIA", "abc123", "=tok", "azure", "t0k"] {
            assert!(!r.contains(gone), "{gone} in {r}");
        }
        for kept in [
            "bucket.s3.amazonaws.com/blob",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "se=2026-12-08",
            "keep=yes",
            "X-Amz-Signature=REDACTED",
        ] {
            assert!(r.contains(kept), "{kept} not in {r}");
        }
        // A URL without a query is left as it is.
        assert_eq!(
            redact(&url::Url::parse("http://127.0.0.1:5000/v2/").unwrap()),
            "http://127.0.0.1:5000/v2/"
        );
    }
}
