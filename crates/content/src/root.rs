//! Where manifold keeps its state.

use std::path::PathBuf;

/// Why no state root could be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    #[error(
        "cannot find a state directory: $MANIFOLD_ROOT, $XDG_DATA_HOME and $HOME are all unset"
    )]
    NoHome,
}

/// The state root: `$MANIFOLD_ROOT`; else `/var/lib/manifold` for the host's root; else
/// `$XDG_DATA_HOME/manifold` or `~/.local/share/manifold`.
pub fn default_root() -> Result<PathBuf, RootError> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(r) = var("MANIFOLD_ROOT") {
        return Ok(r);
    }
    if crate::identity::identity().is_host_root() {
        return Ok(PathBuf::from("/var/lib/manifold"));
    }
    if let Some(x) = var("XDG_DATA_HOME") {
        return Ok(x.join("manifold"));
    }
    var("HOME")
        .map(|h| h.join(".local/share/manifold"))
        .ok_or(RootError::NoHome)
}
