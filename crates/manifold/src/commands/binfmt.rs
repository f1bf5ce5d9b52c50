//! `manifold binfmt install|ls|uninstall`.

use std::process::ExitCode;

use anyhow::Context;
use worker::binfmt::{self, Archs, Entry, InstallOptions, Installed, RunsHow, Uninstalled};

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

/// `qemu-aarch64 (/usr/libexec/qemu-binfmt/aarch64-binfmt-P, flags POF)`.
fn described(name: &str, interpreter: &std::path::Path, flags: &str) -> String {
    let flags = if flags.is_empty() { "none" } else { flags };
    format!("{name} ({}, flags {flags})", interpreter.display())
}

fn entry(e: &Entry) -> String {
    described(&e.name, &e.interpreter, &e.flags)
}

/// Registering or removing emulators changes the host's binfmt_misc: root's job, once.
fn needs_host_root(verb: &str, names: &[String]) -> anyhow::Result<()> {
    if content::identity::identity().is_host_root() {
        return Ok(());
    }
    let args = if names.is_empty() {
        String::new()
    } else {
        format!(" {}", names.join(" "))
    };
    anyhow::bail!(Hinted::new(
        format!(
            "`manifold binfmt {verb}` changes the host's binfmt_misc entries, which needs root"
        ),
        format!(
            "run `sudo manifold binfmt {verb}{args}` once; rootless builds use the entries after that (`manifold binfmt ls` shows them)"
        ),
    ))
}

fn install(args: &BinfmtInstallArgs) -> anyhow::Result<ExitCode> {
    needs_host_root("install", &args.archs)?;
    let opts = InstallOptions {
        credentials: args.credentials,
        force: args.force,
    };
    let done = binfmt::install(&archs(&args.archs), opts).context("cannot install emulators")?;
    let mut conflicts = Vec::new();
    for d in &done {
        match d {
            Installed::Registered {
                platform,
                entry: e,
                replaced,
            } => {
                eprintln!("{platform}: registered {}", entry(e));
                if let Some(old) = replaced {
                    eprintln!("{platform}: replaced {}", entry(old));
                }
            }
            Installed::AlreadyRegistered { platform, entry: e } => {
                eprintln!("{platform}: already registered as {}", entry(e))
            }
            Installed::Served { platform, entry: e } => {
                eprintln!("{platform}: emulated by {}, left as it is", entry(e))
            }
            Installed::NotNeeded { platform, runs } => {
                eprintln!("{platform}: {} on this host, no emulator needed", how(runs))
            }
            Installed::Conflict {
                platform,
                existing,
                reason,
                ..
            } => {
                eprintln!(
                    "{platform}: binfmt_misc entry {} does not serve it: {reason}",
                    entry(existing)
                );
                conflicts.push(platform.architecture.clone());
            }
            _ => {}
        }
    }
    if !conflicts.is_empty() {
        let list = conflicts.join(" ");
        return Err(Hinted::new(
            format!(
                "{} platform(s) registered by someone else do not run",
                conflicts.len()
            ),
            format!("replace the entries with `manifold binfmt install --force {list}`"),
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
                }) => {
                    let mut details = format!("by {}", described(&entry, &interpreter, &flags));
                    for note in binfmt::entry_notes(&flags, &interpreter) {
                        details.push_str("; ");
                        details.push_str(&note);
                    }
                    [platform, "emulated".into(), details]
                }
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
    crate::out::line(format_args!(
        "{:w0$}  {:w1$}  DETAILS",
        "PLATFORM", "STATUS"
    ))?;
    for r in rows {
        let line = format!("{:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
        crate::out::line(format_args!("{}", line.trim_end()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn uninstall(args: &BinfmtUninstallArgs) -> anyhow::Result<ExitCode> {
    needs_host_root("uninstall", &args.archs)?;
    let opts = InstallOptions {
        force: args.force,
        ..InstallOptions::default()
    };
    let done =
        binfmt::uninstall(&archs(&args.archs), opts).context("cannot uninstall emulators")?;
    for d in &done {
        match d {
            Uninstalled::Removed { platform, entry: e } => {
                eprintln!("{platform}: removed {}", entry(e))
            }
            Uninstalled::NotRegistered { platform, name } => {
                eprintln!("{platform}: {name} is not registered")
            }
            Uninstalled::NotOurs { platform, entry: e } => eprintln!(
                "{platform}: {} was registered by someone else, left as it is \
                 (remove it with --force)",
                entry(e)
            ),
            _ => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}
