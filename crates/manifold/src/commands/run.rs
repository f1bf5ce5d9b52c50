//! `manifold run`: run an image from the local store or a registry, on its own
//! platform (emulated when foreign), with the exit code passed through.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use content::Store;
use oci::document::ManifestOrIndex;
use oci::{Descriptor, Platform, PlatformMatcher, Reference};
use registry::ops::Platforms;
use worker::exec::{CancelToken, ExecIo, Runc, RuncConfig, Stream};

use super::registry::client;
use crate::cli::{Global, RunArgs};
use crate::render::Hinted;

/// The manifest to run: from a local name, or pulled from a registry.
async fn resolve(
    global: &Global,
    store: &Store,
    image: &str,
    platform: Option<&Platform>,
) -> anyhow::Result<Descriptor> {
    let reference =
        Reference::parse(image).with_context(|| format!("invalid image reference {image:?}"))?;
    let want = platform.cloned().unwrap_or_else(Platform::host);
    for name in [image.to_owned(), reference.to_string()] {
        if let Ok(desc) = store.resolve(&name) {
            let local = pick_local(store, &desc, &want, &name)?;
            // A stored single-platform image of another platform: pull the one asked for.
            let other = platform.is_some()
                && local
                    .platform
                    .as_ref()
                    .is_some_and(|p| !PlatformMatcher::only(&want).matches(p));
            if !other {
                return Ok(local);
            }
        }
    }
    let client = client(global)?;
    let lease = store.lease()?;
    // By digest, the manifest chooses the platform; by tag, the requested one.
    let choose = if reference.digest().is_some() && platform.is_none() {
        Platforms::All
    } else {
        Platforms::Best(want)
    };
    let desc = client
        .pull(store, &lease, &reference, &choose)
        .await
        .with_context(|| format!("cannot pull {reference}"))?;
    store.set_name(&reference.to_string(), &desc)?;
    match oci::media::kind(&desc.media_type) {
        oci::media::Kind::Index => {
            pick_local(store, &desc, &Platform::host(), &reference.to_string())
        }
        _ => Ok(desc),
    }
}

/// A single-platform manifest from a stored manifest or index.
fn pick_local(
    store: &Store,
    desc: &Descriptor,
    want: &Platform,
    name: &str,
) -> anyhow::Result<Descriptor> {
    let bytes = store.read_document(&desc.digest)?;
    match ManifestOrIndex::parse(&desc.media_type, bytes)? {
        ManifestOrIndex::Manifest(_) => Ok(desc.clone()),
        ManifestOrIndex::Index(index) => {
            let index = index.value();
            index.manifest_for(want).cloned().ok_or_else(|| {
                let have: Vec<String> = index.platforms().iter().map(ToString::to_string).collect();
                anyhow::Error::new(Hinted::new(
                    format!(
                        "{name} has no image for {want} (it has {})",
                        have.join(", ")
                    ),
                    "choose one with --platform",
                ))
            })
        }
    }
}

pub fn run(global: &Global, store: &Store, args: &RunArgs) -> anyhow::Result<ExitCode> {
    if !rustix::process::geteuid().is_root() {
        bail!(Hinted::new(
            "running containers needs root for now",
            "run manifold run as root"
        ));
    }
    let platform = args
        .platform
        .as_deref()
        .map(|p| Platform::parse(p).with_context(|| format!("invalid platform {p:?}")))
        .transpose()?;
    let rt = super::runtime()?;
    let manifest = rt.block_on(resolve(global, store, &args.image, platform.as_ref()))?;
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
