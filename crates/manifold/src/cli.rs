//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build multi-platform container images.
#[derive(Debug, Parser)]
#[command(name = "manifold", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// State directory (content store, cache) [default: /var/lib/manifold for root,
    /// else ~/.local/share/manifold]
    #[arg(long, global = true, env = "MANIFOLD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the version of manifold
    Version,
    /// List images in the local store
    Images(ImagesArgs),
    /// Show disk usage of the local store
    Du,
    /// Remove unused content from the local store
    Prune(PruneArgs),
    /// Verify every blob of the local store against its digest
    Fsck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only print image names
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove everything: all images and all cache, not only unused content
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}
