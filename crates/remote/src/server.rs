//! `manifold daemon`: accept connections, answer `Info`, run builds.
//!
//! A build runs while its client stays connected: the daemon reads the
//! connection during the build, and end-of-stream cancels it (the solver stops
//! its steps; runc containers are killed and mounts removed as for Ctrl-C).
//! Secrets and registry credentials live in the request only: never written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use registry::{Credential, StaticCredentials};
use solver::{CancellationToken, EventSink, error_chain as chain};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use worker::Entitlements;

use crate::RemoteError;
use crate::conn::Conn;
use crate::endpoint::Endpoint;
use crate::protocol::{
    BuildCall, ContextManifest, Done, FileMeta, Info, PROTOCOL, Reply, Request, WireEvent,
    version_mismatch,
};
use crate::sync::{self, Contexts};
use crate::tls::{self, TlsFiles};
use crate::{transfer, wire};

/// How a daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Its state root (content store, snapshots, cache, synced contexts).
    pub root: PathBuf,
    /// What the daemon's operator grants; a build gets what both sides allow.
    pub grants: Entitlements,
    /// Mutual TLS for TCP.
    pub tls: Option<TlsFiles>,
    /// Registry settings (insecure registries, …) for pulls and pushes.
    pub registry: registry::RegistryConfig,
    /// The OCI runtime.
    pub runtime: PathBuf,
    /// Sees each build request as it arrived, before it runs; an `Err` refuses the
    /// build with that message (an operator's policy, or a test of the wire).
    pub admit: Option<Admission>,
    /// Runs after each successful build, once the build has let go of the build
    /// state and its client has the reply (the garbage-collection policy).
    pub after_build: Option<AfterBuild>,
}

/// What runs after each build ([`DaemonConfig::after_build`]), on a blocking thread.
#[derive(Clone)]
pub struct AfterBuild(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for AfterBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterBuild(..)")
    }
}

/// A check of each build request a daemon receives ([`DaemonConfig::admit`]).
#[derive(Clone)]
pub struct Admission(pub Arc<AdmitFn>);

/// What an [`Admission`] calls.
pub type AdmitFn = dyn Fn(&builder::BuildRequest) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admission(..)")
    }
}

struct State {
    config: DaemonConfig,
    store: content::Store,
    snapshotter: Arc<dyn worker::snapshot::Snapshotter>,
    executor: Arc<dyn worker::exec::Executor>,
    contexts: Contexts,
    running: AtomicU32,
}

