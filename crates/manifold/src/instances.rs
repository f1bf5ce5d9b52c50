//! Which builder instance a command uses: `--builder`/`MANIFOLD_BUILDER`, then the
//! one `manifold use` selected, then `default` (the instances themselves are
//! [`remote::instances`]).

use anyhow::Context;
pub use remote::instances::{
    Builders, DEFAULT, Driver, Instance, NewNode, Node, tls_from_driver_opts, validate_name,
};

use crate::cli::Global;

/// The instance builds use: `--builder`/`MANIFOLD_BUILDER`, else the one
/// `manifold use` selected, else `default`.
pub fn current(global: &Global) -> anyhow::Result<Instance> {
    let store = Builders::new(&crate::config::config_dir(global));
    let (name, from) = selected(global, &store)?;
    store
        .load(&name)
        .with_context(|| format!("cannot use the builder instance selected by {from}"))
}

/// The selected instance's name and what selected it.
pub fn selected(global: &Global, store: &Builders) -> anyhow::Result<(String, &'static str)> {
    if let Some(name) = global.builder.as_deref().filter(|n| !n.is_empty()) {
        validate_name("builder instance", name)?;
        return Ok((name.to_owned(), "--builder (or MANIFOLD_BUILDER)"));
    }
    Ok(match store.current_name()? {
        Some(name) => (name, "`manifold use`"),
        None => (DEFAULT.to_owned(), "default"),
    })
}
