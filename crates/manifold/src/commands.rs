//! One function per verb.

mod binfmt;
mod build;
mod daemon;
mod flags;
mod gc;
mod history;
mod inspect_data;
mod instances;
mod output;
mod registry;
mod registry_server;
mod remote_build;
mod request;
mod run;
mod store;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Call, Cli, Command, Global, Imagetools};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            crate::out::outln!("manifold {}", env!("CARGO_PKG_VERSION"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Images(args) => store::images(&open_store(&cli.global)?, &args),
        Command::Du(args) => store::du(&open_store(&cli.global)?, &args),
        Command::Prune(args) => store::prune(&open_store(&cli.global)?, &args),
        Command::Fsck => store::fsck(&open_store(&cli.global)?),
        Command::Build(args) => {
            // A build that runs steps uses the build state that `prune --all` removes.
            let builds = args.call == Call::Build && !args.check;
            let using = builds
                .then(|| state_root(&cli.global).ok())
                .flatten()
                .and_then(|root| builder::state::hold_shared(&root).ok());
            let code = build::build(&cli.global, &args)?;
            drop(using);
            if builds && code == ExitCode::SUCCESS {
                gc::after_build(&cli.global);
            }
            Ok(code)
        }
        Command::Run(args) => {
            let store = open_store(&cli.global)?;
            // A root the lock cannot be made in fails the command on its own terms.
            let _using = builder::state::hold_shared(store.root()).ok();
            run::run(&cli.global, &store, &args)
        }
        Command::Login(args) => runtime()?.block_on(registry::login(&cli.global, &args)),
        Command::Logout(args) => registry::logout(&args),
        Command::Imagetools(Imagetools::Inspect(args)) => {
            runtime()?.block_on(registry::inspect(&cli.global, &args))
        }
        Command::Imagetools(Imagetools::Create(args)) => {
            let store = open_store(&cli.global)?;
            runtime()?.block_on(registry::create(&cli.global, &store, &args))
        }
        Command::Imagetools(Imagetools::Copy(args)) => {
            let store = open_store(&cli.global)?;
            runtime()?.block_on(registry::copy(&cli.global, &store, &args))
        }
        Command::Imagetools(Imagetools::Keygen(args)) => registry::keygen(&args),
        Command::Imagetools(Imagetools::Sign(args)) => {
            let store = open_store(&cli.global)?;
            runtime()?.block_on(registry::sign(&cli.global, &store, &args))
        }
        Command::Imagetools(Imagetools::Verify(args)) => {
            runtime()?.block_on(registry::verify(&cli.global, &args))
        }
        Command::Binfmt(cmd) => binfmt::run(&cmd),
        Command::Registry(cmd) => registry_server::run(&cli.global, &cmd),
        Command::History(cmd) => history::run(&open_store(&cli.global)?, &cmd),
        Command::Daemon(args) => daemon::run(&cli.global, &args),
        Command::Create(args) => instances::create(&cli.global, &args),
        Command::Use(args) => instances::use_(&cli.global, &args),
        Command::Inspect(args) => instances::inspect(&cli.global, &args),
        Command::Ls(args) => instances::ls(&cli.global, &args),
        Command::Rm(args) => instances::rm(&cli.global, &args),
        Command::Stop(args) => instances::stop(&cli.global, &args),
    }
}

/// Whether `command` runs inside a user namespace when started without root (it mounts
/// snapshots, runs runc, or reads and removes files owned by subordinate ids), and if so
/// whether a single-id mapping deserves a warning (it builds or runs containers).
pub fn user_namespace(command: &Command) -> Option<bool> {
    match command {
        Command::Build(args) if args.call == Call::Build && !args.check => Some(true),
        Command::Run(_) | Command::Daemon(_) => Some(true),
        Command::Du(_) | Command::Prune(_) | Command::Fsck => Some(false),
        Command::Inspect(args) if args.bootstrap => Some(false),
        _ => None,
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The state root: `--root`, else the default.
fn state_root(global: &Global) -> anyhow::Result<std::path::PathBuf> {
    Ok(match &global.root {
        Some(r) => r.clone(),
        None => content::default_root()?,
    })
}

/// Open (creating on first use) the content store under the state root.
fn open_store(global: &Global) -> anyhow::Result<content::Store> {
    let root = state_root(global)?;
    content::Store::open(&root)
        .with_context(|| format!("cannot open the state root {}", root.display()))
}
