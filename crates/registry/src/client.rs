//! The HTTP core: endpoints, authentication on challenge, retries, capped bodies.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::auth::{self, AuthCache, Challenge, HostAuth, TokenResponse};
use crate::config::{RegistryConfig, endpoint_host, strip_port};
use crate::credentials::{Credential, CredentialError, DockerConfig};
use crate::error::{RegistryError, Result, SpecError, redact};

/// Where credentials come from (docker's config on a client; per-request on a daemon).
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    fn credential(&self, registry: &str) -> Result<Credential, CredentialError>;
}

impl CredentialSource for DockerConfig {
    fn credential(&self, registry: &str) -> Result<Credential, CredentialError> {
        self.get(registry)
    }
}

/// No credentials at all.
#[derive(Debug, Default)]
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn credential(&self, _: &str) -> Result<Credential, CredentialError> {
        Ok(Credential::Anonymous)
    }
}

/// Size caps on what the registry may send, and how long it may keep a request
/// waiting: for the answer to a request whose body is in hand, for the next bytes
/// of an answer, or for the answer after a streamed body's end.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub manifest: u64,
    pub error_body: u64,
    pub token_body: u64,
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            manifest: 4 << 20,
            error_body: 64 << 10,
            token_body: 1 << 20,
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// Retry schedule for temporary failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `n` (1-based retry count): exponential with full jitter,
    /// or what the server asked for with `Retry-After` (capped at `max`).
    pub fn delay(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.max);
        }
        let exp = self.base.saturating_mul(1 << n.min(16)).min(self.max);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Jitter between 50 % and 100 % of the exponential delay.
        exp / 2 + exp.mul_f64(f64::from(nanos % 1000) / 2000.0)
    }
}

/// A registry client. Cheap to clone; clones share tokens.
#[derive(Debug, Clone)]
pub struct Client {
    /// Built at first use: building one loads the system's root certificates,
    /// which a build that only talks plain HTTP to a local registry never needs.
    http: Arc<LazyHttp>,
    /// For hosts marked `insecure`: TLS without certificate verification.
    unverified: Option<Arc<LazyHttp>>,
    config: Arc<RegistryConfig>,
    creds: Arc<dyn CredentialSource>,
    cache: Arc<Mutex<AuthCache>>,
    /// Hosts the user named; others may not resolve to internal addresses.
    trusted: crate::dns::TrustedHosts,
    pub limits: Limits,
    pub retry: RetryPolicy,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Blobs up to this size are uploaded in one PUT.
    pub monolithic_max: u64,
    /// Told about every blob pulled or pushed ([`crate::progress`]).
    pub progress: Option<Arc<dyn crate::TransferProgress>>,
}

/// A repository at a registry: where requests go and what they need.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The registry as named in references (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// The repository path (`library/alpine`).
    pub name: String,
    /// `http://host:port/v2/<name>/`
    pub base: url::Url,
    /// Where reads of this repository go first, in order: the registry's
    /// configured mirrors ([`crate::config::Mirror`]), each a `Repo` of its own
    /// host with no mirrors. Only the read functions (`get_manifest*`,
    /// `get_blob_bytes`, `fetch_blob`, `pull`) look at it; writes, mounts and login
    /// checks go to `base` alone.
    pub(crate) mirrors: Vec<Repo>,
}

impl Repo {
    /// Every source a read tries, in order: the mirrors, then this repository.
    pub fn sources(&self) -> impl Iterator<Item = &url::Url> {
        self.mirrors
            .iter()
            .map(|m| &m.base)
            .chain(std::iter::once(&self.base))
    }

    /// This repository read from its source `n` on ([`Repo::sources`] order):
    /// the mirrors before it are left out.
    pub(crate) fn starting_at(&self, n: usize) -> Repo {
        Repo {
            mirrors: self.mirrors.get(n..).unwrap_or_default().to_vec(),
            ..self.clone()
        }
    }

    /// This repository without its mirrors: reads go to the registry alone.
    pub(crate) fn registry_only(&self) -> Repo {
        self.starting_at(self.mirrors.len())
    }
}