/// Serve `endpoint` until `shutdown` fires.
pub async fn serve(
    endpoint: &Endpoint,
    config: DaemonConfig,
    shutdown: CancellationToken,
) -> Result<(), RemoteError> {
    let fail = |message: String| RemoteError::Protocol {
        endpoint: endpoint.to_string(),
        message,
    };
    let store = content::Store::open(&config.root).map_err(|e| fail(e.to_string()))?;
    let snapshotter: Arc<dyn worker::snapshot::Snapshotter> =
        worker::snapshot::detect(store.root())
            .map_err(|e| fail(e.to_string()))?
            .into();
    let mut runc = worker::RuncConfig::new(store.root().join("bundles"));
    runc.runtime = config.runtime.clone();
    let state = Arc::new(State {
        contexts: Contexts::new(config.root.join("remote")),
        store,
        snapshotter,
        executor: Arc::new(worker::Runc::new(runc)),
        running: AtomicU32::new(0),
        config,
    });
    match endpoint {
        Endpoint::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let listener = bind_unix(path).map_err(|e| RemoteError::Connect {
                endpoint: endpoint.to_string(),
                source: e,
            })?;
            // A rootless daemon serves its own user only: the socket is 0600 and each
            // peer's uid must be ours (another host user shows as the overflow uid).
            let own_only = content::identity::identity().is_rootless();
            let me = rustix::process::geteuid().as_raw();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    accepted = listener.accept() => {
                        if let Ok((s, _)) = accepted {
                            if own_only && s.peer_cred().map(|c| c.uid()).ok() != Some(me) {
                                drop(s);
                                continue;
                            }
                            let st = state.clone();
                            tokio::spawn(async move { handle(st, Box::new(s)).await });
                        }
                    }
                }
            }
            let _ = std::fs::remove_file(path);
        }
        Endpoint::Tcp(hp) => {
            let files = state.config.tls.as_ref().ok_or_else(|| {
                fail("a tcp:// daemon needs --tls-ca, --tls-cert and --tls-key".into())
            })?;
            let tls_config = tls::server_config(files).map_err(|e| fail(e.to_string()))?;
            let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);
            let listener =
                tokio::net::TcpListener::bind(hp)
                    .await
                    .map_err(|e| RemoteError::Connect {
                        endpoint: endpoint.to_string(),
                        source: e,
                    })?;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    accepted = listener.accept() => {
                        if let Ok((tcp, _)) = accepted {
                            let (st, acceptor) = (state.clone(), acceptor.clone());
                            tokio::spawn(async move {
                                // A failed handshake (no client certificate) ends only it.
                                if let Ok(tls) = acceptor.accept(tcp).await {
                                    handle(st, Box::new(tls)).await;
                                }
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

async fn handle(state: Arc<State>, conn: Conn) {
    let (mut r, mut w) = tokio::io::split(conn);
    let request = match wire::read_json::<_, serde_json::Value>(&mut r).await {
        Ok(Some(v)) => check_version(v),
        Ok(None) => return,
        Err(e) => Err(e.to_string()),
    };
    let request = match request {
        Ok(r) => r,
        Err(message) => {
            let _ = wire::write_json(&mut w, &Reply::Error { message }).await;
            return;
        }
    };
    match request {
        Request::Info => {
            let _ = wire::write_json(&mut w, &Reply::Info(info(&state))).await;
        }
        Request::Build(call) => {
            state.running.fetch_add(1, Ordering::Relaxed);
            let reply = match build(&state, *call, &mut r, &mut w).await {
                Ok(done) => Reply::Done(done),
                Err(message) => Reply::Error { message },
            };
            state.running.fetch_sub(1, Ordering::Relaxed);
            let _ = wire::write_json(&mut w, &reply).await;
            if let (Reply::Done(_), Some(hook)) = (&reply, &state.config.after_build) {
                let hook = hook.0.clone();
                let _ = tokio::task::spawn_blocking(move || hook()).await;
            }
        }
        Request::Want { .. } => {
            let reply = Reply::Error {
                message: "a list of blobs to send comes only after a build's result".into(),
            };
            let _ = wire::write_json(&mut w, &reply).await;
        }
    }
}

/// The request a frame holds; a build of another protocol version is refused
/// before it is read further, naming both versions.
fn check_version(frame: serde_json::Value) -> Result<Request, String> {
    if frame.get("op").and_then(|o| o.as_str()) == Some("build") {
        let theirs = frame
            .get("protocol")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1);
        if theirs != u64::from(PROTOCOL) {
            let version = frame
                .get("client_version")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown");
            return Err(version_mismatch(
                (u32::try_from(theirs).unwrap_or(u32::MAX), version),
                (PROTOCOL, env!("CARGO_PKG_VERSION")),
            ));
        }
    }
    serde_json::from_value(frame).map_err(|e| format!("invalid request: {e}"))
}

fn info(state: &State) -> Info {
    let (native, emulated) = crate::probe::host_platforms_by_kind();
    Info {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL,
        native,
        emulated,
        snapshotter: state.snapshotter.driver().name().to_owned(),
        cache_bytes: state.store.usage().map(|u| u.bytes).unwrap_or(0),
        running: state.running.load(Ordering::Relaxed),
    }
}

async fn build<R, W>(
    state: &Arc<State>,
    call: BuildCall,
    r: &mut R,
    w: &mut W,
) -> Result<Done, String>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    check_grants(state, &call.request)?;
    if let Some(admit) = &state.config.admit {
        (admit.0)(&call.request)?;
    }
    let inputs = receive_inputs(state, &call, r, w).await?;
    let session = session(state, &inputs.contexts).await?;
    let client = registry_client(state, &call)?;
    // The build state lock local builds take, so a `manifold prune --all` on this
    // root keeps the build cache and snapshots while this build uses them; waits
    // while a prune holds it.
    let root = state.store.root().to_owned();
    let _using = tokio::task::spawn_blocking(move || builder::state::hold_shared(&root))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot lock the build state: {}", chain(&e)))?;
    let req = &call.request;
    let out = run_build(state, &client, req, session, r, w).await?;
    if req.needs_client() {
        send_result(state, &out.image, r, w).await?;
    }
    Ok(Done {
        index: out.image,
        config: out.config.map(Box::new),
        manifests: out.manifests,
        pushed: out.pushed,
    })
}

/// Refuse an entitlement the client asks for and this daemon does not grant.
fn check_grants(state: &State, req: &builder::BuildRequest) -> Result<(), String> {
    if req.allow.network_host && !state.config.grants.network_host {
        return Err(
            "network.host was requested but this daemon does not grant it \
                    (start it with --allow network.host)"
                .into(),
        );
    }
    if req.allow.security_insecure && !state.config.grants.security_insecure {
        return Err(
            "security.insecure was requested but this daemon does not grant it \
                    (start it with --allow security.insecure)"
                .into(),
        );
    }
    Ok(())
}

/// What a build receives from its client before it starts.
struct Inputs<'a> {
    /// Each context's manifest, with its entries once checked.
    contexts: Vec<(&'a ContextManifest, BTreeMap<String, FileMeta>)>,
    /// Keeps the layout contexts' blobs from garbage collection for the build.
    _lease: content::Lease,
}

/// Contexts: check, ask for what is missing, receive it, update the copies; then
/// the blobs of the `oci-layout://` contexts that this store lacks.
async fn receive_inputs<'a, R, W>(
    state: &Arc<State>,
    spec: &'a BuildCall,
    r: &mut R,
    w: &mut W,
) -> Result<Inputs<'a>, String>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut checked = Vec::new();
    let mut wanted = Vec::new();
    for m in &spec.contexts {
        let entries = sync::validate(m).map_err(|e| e.to_string())?;
        for (d, size) in state.contexts.missing(&entries) {
            if !wanted.iter().any(|(x, _)| *x == d) {
                wanted.push((d, size));
            }
        }
        checked.push((m, entries));
    }
    // `oci-layout://` contexts: the blobs this store lacks come after the files.
    let layout_blobs: Vec<oci::Descriptor> = spec
        .layouts
        .iter()
        .flat_map(|l| l.blobs.iter().cloned())
        .collect();
    let blobs_wanted = transfer::missing(&state.store, &layout_blobs);
    let need = Reply::Need {
        digests: wanted
            .iter()
            .map(|(d, _)| d.to_string())
            .chain(blobs_wanted.iter().map(|d| d.digest.to_string()))
            .collect(),
    };
    wire::write_json(w, &need)
        .await
        .map_err(|e| e.to_string())?;
    state
        .contexts
        .receive(r, &wanted)
        .await
        .map_err(|e| e.to_string())?;
    let lease = state.store.lease().map_err(|e| chain(&e))?;
    transfer::receive(r, &state.store, &lease, &blobs_wanted)
        .await
        .map_err(|e| format!("oci-layout context: {}", chain(&e)))?;
    for l in &spec.layouts {
        for b in &l.blobs {
            state
                .store
                .protect(&lease, &b.digest)
                .map_err(|e| chain(&e))?;
        }
        transfer::complete(&state.store, &l.root)
            .map_err(|e| format!("--build-context {}: {}", l.name, chain(&e)))?;
        let local = builder::layout_context_name(&l.name, &l.root.digest);
        state
            .store
            .set_name(&local, &l.root)
            .map_err(|e| chain(&e))?;
    }
    Ok(Inputs {
        contexts: checked,
        _lease: lease,
    })
}

