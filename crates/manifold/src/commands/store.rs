//! `images`, `du`, `prune`, `fsck`: the local store.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;
use content::Store;

use crate::cli::{Format, ImagesArgs, PruneArgs};
use crate::render::{Hinted, human_size};

pub fn images(store: &Store, args: &ImagesArgs) -> anyhow::Result<ExitCode> {
    let images = store.images()?;
    let mut out = crate::out::stdout();
    if args.quiet {
        for img in &images {
            writeln!(out, "{}", img.name)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        Format::Json => {
            let list: Vec<_> = images
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "name": i.name,
                        "digest": i.descriptor.digest.to_string(),
                        "mediaType": i.descriptor.media_type,
                        "platforms": i.platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "size": i.size,
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        }
        Format::Table => {
            let w = images
                .iter()
                .map(|i| i.name.len())
                .max()
                .unwrap_or(0)
                .max(4);
            writeln!(
                out,
                "{:<w$}  {:<12}  {:>9}  PLATFORMS",
                "NAME", "DIGEST", "SIZE"
            )?;
            for i in &images {
                let platforms: Vec<_> = i.platforms.iter().map(ToString::to_string).collect();
                writeln!(
                    out,
                    "{:<w$}  {:<12}  {:>9}  {}",
                    i.name,
                    i.descriptor.digest.short(),
                    human_size(i.size),
                    if platforms.is_empty() {
                        "-".to_owned()
                    } else {
                        platforms.join(",")
                    }
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn du(store: &Store) -> anyhow::Result<ExitCode> {
    let u = store.usage()?;
    let mut out = crate::out::stdout();
    writeln!(out, "{:<14} {:>8} {:>10}", "TYPE", "BLOBS", "SIZE")?;
    writeln!(
        out,
        "{:<14} {:>8} {:>10}",
        "images",
        u.reachable_blobs,
        human_size(u.reachable_bytes)
    )?;
    writeln!(
        out,
        "{:<14} {:>8} {:>10}",
        "reclaimable",
        u.blobs.saturating_sub(u.reachable_blobs),
        human_size(u.bytes.saturating_sub(u.reachable_bytes))
    )?;
    writeln!(
        out,
        "{:<14} {:>8} {:>10}",
        "in progress",
        "-",
        human_size(u.ingest_bytes)
    )?;
    writeln!(
        out,
        "{:<14} {:>8} {:>10}",
        "total",
        u.blobs,
        human_size(u.bytes + u.ingest_bytes)
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn prune(store: &Store, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    if !args.force {
        let what = if args.all {
            "all images and all build cache"
        } else {
            "all content no image or running build uses"
        };
        if !confirm(&format!("This will remove {what}."))? {
            eprintln!("prune cancelled");
            return Ok(ExitCode::from(1));
        }
    }
    let pruned = builder::state::prune(store, args.all)?;
    if pruned.build_running {
        eprintln!(
            "a build is running on this state root: build cache, snapshots, temporary files \
             and the content of the removed names were kept"
        );
    }
    if pruned.names > 0 {
        eprintln!("removed {} image name(s)", pruned.names);
    }
    for r in &pruned.state {
        eprintln!("removed {}: {}", r.what, human_size(r.bytes));
    }
    let (report, removed) = (&pruned.gc, &pruned.state);
    let total = report.bytes_freed + removed.iter().map(|r| r.bytes).sum::<u64>();
    crate::out::outln!(
        "Total reclaimed: {} ({} blob(s))",
        human_size(total),
        report.removed.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn confirm(warning: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(anyhow::Error::new(Hinted::new(
            format!(
                "{warning} refusing to prune without confirmation: standard input is not a terminal"
            ),
            "pass --force to prune without asking",
        )));
    }
    eprint!("WARNING! {warning}\nAre you sure you want to continue? [y/N] ");
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn fsck(store: &Store) -> anyhow::Result<ExitCode> {
    let r = store.fsck()?;
    for (name, actual) in &r.corrupt {
        crate::out::outln!("corrupt: blob {name} hashes to {actual}")?;
    }
    for path in &r.stray {
        crate::out::outln!("stray: {} is not a blob", path.display())?;
    }
    for (from, d) in &r.missing {
        crate::out::outln!("missing: {d} (referenced by {from})")?;
    }
    if r.is_clean() {
        crate::out::outln!("{} blob(s) verified, no problems found", r.checked)?;
        Ok(ExitCode::SUCCESS)
    } else {
        bail!(Hinted::new(
            format!(
                "store check failed: {} corrupt, {} stray, {} missing",
                r.corrupt.len(),
                r.stray.len(),
                r.missing.len()
            ),
            "remove the corrupt blobs and pull or rebuild the images that use them; `manifold prune` removes unused ones",
        ))
    }
}