/// Which access a request needs (the token scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Client {
    /// A client with `config` and credentials from `creds`.
    pub fn new(config: RegistryConfig, creds: Arc<dyn CredentialSource>) -> Result<Self> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let trusted = crate::dns::TrustedHosts::default();
        // The CA files are read now, so a bad one is reported before any request.
        let http = LazyHttp::new(http_builder(&config, &trusted)?);
        // Verification is skipped only for hosts marked insecure, through a second
        // client; every other host keeps full verification.
        let unverified = if config.any_insecure() {
            Some(Arc::new(LazyHttp::new(
                http_builder(&config, &trusted)?.tls_danger_accept_invalid_certs(true),
            )))
        } else {
            None
        };
        Ok(Client {
            http: Arc::new(http),
            unverified,
            config: Arc::new(config),
            creds,
            cache: Arc::default(),
            trusted,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            concurrency: 4,
            monolithic_max: 8 << 20,
            progress: None,
        })
    }

    /// The repository of `reference`.
    pub fn repo(&self, reference: &oci::Reference) -> Repo {
        self.repo_at(reference.registry(), reference.repository())
    }

    /// The HTTP client for `repo`'s host.
    pub(crate) fn http_for(&self, repo: &Repo) -> Result<&reqwest::Client> {
        match &self.unverified {
            Some(u) if self.config.host(&repo.registry).insecure => u.get(),
            _ => self.http.get(),
        }
    }

    /// The repository `name` at `registry`, with the registry's mirrors for reads.
    /// An empty name is the registry's API root, which has no mirrors.
    pub fn repo_at(&self, registry: &str, name: &str) -> Repo {
        let mut repo = self.repo_on(registry, name);
        if !name.is_empty() {
            repo.mirrors = self
                .config
                .mirrors(registry)
                .iter()
                .map(|m| match m.path.as_str() {
                    "" => self.repo_on(&m.host, name),
                    path => self.repo_on(&m.host, &format!("{path}/{name}")),
                })
                .collect();
        }
        repo
    }

    /// The repository `name` at `registry` itself, without mirrors.
    fn repo_on(&self, registry: &str, name: &str) -> Repo {
        let host = endpoint_host(registry);
        self.trusted.add(strip_port(host));
        let scheme = if self.config.host(registry).http {
            "http"
        } else {
            "https"
        };
        // An empty name is the registry's API root (`/v2/`), for login checks.
        let path = if name.is_empty() {
            String::new()
        } else {
            format!("{name}/")
        };
        let base = url::Url::parse(&format!("{scheme}://{host}/v2/{path}"))
            .expect("validated references form valid URLs");
        Repo {
            registry: registry.to_owned(),
            name: name.to_owned(),
            base,
            mirrors: Vec::new(),
        }
    }

    fn scope(repo: &Repo, access: Access, mount_from: Option<&str>) -> String {
        if repo.name.is_empty() {
            return String::new();
        }
        let mut s = match access {
            Access::Pull => format!("repository:{}:pull", repo.name),
            Access::Push => format!("repository:{}:pull,push", repo.name),
        };
        if let Some(from) = mount_from {
            s.push_str(&format!(" repository:{from}:pull"));
        }
        s
    }

    fn host_key(repo: &Repo) -> String {
        repo.base.host_str().unwrap_or_default().to_owned()
            + &repo
                .base
                .port()
                .map(|p| format!(":{p}"))
                .unwrap_or_default()
    }

    /// The `Authorization` header to send now, if one is known.
    fn auth_header(&self, repo: &Repo, scope: &str) -> Result<Option<String>> {
        let host = Self::host_key(repo);
        let scheme = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.schemes.get(&host) {
                None => return Ok(None),
                Some(HostAuth::Bearer { .. }) => {
                    return Ok(cache.token(&host, scope).map(|t| format!("Bearer {t}")));
                }
                Some(s) => s.clone(),
            }
        };
        debug_assert_eq!(scheme, HostAuth::Basic);
        Ok(auth::basic_header(&self.creds.credential(&repo.registry)?))
    }

    /// Answer a 401 challenge: remember the scheme and fetch a token if needed.
    /// `sent` says whether the refused request carried credentials. Returns false
    /// when there is nothing new to try.
    async fn authenticate(
        &self,
        repo: &Repo,
        scope: &str,
        resp: &Response,
        sent: bool,
    ) -> Result<bool> {
        let host = Self::host_key(repo);
        let Some(challenge) = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(auth::parse_challenge)
        else {
            return Ok(false);
        };
        match challenge {
            Challenge::Basic => {
                let cred = self.creds.credential(&repo.registry)?;
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.schemes.insert(host, HostAuth::Basic);
                // Basic with no credentials, or credentials already refused: give up.
                Ok(!sent && !matches!(cred, Credential::Anonymous))
            }
            Challenge::Bearer { realm, service, .. } => {
                let token = self
                    .fetch_token(repo, &realm, service.as_deref(), scope)
                    .await?;
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache
                    .schemes
                    .insert(host.clone(), HostAuth::Bearer { realm, service });
                cache.tokens.insert((host, scope.to_owned()), token);
                Ok(true)
            }
        }
    }

    async fn fetch_token(
        &self,
        repo: &Repo,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<auth::Token> {
        let realm_url = url::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            url: redact(&repo.base),
            reason: format!("token realm {realm:?} is not a URL: {e}"),
        })?;
        if !matches!(realm_url.scheme(), "http" | "https") {
            return Err(RegistryError::Forbidden {
                url: redact(&repo.base),
                target: redact(&realm_url),
                reason: "token realm is not http(s)",
            });
        }
        let registry_host = repo.base.host_str().unwrap_or_default();
        let realm_host = realm_url.host_str().unwrap_or_default();
        check_target_host(realm_host, registry_host).map_err(|reason| {
            RegistryError::Forbidden {
                url: redact(&repo.base),
                target: redact(&realm_url),
                reason,
            }
        })?;
        let cred = if auth::same_site(strip_port(registry_host), realm_host) {
            self.creds.credential(&repo.registry)?
        } else {
            // Never hand credentials to a realm on another site.
            Credential::Anonymous
        };
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            params.push(("service", s));
        }
        let scopes: Vec<&str> = scope.split(" ").filter(|s| !s.is_empty()).collect();
        let req = match &cred {
            Credential::IdentityToken { token, .. } => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.expose()),
                    ("client_id", "manifold"),
                ];
                form.extend(params.iter().copied());
                for s in &scopes {
                    form.push(("scope", s));
                }
                self.http.get()?.post(realm_url.clone()).form(&form)
            }
            other => {
                for s in &scopes {
                    params.push(("scope", s));
                }
                let mut req = self.http.get()?.get(realm_url.clone()).query(&params);
                if let Some(h) = auth::basic_header(other) {
                    req = req.header(header::AUTHORIZATION, h);
                }
                req
            }
        };
        let wait = self.limits.read_timeout;
        let resp = tokio::time::timeout(wait, req.send())
            .await
            .map_err(|_| stalled("token request to", &realm_url, wait))?
            .map_err(|source| transport_error("token request to", &realm_url, source))?;
        let status = resp.status();
        let body = read_capped(
            resp,
            self.limits.token_body,
            "token response",
            &realm_url,
            self.limits.read_timeout,
        )
        .await?;
        if !status.is_success() {
            return Err(RegistryError::Auth {
                registry: repo.registry.clone(),
                reason: format!("token server {} answered {status}", redact(&realm_url)),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Auth {
                registry: repo.registry.clone(),
                reason: format!("unreadable token response: {e}"),
            })?;
        parsed.into_token().ok_or_else(|| RegistryError::Auth {
            registry: repo.registry.clone(),
            reason: "token response has no token".into(),
        })
    }

    /// Send a request built by `build` (called again for each attempt), with auth on
    /// challenge and retries on temporary failures. Non-success answers become
    /// [`RegistryError::Http`] with the spec's error envelope.
    pub(crate) async fn send(
        &self,
        repo: &Repo,
        access: Access,
        mount_from: Option<&str>,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        let scope = Self::scope(repo, access, mount_from);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(repo, &scope, &build).await {
                Err(e) if e.is_temporary() && attempt < self.retry.attempts => {
                    let retry_after = match &e {
                        RegistryError::Http { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    tokio::time::sleep(self.retry.delay(attempt, retry_after)).await;
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        repo: &Repo,
        scope: &str,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        let http = self.http_for(repo)?;
        let mut authenticated = false;
        loop {
            let mut req = build(http);
            let auth = self.auth_header(repo, scope)?;
            let sent = auth.is_some();
            if let Some(h) = auth {
                req = req.header(header::AUTHORIZATION, h);
            }
            let req = req.build().map_err(|source| RegistryError::Transport {
                method: "?".into(),
                url: redact(&repo.base),
                source: source.without_url(),
            })?;
            let (method, target) = (req.method().to_string(), req.url().clone());
            let url = redact(&target);
            // A streamed body may take as long as its producer: its caller times the
            // answer from the body's end ([`crate::push`]).
            let streamed = req.body().is_some_and(|b| b.as_bytes().is_none());
            let pending = http.execute(req);
            let resp = if streamed {
                pending.await
            } else {
                tokio::time::timeout(self.limits.read_timeout, pending)
                    .await
                    .map_err(|_| stalled(&method, &target, self.limits.read_timeout))?
            }
            .map_err(|source| transport_error(&method, &target, source))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !authenticated {
                authenticated = true;
                if self.authenticate(repo, scope, &resp, sent).await? {
                    continue;
                }
            }
            if resp.status().is_success() || resp.status().is_redirection() {
                return Ok(resp);
            }
            return Err(self.http_error(method, url, resp).await);
        }
    }

    /// Send a request once: authentication on challenge, but no retry of temporary
    /// failures (a streamed upload continues from the upload status instead of
    /// starting over). `build` is called again after a 401, so it must make a
    /// fresh body each time.
    pub(crate) async fn send_unretried(
        &self,
        repo: &Repo,
        access: Access,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        let scope = Self::scope(repo, access, None);
        self.send_once(repo, &scope, &build).await
    }

    pub(crate) async fn http_error(
        &self,
        method: String,
        url: String,
        resp: Response,
    ) -> RegistryError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_prefix(resp, self.limits.error_body, self.limits.read_timeout).await;
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(default)]
            errors: Vec<SpecError>,
        }
        let errors = serde_json::from_slice::<Envelope>(&body)
            .map(|e| e.errors)
            .unwrap_or_default();
        let body = if errors.is_empty() {
            String::from_utf8_lossy(&body).chars().take(512).collect()
        } else {
            String::new()
        };
        RegistryError::Http {
            method,
            url,
            status,
            errors,
            body,
            retry_after,
        }
    }
}

/// A reqwest client built from its builder at first use (then shared by clones).
struct LazyHttp {
    builder: Mutex<Option<reqwest::ClientBuilder>>,
    client: std::sync::OnceLock<reqwest::Client>,
}

impl std::fmt::Debug for LazyHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyHttp")
            .field("built", &self.client.get().is_some())
            .finish()
    }
}

