//! The `[gc]` policy of config.toml, applied after each successful build: a local
//! one's by the client, a daemon's by the daemon (with its own config.toml).

use anyhow::Context;

use crate::cli::Global;
use crate::render::human_size;

/// Apply the garbage-collection policy to the state root of a local build that
/// just finished. Best effort: a failure is a warning, and while another build
/// holds the build state nothing is collected (the next build will).
pub(crate) fn after_build(global: &Global) {
    if let Err(e) = collect(global) {
        eprintln!("warning: garbage collection after the build failed: {e:#}");
        eprintln!("hint: `manifold prune` collects by hand; [gc] in config.toml sets the policy");
    }
}

fn collect(global: &Global) -> anyhow::Result<()> {
    // A remote builder keeps its own state, and collects it itself.
    if crate::instances::current(global)?.driver == crate::instances::Driver::Remote {
        return Ok(());
    }
    let root = super::state_root(global)?;
    let freed = collect_root(&root, &crate::config::config_dir(global))?;
    if !freed.is_empty() {
        eprintln!("{}", said(&freed));
    }
    Ok(())
}

/// A daemon's hook ([`remote::DaemonConfig::after_build`]): the policy of the
/// daemon's config directory on its state root, said in the daemon's log.
pub(crate) fn daemon_hook(
    root: std::path::PathBuf,
    config: std::path::PathBuf,
) -> remote::AfterBuild {
    remote::AfterBuild(std::sync::Arc::new(move || {
        match collect_root(&root, &config) {
            Ok(freed) if freed.is_empty() => {}
            Ok(freed) => eprintln!("{}", said(&freed)),
            Err(e) => eprintln!("warning: garbage collection after a build failed: {e:#}"),
        }
    }))
}

fn said(freed: &[builder::state::Removed]) -> String {
    let parts: Vec<_> = freed
        .iter()
        .map(|r| format!("{} ({})", r.what, human_size(r.bytes)))
        .collect();
    format!(
        "garbage collection ([gc] in config.toml): removed {}",
        parts.join(", ")
    )
}

/// Apply the `[gc]` policy of `config` to `root`: what it removed. Nothing while
/// a build holds the build state (the next build's collection will).
fn collect_root(
    root: &std::path::Path,
    config: &std::path::Path,
) -> anyhow::Result<Vec<builder::state::Removed>> {
    let open_store = || {
        content::Store::open(root)
            .with_context(|| format!("cannot open the state root {}", root.display()))
    };
    let policy = crate::config::gc_policy(config, root)?;
    if !policy.enabled || !root.exists() {
        return Ok(Vec::new());
    }
    let Some(_held) = builder::state::try_hold_exclusive(root)? else {
        return Ok(Vec::new());
    };
    let collected = builder::gc::collect(root, &policy.rules, std::time::SystemTime::now())?;
    let mut freed = collected.removed();
    if policy
        .rules
        .iter()
        .any(|r| r.covers(builder::gc::Kind::Image))
    {
        let report = open_store()?.gc()?;
        if !report.removed.is_empty() {
            freed.push(builder::state::Removed {
                what: format!("{} unnamed blob(s)", report.removed.len()),
                bytes: report.bytes_freed,
            });
        }
    }
    // keep-storage bounds the whole root: over it, content no name uses goes too,
    // then build state, least recently used first, down to what the rest leaves.
    let limit = policy.keep_storage;
    if builder::inventory::root_usage(root) > limit {
        let report = open_store()?.gc()?;
        if !report.removed.is_empty() {
            freed.push(builder::state::Removed {
                what: format!("{} unnamed blob(s)", report.removed.len()),
                bytes: report.bytes_freed,
            });
        }
        let used = builder::inventory::root_usage(root);
        if used > limit {
            let inv = builder::inventory::Inventory::read(root)?;
            let state = inv.snapshot_bytes() + inv.cache_mount_bytes();
            let rule = builder::gc::Rule {
                kinds: vec![builder::gc::Kind::Step, builder::gc::Kind::CacheMount],
                until: None,
                keep_storage: Some(limit.saturating_sub(used - state.min(used))),
            };
            let more = builder::gc::collect(root, &[rule], std::time::SystemTime::now())?;
            freed.extend(more.removed());
        }
    }
    Ok(freed)
}
