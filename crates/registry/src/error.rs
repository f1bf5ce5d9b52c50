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

/// A URL with any userinfo removed, for messages and logs.
pub fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}