impl LazyHttp {
    fn new(builder: reqwest::ClientBuilder) -> LazyHttp {
        LazyHttp {
            builder: Mutex::new(Some(builder)),
            client: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let mut slot = self.builder.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have built it while this one waited for the lock.
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let builder = slot.take().ok_or_else(|| RegistryError::Config {
            path: "registry client".into(),
            reason: "an earlier attempt to build the HTTP client failed".into(),
        })?;
        let client = builder.build().map_err(|e| RegistryError::Config {
            path: "registry client".into(),
            reason: e.to_string(),
        })?;
        Ok(self.client.get_or_init(|| client))
    }
}

fn http_builder(
    config: &RegistryConfig,
    trusted: &crate::dns::TrustedHosts,
) -> Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder()
        .dns_resolver(crate::dns::GuardedResolver {
            trusted: trusted.clone(),
        })
        .user_agent(concat!("manifold/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .redirect(redirect_policy());
    for ca in config.ca_files() {
        let err = |reason: String| RegistryError::Config {
            path: ca.display().to_string(),
            reason,
        };
        let pem = std::fs::read(ca).map_err(|e| err(e.to_string()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| err(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder)
}

/// Redirects: at most 10, never to a private or link-local address. reqwest drops
/// `Authorization` when a redirect leaves the origin host.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("too many redirects");
        }
        let origin = attempt
            .previous()
            .first()
            .and_then(|u| u.host_str())
            .unwrap_or_default()
            .to_owned();
        let target = attempt.url().host_str().unwrap_or_default().to_owned();
        match check_target_host(&target, &origin) {
            Ok(()) => attempt.follow(),
            Err(reason) => {
                let target = redact(attempt.url());
                attempt.error(RedirectRefused { target, reason })
            }
        }
    })
}

/// A redirect the policy refused; becomes [`RegistryError::Forbidden`].
#[derive(Debug)]
struct RedirectRefused {
    target: String,
    reason: &'static str,
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refusing redirect to {}: {}", self.target, self.reason)
    }
}

