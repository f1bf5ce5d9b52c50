//! `manifold daemon`: serve builds to remote clients.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::{DaemonArgs, Global};
use crate::render::Hinted;

pub fn run(global: &Global, args: &DaemonArgs) -> anyhow::Result<ExitCode> {
    let addr = args.addr.clone().unwrap_or_else(|| {
        let sock = content::identity::runtime_dir().join("manifold.sock");
        format!("unix://{}", sock.display())
    });
    let endpoint = remote::Endpoint::parse(&addr)?;
    let tls = match (&args.tls_ca, &args.tls_cert, &args.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(remote::TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None, None) => None,
        _ => bail!(Hinted::new(
            "--tls-ca, --tls-cert and --tls-key go together",
            "give all three (mutual TLS), or none for a unix:// socket",
        )),
    };
    if matches!(endpoint, remote::Endpoint::Tcp(_)) && tls.is_none() {
        bail!(Hinted::new(
            format!("{endpoint} would accept builds from anyone who can connect"),
            "give --tls-ca, --tls-cert and --tls-key (clients must present a certificate the CA signed)",
        ));
    }
    let grants = builder::parse_allow(&args.allow)?;
    let root = super::state_root(global)?;
    let config = remote::DaemonConfig {
        root: root.clone(),
        grants,
        tls,
        registry: super::registry::registry_config(global)?,
        runtime: args.runtime.clone(),
        admit: args.log_requests.as_deref().map(request_log),
        after_build: Some(super::gc::daemon_hook(
            root.clone(),
            crate::config::config_dir(global),
        )),
    };
    let running = running_marker(&root)?;
    let rt = super::runtime()?;
    let shutdown = solver::CancellationToken::new();
    let stop = shutdown.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            stop.cancel();
        });
        eprintln!("manifold daemon listening on {endpoint}");
        remote::serve(&endpoint, config, shutdown).await
    })
    .context("the daemon stopped")?;
    // Only a stop that got here is clean; a crash or SIGKILL leaves the marker.
    let _ = std::fs::remove_file(&running);
    Ok(ExitCode::SUCCESS)
}

/// Mark the root as served by a running daemon, first re-verifying the content
/// store when the marker is already there: the last daemon on this root did not
/// stop cleanly (a crash, a kill, a power loss), so blobs it was writing may hold
/// bytes that do not match their names. Those are set aside, so the next build
/// writes them again; the cache records and context indexes check themselves as
/// they are read.
fn running_marker(root: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let marker = root.join("daemon.running");
    if marker.exists() {
        eprintln!(
            "the last daemon on {} did not stop cleanly: re-verifying its content store",
            root.display()
        );
        let store = content::Store::open(root)?;
        let moved = store.set_aside_corrupt_blobs()?;
        for (digest, to) in &moved {
            eprintln!(
                "blob {digest} did not match its digest; set aside as {}",
                to.display()
            );
        }
        eprintln!(
            "content store verified: {} damaged blob(s) set aside",
            moved.len()
        );
    }
    std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
    std::fs::write(&marker, format!("{}\n", std::process::id()))
        .with_context(|| format!("write {}", marker.display()))?;
    Ok(marker)
}

/// `--log-requests FILE`: each build request as one JSON line (secrets as digests);
/// a request that cannot be logged is refused.
fn request_log(path: &std::path::Path) -> remote::Admission {
    let path = path.to_owned();
    let lock = std::sync::Mutex::new(());
    remote::Admission(std::sync::Arc::new(move |req: &builder::BuildRequest| {
        use std::io::Write;
        let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
        let line = format!("{}\n", req.audit_json());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| format!("cannot log the request to {}: {e}", path.display()))
    }))
}