/// The contexts as directories, for a build for a client elsewhere.
async fn session(
    state: &Arc<State>,
    checked: &[(&ContextManifest, BTreeMap<String, FileMeta>)],
) -> Result<builder::Session, String> {
    let mut session = builder::Session {
        for_remote_client: true,
        ..builder::Session::default()
    };
    for (m, entries) in checked {
        let contexts = state.contexts.clone();
        let (m2, e2) = ((*m).clone(), entries.clone());
        let dir = tokio::task::spawn_blocking(move || contexts.materialize(&m2, &e2))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        session
            .locals
            .insert(m.name.clone(), builder::LocalDir { dir });
    }
    Ok(session)
}

/// A registry client with the credentials of this request only.
fn registry_client(state: &State, spec: &BuildCall) -> Result<registry::Client, String> {
    let mut creds = StaticCredentials::new();
    for c in &spec.credentials {
        creds.insert(
            &c.registry,
            Credential::Basic {
                username: c.username.clone(),
                password: registry::Secret::new(c.password.clone()),
            },
        );
    }
    registry::Client::new(state.config.registry.clone(), Arc::new(creds)).map_err(|e| chain(&e))
}

/// Build `req` (and push the result as it asks), sending the progress to the client
/// as it comes; the build is cancelled when the client leaves or can no longer be
/// written to.
async fn run_build<R, W>(
    state: &Arc<State>,
    client: &registry::Client,
    req: &builder::BuildRequest,
    session: builder::Session,
    r: &mut R,
    w: &mut W,
) -> Result<builder::BuildOutput, String>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let b = builder::Builder::new(
        state.store.clone(),
        state.snapshotter.clone(),
        state.executor.clone(),
        Some(client.clone()),
    );
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let events = EventSink::new(move |e| {
        if let Some(we) = WireEvent::from_event(&e) {
            let _ = tx.send(we);
        }
    });
    let run = {
        let cancel = cancel.clone();
        async move {
            b.build(req, &session, events, cancel)
                .await
                .map_err(|e| chain(&e))
        }
    };
    tokio::pin!(run);
    let mut buf = [0u8; 1];
    let result = loop {
        tokio::select! {
            out = &mut run => break out,
            Some(ev) = rx.recv() => {
                if wire::write_json(w, &Reply::Event(ev)).await.is_err() {
                    cancel.cancel();
                }
            }
            // The client sends nothing more: a read that returns means it left.
            _ = tokio::io::AsyncReadExt::read(r, &mut buf), if !cancel.is_cancelled() => {
                cancel.cancel();
            }
        }
    };
    while let Ok(ev) = rx.try_recv() {
        let _ = wire::write_json(w, &Reply::Event(ev)).await;
    }
    result
}