impl std::error::Error for RedirectRefused {}

/// `method` on `url` got no answer within `after`.
pub(crate) fn stalled(method: &str, url: &url::Url, after: Duration) -> RegistryError {
    RegistryError::Stalled {
        method: method.to_owned(),
        url: redact(url),
        after,
    }
}

/// The next chunk of a response body; [`RegistryError::Stalled`] when none comes
/// within `wait` ([`Limits::read_timeout`]).
pub(crate) async fn next_chunk<S>(
    stream: &mut S,
    method: &str,
    url: &url::Url,
    wait: Duration,
) -> Result<Option<bytes::Bytes>>
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    match tokio::time::timeout(wait, stream.next()).await {
        Err(_) => Err(stalled(method, url, wait)),
        Ok(None) => Ok(None),
        Ok(Some(chunk)) => chunk
            .map(Some)
            .map_err(|source| transport_error(method, url, source)),
    }
}

/// A failed exchange with `url`: a refused redirect is [`RegistryError::Forbidden`]
/// (nothing was sent to the target), anything else [`RegistryError::Transport`].
pub(crate) fn transport_error(
    method: &str,
    url: &url::Url,
    source: reqwest::Error,
) -> RegistryError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&source);
    while let Some(e) = cause {
        if let Some(r) = e.downcast_ref::<RedirectRefused>() {
            return RegistryError::Forbidden {
                url: redact(url),
                target: r.target.clone(),
                reason: r.reason,
            };
        }
        cause = e.source();
    }
    RegistryError::Transport {
        method: method.to_owned(),
        url: redact(url),
        // Its own message would repeat the URL as it is, query and all.
        source: source.without_url(),
    }
}

