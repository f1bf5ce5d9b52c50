//! The `manifold` command: parse the command line, call one library function, render.
//!
//! **Invariant**: only this crate knows about terminals, clap and `anyhow`.

mod cli;
mod commands;
mod config;
mod instances;
mod out;
mod progress;
mod render;
mod rootless;
mod template;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == rootless::PAUSE_ARG)
    {
        rootless::pause();
    }
    let cli = cli::Cli::parse();
    // A user without root builds as root of a user namespace of its own.
    let entered = match commands::user_namespace(&cli.command) {
        Some(warn) => rootless::enter(warn).and_then(|()| rootless::check_runtime_dir()),
        None => Ok(()),
    };
    match entered.and_then(|()| commands::run(cli)) {
        Ok(code) => code,
        // The reader of stdout went away (`| head`): nothing more to say.
        Err(err) if out::is_closed(&err) => ExitCode::SUCCESS,
        Err(err) => {
            render::print_error(&err);
            ExitCode::from(1)
        }
    }
}
