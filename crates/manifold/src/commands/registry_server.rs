//! `manifold registry serve|gc`: the embedded registry.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use registry_server::{AccessLog, Auth, Config, Htpasswd, Registry, TokenAuth};

use crate::cli::{Global, RegistryCmd, RegistryGcArgs, RegistryServeArgs};

pub fn run(global: &Global, cmd: &RegistryCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RegistryCmd::Serve(args) => serve(global, args),
        RegistryCmd::Gc(args) => gc(global, args),
    }
}

fn serve(global: &Global, args: &RegistryServeArgs) -> anyhow::Result<ExitCode> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(registry_server::load_tls(cert, key)?),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let root = super::state_root(global)?;
    let auth = match (&args.htpasswd, &args.token_realm) {
        (Some(path), _) => Some(Auth::Basic(Htpasswd::load(path)?)),
        (None, Some(realm)) => {
            let (Some(service), Some(issuer), Some(certs)) = (
                &args.token_service,
                &args.token_issuer,
                &args.token_root_certs,
            ) else {
                bail!("--token-realm needs --token-service, --token-issuer and --token-root-certs");
            };
            Some(Auth::Token(TokenAuth::load(realm, service, issuer, certs)?))
        }
        (None, None) => None,
    };
    let log: Box<dyn std::io::Write + Send> = match &args.access_log {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the access log {}", path.display()))?,
        ),
        None => Box::new(std::io::stderr()),
    };
    let defaults = registry_server::Limits::default();
    let limits = registry_server::Limits {
        max_blob_size: match &args.max_blob_size {
            Some(s) => builder::run_flags::parse_size("--max-blob-size", s)?,
            None => defaults.max_blob_size,
        },
        max_upload_sessions: args
            .max_upload_sessions
            .unwrap_or(defaults.max_upload_sessions),
        max_upload_sessions_per_client: args
            .max_upload_sessions_per_client
            .unwrap_or(defaults.max_upload_sessions_per_client),
        ..defaults
    };
    let registry = Registry::open(Config {
        root: root.clone(),
        delete: args.delete,
        auth,
        access_log: Some(AccessLog::new(log)),
        limits,
    })?;
    super::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        // The one line on stdout: where the registry listens (tests read it).
        let scheme = if tls.is_some() { "https" } else { "http" };
        crate::out::outln!("listening on {addr} ({scheme})")?;
        eprintln!("registry: state root {}", root.display());
        let served = match tls {
            Some(config) => registry_server::serve_tls(listener, registry, config).await,
            None => registry_server::serve(listener, registry).await,
        };
        served.context("the registry stopped")
    })?;
    Ok(ExitCode::SUCCESS)
}

fn gc(global: &Global, args: &RegistryGcArgs) -> anyhow::Result<ExitCode> {
    let root = super::state_root(global)?;
    let report = registry_server::gc(&root, Duration::from_secs(args.grace))?;
    crate::out::outln!(
        "removed {} blobs ({} bytes), {} stale links, {} idle uploads",
        report.blobs_removed,
        report.bytes_freed,
        report.links_pruned,
        report.uploads_purged
    )?;
    Ok(ExitCode::SUCCESS)
}
