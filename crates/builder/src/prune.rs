//! `manifold prune`: names, build state and unused content, as [`PruneRequest`]
//! asks, under the build-state lock of [`crate::state`].

use crate::state::{Removed, StateError, remove_all, try_hold_exclusive};

/// What [`prune`] removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Image names removed (`all`).
    pub names: usize,
    /// Build state removed, by kind (`all` or a rule, when no build was running).
    pub state: Vec<Removed>,
    /// Build state was to be removed but a build was running: its state, and (with
    /// `all`) the content of the names removed, were kept.
    pub build_running: bool,
    /// What the store's garbage collection removed.
    pub gc: content::GcReport,
}

/// What `manifold prune` removes.
#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    /// Every name and all build state.
    pub all: bool,
    /// Only what this rule selects (`--filter`, `--keep-storage`; see [`crate::gc`]);
    /// names stay, even with `all`.
    pub rule: Option<crate::gc::Rule>,
}

/// `manifold prune`: the content no name, lease or running build uses; with `all`,
/// every name and all build state too, unless a build (here or on a daemon with this
/// root) holds the build-state lock: then its state stays, and so does the content
/// of the names removed, which the build may be reading (its base image). With a
/// rule, what the rule selects, under the same lock.
pub fn prune(store: &content::Store, req: &PruneRequest) -> Result<Pruned, PruneError> {
    if let Some(rule) = &req.rule {
        return prune_rule(store, rule);
    }
    let all = req.all;
    let held = match all {
        true => Some(try_hold_exclusive(store.root())?),
        false => None,
    };
    let keep = match &held {
        Some(None) => {
            let lease = store.lease()?;
            for (_, desc) in store.names()? {
                store.protect(&lease, &desc.digest)?;
            }
            Some(lease)
        }
        _ => None,
    };
    let mut pruned = Pruned {
        names: if all { store.remove_all_names()? } else { 0 },
        build_running: matches!(held, Some(None)),
        ..Pruned::default()
    };
    if let Some(Some(_held)) = held {
        pruned.state = remove_all(store.root())?;
    }
    pruned.gc = store.gc()?;
    drop(keep);
    Ok(pruned)
}

fn prune_rule(store: &content::Store, rule: &crate::gc::Rule) -> Result<Pruned, PruneError> {
    let mut pruned = Pruned::default();
    if rule.covers_build_state() {
        match try_hold_exclusive(store.root())? {
            Some(_held) => {
                let now = std::time::SystemTime::now();
                let collected = crate::gc::collect(store.root(), std::slice::from_ref(rule), now)?;
                pruned.state = collected.removed();
            }
            None => pruned.build_running = true,
        }
    }
    if rule.covers(crate::gc::Kind::Image) {
        pruned.gc = store.gc()?;
    }
    Ok(pruned)
}

/// Why a prune failed: its store, or the build state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PruneError {
    #[error(transparent)]
    Store(#[from] content::StoreError),
    #[error(transparent)]
    State(#[from] StateError),
}
