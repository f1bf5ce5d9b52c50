//! Where manifold's own configuration lives (`--config`, `MANIFOLD_CONFIG`,
//! `$XDG_CONFIG_HOME/manifold`, `~/.config/manifold`): builder instances, registry
//! settings.

use crate::cli::Global;

/// The configuration directory.
pub(crate) fn config_dir(global: &Global) -> std::path::PathBuf {
    if let Some(d) = &global.config {
        return d.clone();
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return std::path::PathBuf::from(x).join("manifold");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    std::path::PathBuf::from(home).join(".config/manifold")
}
