//! `manifold build`: read the Dockerfile, then check, outline, list targets or lower
//! it to the build graph.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use dockerfile::lint::{CheckConfig, CheckOptions};
use dockerfile::parser::{self, Diagnostic, Parsed};
use oci::Platform;

use super::registry::client;
use super::resolve::RegistryResolver;
use crate::cli::{BuildArgs, Call, Global};
use crate::render::Hinted;

/// The Dockerfile's display name and text.
fn read_dockerfile(args: &BuildArgs) -> anyhow::Result<(String, String)> {
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| args.context.join("Dockerfile"));
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the Dockerfile from standard input")?;
        return Ok(("Dockerfile".into(), s));
    }
    let text = std::fs::read(&path)
        .with_context(|| format!("cannot read Dockerfile {}", path.display()))?;
    let text = String::from_utf8(text).map_err(|e| {
        anyhow::Error::new(Hinted::new(
            format!(
                "Dockerfile {} is not UTF-8 (byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
            "save the Dockerfile as UTF-8",
        ))
    })?;
    let name = path
        .file_name()
        .map_or_else(|| "Dockerfile".into(), |n| n.to_string_lossy().into_owned());
    Ok((name, text))
}

fn build_args(args: &BuildArgs) -> BTreeMap<String, String> {
    args.build_args
        .iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            // NAME alone: the value from the environment, as docker does.
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

fn platforms(args: &BuildArgs) -> anyhow::Result<Vec<Platform>> {
    args.platform
        .iter()
        .map(|p| Platform::parse(p).with_context(|| format!("invalid platform {p:?}")))
        .collect()
}

/// Print diagnostics with their marked lines; fail if any is an error.
fn report_diagnostics(name: &str, src: &str, diagnostics: &[Diagnostic]) -> anyhow::Result<()> {
    let mut errors = 0;
    for d in diagnostics {
        eprint!("{}", d.render(name, src));
        errors += usize::from(d.is_error());
    }
    if errors > 0 {
        bail!("{name} has {errors} error(s)");
    }
    Ok(())
}

pub fn build(global: &Global, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    for (flag, value) in [("--provenance", &args.provenance), ("--sbom", &args.sbom)] {
        if let Some(v) = value
            && !matches!(v.as_str(), "false" | "0")
        {
            bail!(Hinted::new(
                format!("{flag}={v}: attestations are not supported yet"),
                format!("pass {flag}=false"),
            ));
        }
    }
    for (flag, given, hint) in [
        ("--ssh", args.ssh.first(), "build without --ssh"),
        (
            "--cache-from",
            args.cache_from.first(),
            "drop it: the local build cache is always used",
        ),
        (
            "--cache-to",
            args.cache_to.first(),
            "drop it: the local build cache is always kept",
        ),
        (
            "--attest",
            args.attest.first(),
            "drop it, or pass --provenance=false --sbom=false",
        ),
    ] {
        if let Some(value) = given {
            bail!(Hinted::new(
                format!("{flag} {value}: not supported yet"),
                hint
            ));
        }
    }
    let (name, src) = read_dockerfile(args)?;
    let parsed = parser::parse(&src);
    let call = if args.check { Call::Check } else { args.call };
    match call {
        Call::Targets => {
            report_diagnostics(&name, &src, &parsed.diagnostics)?;
            print!(
                "{}",
                dockerfile::call::render_targets(&dockerfile::call::targets(&parsed.dockerfile))
            );
            Ok(ExitCode::SUCCESS)
        }
        Call::Outline => {
            report_diagnostics(&name, &src, &parsed.diagnostics)?;
            let host = Platform::host();
            let opts = dockerfile::call::OutlineOptions {
                target: args.target.clone(),
                build_args: build_args(args),
                build_platform: host.clone(),
                target_platform: platforms(args)?.into_iter().next().unwrap_or(host),
            };
            let outline = dockerfile::call::outline(&parsed.dockerfile, &opts)?;
            print!("{}", dockerfile::call::render_outline(&outline));
            Ok(ExitCode::SUCCESS)
        }
        Call::Check => check(global, args, &name, &src, &parsed),
        Call::Build => lower_then_refuse(global, args, &name, &src),
    }
}

fn check(
    global: &Global,
    args: &BuildArgs,
    name: &str,
    src: &str,
    parsed: &Parsed,
) -> anyhow::Result<ExitCode> {
    report_diagnostics(name, src, &parsed.diagnostics)?;
    let mut build_args = build_args(args);
    let config = match build_args.remove("BUILDKIT_DOCKERFILE_CHECK") {
        Some(c) => Some(
            CheckConfig::parse(&c).context("invalid BUILDKIT_DOCKERFILE_CHECK build argument")?,
        ),
        None => None,
    };
    let rt = super::runtime()?;
    let mut client = client(global)?;
    client.retry.attempts = 1;
    let resolver = RegistryResolver::new(client, &rt);
    let host = Platform::host();
    let context_ignore = read_ignore(args, name);
    let opts = CheckOptions {
        config,
        build_args,
        target: args.target.clone(),
        build_platform: host.clone(),
        target_platform: platforms(args)?.into_iter().next().unwrap_or(host),
        images: Some(&resolver),
        ignore: context_ignore.as_ref(),
    };
    let report = dockerfile::lint::check(parsed, &opts);
    for failure in resolver.failures.borrow().iter() {
        eprintln!("WARNING: {failure} (checks that need it were skipped)");
    }
    let mut out = String::new();
    let n = report.warnings.len();
    match n {
        0 => out.push_str("Check complete, no warnings found.\n"),
        1 => out.push_str("Check complete, 1 warning has been found!\n"),
        _ => {
            let _ = writeln!(out, "Check complete, {n} warnings have been found!");
        }
    }
    for w in &report.warnings {
        let _ = writeln!(out, "\nWARNING: {} - {}\n{}", w.name(), w.url(), w.message);
        let excerpt = Diagnostic::warning("lint", w.span, w.message.clone()).render(name, src);
        let _ = writeln!(out, "{name}:{}\n--------------------", w.span.start.line);
        for line in excerpt.lines().skip(1) {
            let _ = writeln!(out, "{line}");
        }
        out.push_str("--------------------\n");
    }
    print!("{out}");
    if report.error {
        bail!(Hinted::new(
            format!("build checks failed: {n} warning(s) and check=error=true"),
            "fix the warnings, or skip rules with `# check=skip=<rule>`",
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The context's ignore patterns (`<Dockerfile>.dockerignore`, then `.dockerignore`).
fn read_ignore(args: &BuildArgs, dockerfile_name: &str) -> Option<dockerfile::ignore::Matcher> {
    dockerfile::ignore::ignore_file_candidates(dockerfile_name)
        .into_iter()
        .map(|c| args.context.join(c))
        .find_map(|p: PathBuf| std::fs::read_to_string(p).ok())
        .and_then(|text| {
            dockerfile::ignore::parse_ignore_file(&text)
                .ok()
                .and_then(|pats| dockerfile::ignore::Matcher::new(pats).ok())
        })
}

fn lower_then_refuse(
    global: &Global,
    args: &BuildArgs,
    name: &str,
    src: &str,
) -> anyhow::Result<ExitCode> {
    let rt = super::runtime()?;
    let resolver = RegistryResolver::new(client(global)?, &rt);
    let opts = frontend::BuildOptions {
        target: args.target.clone(),
        platforms: platforms(args)?,
        build_args: args
            .build_args
            .iter()
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (a.clone(), std::env::var(a).ok()),
            })
            .collect(),
        ..frontend::BuildOptions::default()
    };
    match frontend::lower(src, &opts, &resolver) {
        Ok(lowered) => {
            report_diagnostics(name, src, &lowered.warnings)?;
            bail!(Hinted::new(
                format!(
                    "{name} is valid ({} build steps for {} platform(s)), but building images is not available in this version yet",
                    lowered.graph.vertices().count(),
                    lowered.graph.outputs().len()
                ),
                "--call=check, --call=outline and --call=targets work today",
            ))
        }
        Err(frontend::FrontendError::Parse { diagnostics }) => {
            report_diagnostics(name, src, &diagnostics)?;
            unreachable!("a parse failure has at least one error diagnostic")
        }
        Err(e) => {
            // The marked lines first, then the error and its causes.
            for d in e.diagnostics() {
                let excerpt = d.render(name, src);
                let lines = excerpt.split_once('\n').map_or("", |(_, rest)| rest);
                eprint!("{name}:{}\n{lines}", d.span.start.line);
            }
            if let frontend::FrontendError::TargetNotFound { .. } = e {
                return Err(anyhow::Error::new(e).context(Hinted::new(
                    "no such build target",
                    "`manifold build --call=targets` lists the stages",
                )));
            }
            Err(e.into())
        }
    }
}
