//! One function per verb.

mod store;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, Global};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("manifold {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Images(args) => store::images(&open_store(&cli.global)?, &args),
        Command::Du => store::du(&open_store(&cli.global)?),
        Command::Prune(args) => store::prune(&open_store(&cli.global)?, &args),
        Command::Fsck => store::fsck(&open_store(&cli.global)?),
    }
}

/// Open (creating on first use) the content store under the state root.
fn open_store(global: &Global) -> anyhow::Result<content::Store> {
    let root = match &global.root {
        Some(r) => r.clone(),
        None => content::default_root()?,
    };
    content::Store::open(&root)
        .with_context(|| format!("cannot open the state root {}", root.display()))
}
