//! `manifold run`: run an image from the local store or a registry, on its own
//! platform (emulated when foreign), with the exit code passed through.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use content::Store;
use oci::Platform;
use worker::exec::{CancelToken, ExecIo, Runc, RuncConfig, Stream};

use super::registry::client;
use crate::cli::{Global, RunArgs};

pub fn run(global: &Global, store: &Store, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let platform = args
        .platform
        .as_deref()
        .map(|p| Platform::parse(p).with_context(|| format!("invalid platform {p:?}")))
        .transpose()?;
    let rt = super::runtime()?;
    let client = client(global)?;
    let manifest = rt.block_on(builder::image_to_run(
        Some(&client),
        store,
        &args.image,
        platform.as_ref(),
    ))?;
    let snapshotter = worker::snapshot::detect(store.root())?;
    let runc = Runc::new(RuncConfig::new(store.root().join("bundles")));
    let cancel = CancelToken::new();
    let on_signal = cancel.clone();
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let mut io = ExecIo::new(|stream, bytes| {
        // A closed stdout (e.g. `| head`) must not stop the container.
        let _ = match stream {
            Stream::Stdout => crate::out::stdout().write_all(bytes),
            Stream::Stderr => std::io::stderr().lock().write_all(bytes),
        };
    });
    // Pipes and files reach the container; an interactive terminal does not yet.
    if !std::io::stdin().is_terminal() {
        io = io.with_stdin();
    }
    let status = worker::image::run_image(
        store,
        &*snapshotter,
        &runc,
        &manifest,
        &args.command,
        io,
        &cancel,
    )?;
    let _ = std::io::stdout().flush();
    if let Some(sig) = status.signal {
        return Ok(ExitCode::from(128u8.wrapping_add(sig as u8)));
    }
    Ok(ExitCode::from(u8::try_from(status.code).unwrap_or(1)))
}
