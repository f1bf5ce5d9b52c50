//! The embedded registry: OCI distribution spec v1.1 over axum, storing content
//! through the content store.
//!
//! **Invariant**: names, tags, digests and upload ids are validated from the raw
//! request path before any file path is formed from them.
//! **Invariant**: a tag is written only after its manifest is committed to the store
//! and linked to the repository, and a manifest is linked only after its blob is
//! committed, so an interrupted push never leaves a tag pointing at nothing.
//! **Invariant**: no credential is logged: access-log entries carry no header values.

mod auth;
mod blobs;
mod error;
mod manifests;
mod repo;
mod route;
mod tls;
mod token;
mod uploads;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use content::Store;

pub use auth::{AccessLog, Htpasswd, bcrypt_calls};
pub use error::{ApiError, ServerError};
pub use route::{Ref, Route};
pub use tls::{load as load_tls, serve_tls};
pub use token::{LEEWAY_SECS as TOKEN_LEEWAY_SECS, TokenAuth, TokenError};

use repo::Repos;
use uploads::Uploads;

/// Largest manifest accepted (the spec's recommended minimum a registry must take).
pub const MANIFEST_CAP: usize = 4 << 20;

/// How the registry runs.
#[derive(Debug)]
pub struct Config {
    /// State root: the content store lives here and registry state under `registry/`.
    pub root: PathBuf,
    /// Allow manifest, tag and blob deletes.
    pub delete: bool,
    pub auth: Option<Auth>,
    pub access_log: Option<AccessLog>,
    pub limits: Limits,
}

/// What one registry accepts, so no client can fill its disk or its session table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest blob, pushed in one request or in chunks (bytes).
    pub max_blob_size: u64,
    /// Upload sessions open at once; a new one past it is refused with 429.
    pub max_upload_sessions: usize,
    /// Upload sessions one client address may hold open at once (429 past it).
    pub max_upload_sessions_per_client: usize,
    /// How long a client may take to send a request's head (also the wait for the
    /// next request on a kept-alive connection) before the connection is closed.
    pub header_read_timeout: std::time::Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: std::time::Duration,
}

impl Default for Limits {
    /// 64 GiB blobs (no real layer is near it), 1,024 sessions (256 per client
    /// address), 30 s for a request
    /// head and 10 s for a TLS handshake.
    fn default() -> Limits {
        Limits {
            max_blob_size: 64 << 30,
            max_upload_sessions: 1024,
            max_upload_sessions_per_client: 256,
            header_read_timeout: std::time::Duration::from_secs(30),
            tls_handshake_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Who may do what.
#[derive(Debug)]
pub enum Auth {
    /// Any user of the htpasswd file may do anything.
    Basic(Htpasswd),
    /// A bearer token from the token server, granting actions per repository.
    Token(TokenAuth),
}

/// The address a request came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client(pub(crate) std::net::IpAddr);

/// Set on a request whose token does not grant `pull` on a mount's source: the POST
/// starts a plain upload instead.
#[derive(Debug, Clone, Copy)]
struct MountDenied;

/// A registry's state, shared by all requests.
#[derive(Debug)]
pub struct Registry {
    store: Store,
    repos: Repos,
    uploads: Uploads,
    limits: Limits,
    delete: bool,
    auth: Option<Auth>,
    access_log: Option<AccessLog>,
}

fn store_err(root: &Path) -> impl FnOnce(content::StoreError) -> ServerError {
    let path = root.to_owned();
    move |source| ServerError::Store { path, source }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ServerError {
    let path = path.to_owned();
    move |source| ServerError::Io { op, path, source }
}

impl Registry {
    pub fn open(config: Config) -> Result<Arc<Registry>, ServerError> {
        let store = Store::open(&config.root).map_err(store_err(&config.root))?;
        let dir = config.root.join("registry");
        let repos = Repos::open(&dir).map_err(io_err("create registry state in", &dir))?;
        let uploads = Uploads::open(&dir).map_err(io_err("create uploads in", &dir))?;
        Ok(Arc::new(Registry {
            store,
            repos,
            uploads,
            limits: config.limits,
            delete: config.delete,
            auth: config.auth,
            access_log: config.access_log,
        }))
    }

    /// The axum application.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .fallback(handle)
            .with_state(self.clone())
    }
}

/// Request handlers do their file work with `block_in_place`, which needs the
/// multi-threaded runtime.
fn check_runtime() -> std::io::Result<()> {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "the registry needs tokio's multi-threaded runtime",
        )),
        _ => Ok(()),
    }
}

