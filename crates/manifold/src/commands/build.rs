//! `manifold build`: read the Dockerfile, then check, outline, list targets or lower
//! it to the build graph.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use dockerfile::lint::{CheckConfig, CheckOptions};
use dockerfile::parser::{self, Diagnostic, Parsed};
use oci::Platform;

use super::flags::{build_args, platforms, read_ignore};
use super::registry::client;
use crate::cli::{BuildArgs, Call, Global};
use crate::render::Hinted;

/// The Dockerfile's display name and text.
fn read_dockerfile(args: &BuildArgs) -> anyhow::Result<(String, String)> {
    if args.file.as_deref().is_some_and(|f| f.as_os_str() == "-") {
        let mut s = Vec::new();
        std::io::stdin()
            .take(builder::MAX_DOCKERFILE + 1)
            .read_to_end(&mut s)
            .context("cannot read the Dockerfile from standard input")?;
        if s.len() as u64 > builder::MAX_DOCKERFILE {
            bail!(Hinted::new(
                format!(
                    "the Dockerfile on standard input is larger than {} MiB",
                    builder::MAX_DOCKERFILE >> 20
                ),
                "no real one is; check what is piped in"
            ));
        }
        let s = String::from_utf8(s)
            .map_err(|_| anyhow::anyhow!("the Dockerfile on standard input is not UTF-8"))?;
        return Ok(("Dockerfile".into(), s));
    }
    // The context's own Dockerfile is read in the context; one named with -f is the
    // user's choice, wherever it is. Either must be a regular file of sane size.
    let (path, text) = match &args.file {
        Some(f) => (
            f.clone(),
            builder::read_bounded(f, "Dockerfile", builder::MAX_DOCKERFILE)?,
        ),
        None => {
            let path = args.context.join("Dockerfile");
            let text = builder::read_context_file(
                &args.context,
                "Dockerfile",
                "Dockerfile",
                builder::MAX_DOCKERFILE,
            )?
            .ok_or_else(|| {
                anyhow::Error::new(Hinted::new(
                    format!("cannot read Dockerfile {}: no such file", path.display()),
                    "give its path with -f, or put a Dockerfile in the context",
                ))
            })?;
            (path, text)
        }
    };
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
    if let Some(value) = args.ssh.first() {
        bail!(Hinted::new(
            format!("--ssh {value}: not supported yet"),
            "build without --ssh"
        ));
    }
    let (name, src) = read_dockerfile(args)?;
    let mut parsed = parser::parse(&src);
    // `--call` runs the built-in frontend too: another one named by `# syntax=` fails.
    let syntax_arg = build_args(args).remove(dockerfile::syntax::BUILD_ARG);
    dockerfile::syntax::apply(&mut parsed, syntax_arg.as_deref());
    let call = if args.check { Call::Check } else { args.call };
    match call {
        Call::Targets => {
            report_diagnostics(&name, &src, &parsed.diagnostics)?;
            crate::out::text(&dockerfile::call::render_targets(
                &dockerfile::call::targets(&parsed.dockerfile),
            ))?;
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
            crate::out::text(&dockerfile::call::render_outline(&outline))?;
            Ok(ExitCode::SUCCESS)
        }
        Call::Check => check(global, args, &name, &src, &parsed),
        Call::Build => {
            let instance = crate::instances::current(global)?;
            if instance.driver == crate::instances::Driver::Remote {
                return super::remote_build::run(global, args, &name, src, instance);
            }
            run_build(global, args, &name, src)
        }
    }
}