/// Send the built image: its blob list, then the blobs the client asks for.
async fn send_result<R, W>(
    state: &Arc<State>,
    index: &oci::Descriptor,
    r: &mut R,
    w: &mut W,
) -> Result<(), String>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    // Kept from garbage collection until it is sent.
    let lease = state.store.lease().map_err(|e| chain(&e))?;
    let blobs = transfer::tree(&state.store, index).map_err(|e| chain(&e))?;
    for b in &blobs {
        state
            .store
            .protect(&lease, &b.digest)
            .map_err(|e| chain(&e))?;
    }
    let result = Reply::Result {
        index: index.clone(),
        blobs: blobs.clone(),
    };
    wire::write_json(w, &result)
        .await
        .map_err(|e| e.to_string())?;
    let digests = match wire::read_json::<_, Request>(r).await {
        Ok(Some(Request::Want { digests })) => digests,
        Ok(_) => return Err("expected the list of blobs to send".into()),
        Err(e) => return Err(e.to_string()),
    };
    for d in &digests {
        let digest = blobs
            .iter()
            .map(|b| &b.digest)
            .find(|b| b.to_string() == *d)
            .ok_or_else(|| format!("{d} is not a blob of the image {}", index.digest))?;
        transfer::send(w, &state.store, digest)
            .await
            .map_err(|e| chain(&e))?;
    }
    Ok(())
}

/// Bind a unix socket; for a rootless daemon its directory is made 0700 and the socket
/// 0600 before the first connection can be accepted.
fn bind_unix(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let rootless = content::identity::identity().is_rootless();
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir)?;
        if rootless {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    if rootless {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_of_another_protocol_is_refused_naming_both_versions() {
        // What a client from before versions were sent puts on the wire.
        let old = serde_json::json!({"op": "build", "dockerfile": "FROM scratch", "platforms": []});
        let e = check_version(old).unwrap_err();
        assert!(e.contains("protocol 1 (manifold unknown)"), "{e}");
        assert!(
            e.contains(&format!("protocol {PROTOCOL} (manifold ")),
            "{e}"
        );
        let newer = serde_json::json!({"op": "build", "protocol": PROTOCOL + 1,
                                       "client_version": "9.9.9"});
        let e = check_version(newer).unwrap_err();
        assert!(
            e.contains(&format!("protocol {} (manifold 9.9.9)", PROTOCOL + 1)),
            "{e}"
        );
        // Info carries no version: any client may ask what a daemon is.
        assert!(matches!(
            check_version(serde_json::json!({"op": "info"})),
            Ok(Request::Info)
        ));
        let call = BuildCall::new(builder::BuildRequest::default());
        let frame = serde_json::to_value(Request::Build(Box::new(call.clone()))).unwrap();
        match check_version(frame) {
            Ok(Request::Build(back)) => assert_eq!(*back, call),
            other => panic!("{other:?}"),
        }
    }
}
