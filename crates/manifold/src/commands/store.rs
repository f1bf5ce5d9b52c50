//! `images`, `du`, `prune`, `fsck`: the local store.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;
use content::Store;

use builder::gc::{Filter, Kind, Rule};
use builder::inventory::Inventory;

use crate::cli::{DuArgs, Format, ImagesArgs, PruneArgs};
use crate::render::{Hinted, human_ago, human_size};

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

pub fn du(store: &Store, args: &DuArgs) -> anyhow::Result<ExitCode> {
    let u = store.usage()?;
    let root = store.root();
    let inv = Inventory::read(root)?;
    let mut out = crate::out::stdout();
    if args.verbose {
        list_state(&mut out, &inv)?;
    }
    let records = builder::inventory::records_usage(root);
    let (snapshots, mounts) = (inv.snapshot_bytes(), inv.cache_mount_bytes());
    // The total is the whole root as `du -sb` counts it; what no row above names
    // (the store's own files, context indexes, export caches, …) is "other".
    let counted = u.bytes + u.ingest_bytes + records + snapshots + mounts;
    let total = builder::inventory::root_usage(root).max(counted);
    let other = total - counted;
    let row = |out: &mut dyn Write, what: &str, count: String, bytes: u64| {
        writeln!(out, "{what:<18} {count:>8} {:>10}", human_size(bytes))
    };
    writeln!(out, "{:<18} {:>8} {:>10}", "TYPE", "COUNT", "SIZE")?;
    row(
        &mut out,
        "images",
        u.reachable_blobs.to_string(),
        u.reachable_bytes,
    )?;
    let unreachable = u.blobs.saturating_sub(u.reachable_blobs);
    let unreachable_bytes = u.bytes.saturating_sub(u.reachable_bytes);
    row(
        &mut out,
        "reclaimable",
        unreachable.to_string(),
        unreachable_bytes,
    )?;
    row(&mut out, "in progress", "-".into(), u.ingest_bytes)?;
    row(
        &mut out,
        "cache records",
        inv.records.len().to_string(),
        records,
    )?;
    row(
        &mut out,
        "snapshots",
        inv.snapshots.len().to_string(),
        snapshots,
    )?;
    row(
        &mut out,
        "cache mounts",
        inv.cache_mounts.len().to_string(),
        mounts,
    )?;
    row(&mut out, "other", "-".into(), other)?;
    row(&mut out, "total", "-".into(), total)?;
    Ok(ExitCode::SUCCESS)
}

/// `du --verbose`: one block per cache record, snapshot and cache mount, least
/// recently used first, as `buildx du --verbose` prints them.
fn list_state(out: &mut dyn Write, inv: &Inventory) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now();
    let mut records: Vec<_> = inv.records.iter().collect();
    records.sort_by_key(|r| r.last_used);
    for r in records {
        writeln!(out, "ID:           {}", &r.key.hex()[..12])?;
        writeln!(out, "Type:         step")?;
        writeln!(out, "Description:  {}", r.description)?;
        writeln!(out, "Size:         {}", human_size(inv.record_bytes(r)))?;
        writeln!(out, "Last used:    {}", human_ago(r.last_used, now))?;
        let snapshot = match (&r.top, r.chain.is_empty()) {
            (None, _) => "-".to_owned(),
            (Some(k), false) => k.clone(),
            (Some(k), true) => format!("{k} (not made here)"),
        };
        writeln!(out, "Snapshot:     {snapshot}\n")?;
    }
    let mut snapshots: Vec<_> = inv.snapshots.iter().collect();
    snapshots.sort_by_key(|s| s.last_used);
    for s in snapshots {
        writeln!(out, "ID:           {}", s.key)?;
        writeln!(out, "Type:         snapshot ({})", s.driver.name())?;
        writeln!(
            out,
            "Parent:       {}",
            s.parent.as_ref().map_or("-", |p| p.as_str())
        )?;
        writeln!(out, "Size:         {}", human_size(s.bytes))?;
        writeln!(out, "Last used:    {}", human_ago(s.last_used, now))?;
        writeln!(out, "Used by:      {} cache record(s)\n", s.users)?;
    }
    let mut mounts: Vec<_> = inv.cache_mounts.iter().collect();
    mounts.sort_by_key(|m| m.last_used);
    for m in mounts {
        writeln!(out, "ID:           {}", m.id_hash())?;
        writeln!(out, "Type:         cache-mount")?;
        writeln!(out, "Instance:     {}", m.instance())?;
        writeln!(out, "Size:         {}", human_size(m.bytes))?;
        writeln!(out, "Last used:    {}\n", human_ago(m.last_used, now))?;
    }
    Ok(())
}

pub fn prune(store: &Store, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let rule = prune_rule(args)?;
    if !args.force {
        let what = match (&rule, args.all) {
            (Some(_), _) => "the build cache, cache mounts and content the filters select",
            (None, true) => "all images and all build cache",
            (None, false) => "all content no image or running build uses",
        };
        if !confirm(&format!("This will remove {what}."))? {
            eprintln!("prune cancelled");
            return Ok(ExitCode::from(1));
        }
    }
    let req = builder::prune::PruneRequest {
        all: args.all,
        rule,
    };
    let pruned = builder::prune::prune(store, &req)?;
    if pruned.build_running {
        let kept = match req.rule {
            Some(_) => "build cache, snapshots and cache mounts were kept",
            None => {
                "build cache, snapshots, temporary files and the content of the removed \
                 names were kept"
            }
        };
        eprintln!("a build is running on this state root: {kept}");
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

/// The rule `--filter` and `--keep-storage` make, or none without either.
fn prune_rule(args: &PruneArgs) -> anyhow::Result<Option<Rule>> {
    if args.filters.is_empty() && args.keep_storage.is_none() {
        return Ok(None);
    }
    let keep_storage = args
        .keep_storage
        .as_deref()
        .map(|s| {
            builder::gc::parse_size(s).map_err(|why| {
                Hinted::new(
                    format!("invalid --keep-storage {s:?}: {why}"),
                    "write a size such as 10GB, 512MB or 1073741824",
                )
            })
        })
        .transpose()?;
    let filters = args
        .filters
        .iter()
        .map(|f| {
            Filter::parse(f).map_err(|why| {
                Hinted::new(
                    format!("invalid --filter {f:?}: {why}"),
                    "write until=24h, type=step, type=cache-mount or type=image",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rule = Rule::from_filters(&filters, &Kind::ALL);
    rule.keep_storage = keep_storage;
    Ok(Some(rule))
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