/// Serve `registry` on `listener` until the future is dropped or fails. Needs tokio's
/// multi-threaded runtime.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
) -> std::io::Result<()> {
    check_runtime()?;
    serve_connections(listener, registry, None).await
}

/// Accept connections on `listener` and serve each on its own task, over TLS when
/// `tls` is given: a handshake that has not finished within the registry's
/// `tls_handshake_timeout`, and a request head that has not arrived within its
/// `header_read_timeout`, end their connection. Heads are bounded by hyper's buffer
/// limit (about 400 KiB) and its 100 headers.
pub(crate) async fn serve_connections(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let limits = registry.limits;
    let app = registry.router();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            // Out of file descriptors and the like: wait a little, keep serving.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let tls = tls.clone();
        // Each request knows its client's address (upload sessions are counted by it).
        let app = app.clone().layer(axum::Extension(Client(peer.ip())));
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let svc = TowerToHyperService::new(app);
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                }
                Some(acceptor) => {
                    // A failed or slow handshake only ends that connection.
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp));
                    let Ok(Ok(stream)) = handshake.await else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}

/// What `gc` removed.
#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub links_pruned: usize,
    pub uploads_purged: usize,
    /// Temporary files of state writes a crash interrupted.
    pub tmp_removed: usize,
}

/// Remove blobs no repository's manifests reach, except those of uploads in progress
/// (leased) and blobs linked less than `grace` ago; purge upload sessions idle for
/// longer than `grace`. Safe to run while a server is pushing.
pub fn gc(root: &Path, grace: Duration) -> Result<GcReport, ServerError> {
    let store = Store::open(root).map_err(store_err(root))?;
    let dir = root.join("registry");
    let repos = Repos::open(&dir).map_err(io_err("open registry state in", &dir))?;
    let uploads = Uploads::open(&dir).map_err(io_err("open uploads in", &dir))?;
    let report = store
        .gc_with_roots(|| {
            repos
                .gc_roots(grace)
                .map_err(|source| content::StoreError::Io {
                    op: "read repositories in",
                    path: dir.clone(),
                    source,
                })
        })
        .map_err(store_err(root))?;
    let links_pruned = repos
        .prune_links(|d| store.contains(d))
        .map_err(io_err("prune links in", &dir))?;
    let uploads_purged = uploads
        .purge(grace)
        .map_err(io_err("purge uploads in", &dir))?;
    let tmp_removed = repos
        .purge_tmp(grace)
        .map_err(io_err("purge temporary files in", &dir))?;
    Ok(GcReport {
        blobs_removed: report.removed.len(),
        bytes_freed: report.bytes_freed,
        links_pruned,
        uploads_purged,
        tmp_removed,
    })
}

async fn handle(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let bytes_in = content_length(req.headers());
    let (mut resp, user) = match authorize(&reg, req) {
        Ok((req, user)) => (dispatch(&reg, req).await, user),
        Err(e) => (e.into_response(), None),
    };
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    if let Some(log) = &reg.access_log {
        log.write(&auth::Entry {
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            method: method.as_str(),
            path: &path,
            status: resp.status().as_u16(),
            bytes_in,
            bytes_out: content_length(resp.headers()),
            duration_ms: start.elapsed().as_secs_f64() * 1000.0,
            user: user.as_deref(),
        });
    }
    resp
}