/// A host the server told us to contact must not be a private or link-local
/// address, unless it is the registry's own host.
pub(crate) fn check_target_host(target: &str, origin: &str) -> Result<(), &'static str> {
    let bare = target.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case(origin.trim_start_matches('[').trim_end_matches(']')) {
        return Ok(());
    }
    match bare.parse::<IpAddr>() {
        Ok(ip) => auth::forbidden_ip(ip).map_or(Ok(()), Err),
        Err(_) => Ok(()),
    }
}

/// Read a body, failing if it exceeds `cap`.
pub(crate) async fn read_capped(
    resp: Response,
    cap: u64,
    what: &'static str,
    url: &url::Url,
    wait: Duration,
) -> Result<Vec<u8>> {
    if resp.content_length().is_some_and(|l| l > cap) {
        return Err(RegistryError::TooLarge {
            what,
            url: redact(url),
            cap,
        });
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = next_chunk(&mut stream, "GET", url, wait).await? {
        if out.len() as u64 + chunk.len() as u64 > cap {
            return Err(RegistryError::TooLarge {
                what,
                url: redact(url),
                cap,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Up to `cap` bytes of a body; the rest is dropped with the connection.
async fn read_prefix(resp: Response, cap: u64, wait: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let url = resp.url().clone();
    let mut stream = resp.bytes_stream();
    while let Ok(Some(chunk)) = next_chunk(&mut stream, "GET", &url, wait).await {
        let room = (cap as usize).saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() as u64 >= cap {
            break;
        }
    }
    out
}

/// `Accept` header listing every manifest and index media type.
pub(crate) fn manifest_accept() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCEPT,
        HeaderValue::from_str(&oci::media::MANIFEST_ACCEPT.join(", "))
            .expect("media types are valid header text"),
    );
    h
}