fn check(
    global: &Global,
    args: &BuildArgs,
    name: &str,
    src: &str,
    parsed: &Parsed,
) -> anyhow::Result<ExitCode> {
    // The checks report these themselves.
    let diagnostics: Vec<Diagnostic> = parsed
        .diagnostics
        .iter()
        .filter(|d| !dockerfile::lint::reported_by_checks(d))
        .cloned()
        .collect();
    report_diagnostics(name, src, &diagnostics)?;
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
    // Base images from the store when there is one (not made for a check), then the
    // registry, as a build finds them.
    let store = super::state_root(global)
        .ok()
        .filter(|root| root.is_dir())
        .and_then(|_| super::open_store(global).ok());
    let resolver = builder::BaseImages::for_checks(store, Some(client), rt.handle().clone());
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
    for failure in resolver.failures() {
        eprintln!("WARNING: {failure} (checks that need it were skipped)");
    }
    let n = report.warnings.len();
    let out = report.render(name, src);
    crate::out::text(&out)?;
    if report.error {
        bail!(Hinted::new(
            format!("build checks failed: {n} warning(s) and check=error=true"),
            "fix the warnings, or skip rules with `# check=skip=<rule>`",
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Copy each `oci-layout://` context's image into the store under the name the
/// request gives it.
fn import_layouts(store: &content::Store, inputs: &super::request::Inputs) -> anyhow::Result<()> {
    for (name, layout, desc) in &inputs.layouts {
        let lease = store.lease()?;
        remote::transfer::copy(layout, store, &lease, desc)?;
        store.set_name(&builder::layout_context_name(name, &desc.digest), desc)?;
    }
    Ok(())
}

fn run_build(
    global: &Global,
    args: &BuildArgs,
    name: &str,
    src: String,
) -> anyhow::Result<ExitCode> {
    let outputs = super::output::Plan::from_args(args)?;
    let (req, inputs) = super::request::request(args, name, &src, &outputs)?;
    let store = super::open_store(global)?;
    import_layouts(&store, &inputs)?;
    let rt = super::runtime()?;
    let session = builder::Session {
        locals: inputs
            .dirs
            .into_iter()
            .map(|(n, dir)| (n, builder::LocalDir { dir }))
            .collect(),
        for_remote_client: false,
    };
    let b = builder::Builder::on_root(store.clone(), args.runtime.clone(), Some(client(global)?))?;
    let cancel = solver::CancellationToken::new();
    let on_signal = cancel.clone();
    let mode = match args.quiet {
        true => crate::progress::Mode::Quiet,
        false => crate::progress::Mode::parse(&args.progress)?,
    };
    let (events, printer) = crate::progress::start(mode);
    let (events, recorder) = crate::progress::Recorder::tee(events);
    let started = std::time::SystemTime::now();
    let canceled = cancel.clone();
    let result = rt.block_on(async {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        b.build(&req, &session, events.clone(), cancel).await
    });
    let keep =
        crate::config::history_retention(&crate::config::config_dir(global)).unwrap_or_else(|e| {
            eprintln!("WARNING: {e:#}; the history keeps its defaults");
            builder::history::Retention::default()
        });
    remember(
        (&store, keep),
        args,
        &req,
        started,
        &recorder,
        &result,
        canceled.is_cancelled(),
    );
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            printer.finish();
            return Err(build_failure(name, &src, e));
        }
    };
    // Outputs are written while progress is still drawn; their messages wait for the
    // end of it.
    let quiet = mode == crate::progress::Mode::Quiet;
    let mut notes: Vec<String> = out.pushed.iter().map(|p| format!("pushed {p}")).collect();
    let emitted = outputs.emit(&store, &out, false, quiet, &mut notes);
    printer.finish();
    report_diagnostics(name, &src, &out.warnings)?;
    if !args.tags.is_empty() || !quiet || out.recompressed.is_some() {
        eprintln!("{}", super::output::built_line(&out));
    }
    for n in notes {
        eprintln!("{n}");
    }
    emitted?;
    Ok(ExitCode::SUCCESS)
}

/// Record the build in the root's history (`manifold history`); a failure to
/// record is a warning, never the build's.
fn remember(
    (store, keep): (&content::Store, builder::history::Retention),
    args: &BuildArgs,
    req: &builder::BuildRequest,
    started: std::time::SystemTime,
    recorder: &crate::progress::Recorder,
    result: &Result<builder::BuildOutput, builder::BuildFailure>,
    canceled: bool,
) {
    use builder::history::{History, Record, Status};
    let (log, steps, cached) = recorder.take();
    let context = std::path::absolute(&args.context).unwrap_or_else(|_| args.context.clone());
    let mut name = context
        .file_name()
        .map_or_else(|| "/".to_owned(), |n| n.to_string_lossy().into_owned());
    if let Some(t) = &args.target {
        name = format!("{name} ({t})");
    }
    let (status, error) = match result {
        Ok(_) => (Status::Completed, None),
        Err(_) if canceled => (Status::Canceled, Some("build cancelled".to_owned())),
        Err(e) => (Status::Failed, Some(solver::error_chain(e))),
    };
    let record = Record {
        reference: History::new_reference(),
        name,
        started_ms: started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        duration_ms: started.elapsed().map_or(0, |d| d.as_millis() as u64),
        status,
        error,
        steps,
        cached,
        image: result.as_ref().ok().map(|o| o.image.digest.to_string()),
        pushed: result
            .as_ref()
            .map(|o| o.pushed.clone())
            .unwrap_or_default(),
        request: req.audit_json(),
    };
    if let Err(e) = History::for_root(store.root()).record(&record, &log, keep) {
        eprintln!("WARNING: the build was not recorded in the history: {e}");
    }
}

/// What a failed build says.
fn build_failure(name: &str, src: &str, e: builder::BuildFailure) -> anyhow::Error {
    match e {
        builder::BuildFailure::Frontend(frontend::FrontendError::Parse { diagnostics }) => {
            match report_diagnostics(name, src, &diagnostics) {
                Err(e) => e,
                Ok(()) => unreachable!("a parse failure has at least one error diagnostic"),
            }
        }
        builder::BuildFailure::Frontend(e @ frontend::FrontendError::ChecksFailed { .. }) => {
            for d in e.diagnostics() {
                eprint!("{}", d.render(name, src));
            }
            anyhow::Error::new(Hinted::new(
                e.to_string(),
                "fix the warnings, or skip rules with `# check=skip=<rule>`",
            ))
        }
        builder::BuildFailure::Frontend(e) => {
            for d in e.diagnostics() {
                let excerpt = d.render(name, src);
                let lines = excerpt.split_once('\n').map_or("", |(_, rest)| rest);
                eprint!("{name}:{}\n{lines}", d.span.start.line);
            }
            if let frontend::FrontendError::TargetNotFound { .. } = e {
                return anyhow::Error::new(e).context(Hinted::new(
                    "no such build target",
                    "`manifold build --call=targets` lists the stages",
                ));
            }
            e.into()
        }
        builder::BuildFailure::Solve(e) => solve_error(name, src, e),
        e => e.into(),
    }
}

/// A failed step: its instruction, Dockerfile line and the step's own error.
fn solve_error(name: &str, src: &str, e: solver::SolveError) -> anyhow::Error {
    if let Some(loc) = e.vertex().and_then(|v| v.location) {
        let line = src
            .lines()
            .nth(loc.start_line.saturating_sub(1) as usize)
            .unwrap_or("");
        eprintln!(
            "{name}:{}\n  {:>4} | {line}",
            loc.start_line, loc.start_line
        );
    }
    anyhow::Error::new(e)
}