/// The request, marked where its token allows less than it asks, and the user; or
/// the 401 to answer.
fn authorize(reg: &Registry, mut req: Request) -> Result<(Request, Option<String>), ApiError> {
    match &reg.auth {
        None => Ok((req, None)),
        Some(Auth::Basic(h)) => h.check(req.headers()).map(|u| (req, Some(u))),
        Some(Auth::Token(t)) => {
            // An invalid path still needs a valid token; dispatch answers its error.
            let route = route::parse(req.uri().path()).ok().flatten();
            let mount_from = query_param(&req, "mount").and(query_param(&req, "from"));
            let needs = token::needs(req.method(), route.as_ref(), mount_from);
            let granted = t.authenticate(req.headers(), &needs)?;
            if let Some(missing) = needs.access.iter().find(|a| !granted.allows(a)) {
                let message = format!(
                    "the token does not grant {} on {}:{}",
                    missing.action, missing.kind, missing.name
                );
                return Err(t.challenge(&needs, Some("insufficient_scope"), message));
            }
            if let Some(from) = &needs.mount_from
                && !granted.allows(&token::Access {
                    kind: "repository",
                    name: from.clone(),
                    action: "pull",
                })
            {
                req.extensions_mut().insert(MountDenied);
            }
            Ok((req, granted.subject))
        }
    }
}

fn content_length(h: &axum::http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

async fn dispatch(reg: &Arc<Registry>, req: Request) -> Response {
    let route = match route::parse(req.uri().path()) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
                .into_response();
        }
        Err(e) => return e.into_response(),
    };
    let result = match (req.method().clone(), route) {
        (Method::GET | Method::HEAD, Route::Ping) => {
            Ok(json_response(StatusCode::OK, &serde_json::json!({})))
        }
        (Method::GET, Route::Catalog) => manifests::catalog(reg, &req),
        (Method::GET, Route::Tags { name }) => manifests::tags(reg, &name, &req),
        (Method::GET, Route::Referrers { name, digest }) => {
            manifests::referrers(reg, &name, &digest, &req)
        }
        (m @ (Method::GET | Method::HEAD), Route::Manifest { name, reference }) => {
            manifests::get(reg, &name, &reference, m == Method::HEAD).await
        }
        (Method::PUT, Route::Manifest { name, reference }) => {
            manifests::put(reg, &name, &reference, req).await
        }
        (Method::DELETE, Route::Manifest { name, reference }) => {
            manifests::delete(reg, &name, &reference)
        }
        (Method::GET | Method::HEAD, Route::ManifestInvalid { reference, .. }) => {
            Err(ApiError::manifest_unknown(&reference))
        }
        (Method::PUT | Method::DELETE, Route::ManifestInvalid { reference, .. }) => {
            Err(ApiError::tag_invalid(&reference))
        }
        (m @ (Method::GET | Method::HEAD), Route::Blob { name, digest }) => {
            let range = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok());
            blobs::get(reg, &name, &digest, m == Method::HEAD, range).await
        }
        (Method::DELETE, Route::Blob { name, digest }) => blobs::delete(reg, &name, &digest),
        (Method::POST, Route::UploadStart { name }) => blobs::start(reg, &name, req).await,
        (Method::GET, Route::Upload { name, id }) => blobs::status(reg, &name, &id).await,
        (Method::PATCH, Route::Upload { name, id }) => blobs::patch(reg, &name, &id, req).await,
        (Method::PUT, Route::Upload { name, id }) => blobs::finish(reg, &name, &id, req).await,
        (Method::DELETE, Route::Upload { name, id }) => blobs::cancel(reg, &name, &id).await,
        (m, _) => Err(ApiError::unsupported(format!(
            "method {m} is not allowed here"
        ))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(v).expect("json values serialise");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("static response parts are valid")
}

/// The query parameter `key`, percent-decoded.
fn query_param(req: &Request, key: &str) -> Option<String> {
    let q = req.uri().query()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len() + 1
            && let (Some(Some(h)), Some(Some(l))) =
                (b.get(i + 1).map(|&c| hex(c)), b.get(i + 2).map(|&c| hex(c)))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
