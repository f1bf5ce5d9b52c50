//! `manifold binfmt install|ls|uninstall`.

use std::process::ExitCode;

use anyhow::Context;
use worker::binfmt::{self, Archs, InstallOptions, Installed, RunsHow, Uninstalled};

use crate::cli::{Binfmt, BinfmtInstallArgs, BinfmtUninstallArgs};
use crate::render::Hinted;

pub fn run(cmd: &Binfmt) -> anyhow::Result<ExitCode> {
    match cmd {
        Binfmt::Install(args) => install(args),
        Binfmt::Ls => ls(),
        Binfmt::Uninstall(args) => uninstall(args),
    }
}

fn archs(names: &[String]) -> Archs {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        Archs::All
    } else {
        Archs::Named(names.to_vec())
    }
}

fn install(args: &BinfmtInstallArgs) -> anyhow::Result<ExitCode> {
    let opts = InstallOptions {
        credentials: args.credentials,
    };
    let done = binfmt::install(&archs(&args.archs), opts).context("cannot install emulators")?;
    let mut conflicts = Vec::new();
    for d in &done {
        match d {
            Installed::Registered { platform, entry } => eprintln!(
                "{platform}: registered {} ({}, flags {})",
                entry.name,
                entry.interpreter.display(),
                entry.flags
            ),
            Installed::AlreadyRegistered { platform, entry } => {
                eprintln!("{platform}: already registered as {}", entry.name)
            }
            Installed::NotNeeded { platform, runs } => {
                eprintln!("{platform}: {} on this host, no emulator needed", how(runs))
            }
            Installed::Conflict {
                platform,
                existing,
                wanted,
            } => {
                eprintln!(
                    "{platform}: binfmt_misc entry {} already exists with interpreter {} and \
                     flags {:?} (wanted {} with flags {:?}); left as it is",
                    existing.name,
                    existing.interpreter.display(),
                    existing.flags,
                    wanted.interpreter.display(),
                    wanted.flags
                );
                conflicts.push(platform.architecture.clone());
            }
            _ => {}
        }
    }
    if !conflicts.is_empty() {
        let list = conflicts.join(" ");
        return Err(Hinted::new(
            format!("{} emulator(s) registered differently by someone else", conflicts.len()),
            format!("replace them with `manifold binfmt uninstall {list} && manifold binfmt install {list}`"),
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

fn how(runs: &RunsHow) -> &'static str {
    match runs {
        RunsHow::Native => "native",
        RunsHow::Compatible => "compatible",
        RunsHow::Emulated { .. } => "emulated",
        _ => "runnable",
    }
}

fn ls() -> anyhow::Result<ExitCode> {
    let rows: Vec<[String; 3]> = binfmt::list()
        .into_iter()
        .map(|s| {
            let platform = s.platform.to_string();
            match s.runs {
                Ok(RunsHow::Emulated {
                    entry,
                    interpreter,
                    flags,
                }) => [
                    platform,
                    "emulated".into(),
                    format!("{} (entry {entry}, flags {flags})", interpreter.display()),
                ],
                Ok(runs) => [platform, how(&runs).into(), String::new()],
                Err(binfmt::BinfmtError::NotRunnable { reason, .. }) => {
                    [platform, "unavailable".into(), reason]
                }
                Err(e) => [platform, "unavailable".into(), e.to_string()],
            }
        })
        .collect();
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(8);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(6);
    println!("{:w0$}  {:w1$}  DETAILS", "PLATFORM", "STATUS");
    for r in rows {
        let line = format!("{:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
        println!("{}", line.trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

fn uninstall(args: &BinfmtUninstallArgs) -> anyhow::Result<ExitCode> {
    let done = binfmt::uninstall(&archs(&args.archs)).context("cannot uninstall emulators")?;
    for d in &done {
        match d {
            Uninstalled::Removed { platform, entry } => {
                eprintln!("{platform}: removed {}", entry.name)
            }
            Uninstalled::NotRegistered { platform, name } => {
                eprintln!("{platform}: {name} is not registered")
            }
            _ => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}
