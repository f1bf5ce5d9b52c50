//! Lowering a Dockerfile to a build graph, with the semantics of BuildKit's
//! `dockerfile2llb`.
//!
//! [`lower`] parses the Dockerfile, works out the stages the target needs,
//! and for each target platform lowers them into one shared [`Graph`]
//! (identical steps, such as a `FROM --platform=$BUILDPLATFORM` stage, are
//! one vertex). Each platform's result is an [`graph::Output`] with the image
//! config, including the history entries BuildKit writes. Base images are
//! read through an [`ImageResolver`]; this crate does no IO.
//!
//! A base image's `ONBUILD` triggers run at the start of the stage built on it.
//!
//! Every lowering also runs the build checks ([`dockerfile::lint`]) over the
//! Dockerfile, for each target platform, with the base images it resolved; their
//! warnings are [`Lowered::checks`], and with `check=error=true` (directive or
//! `BUILDKIT_DOCKERFILE_CHECK`) any warning fails the lowering with
//! [`FrontendError::ChecksFailed`], so no step of the build runs.
//!
//! Features not supported yet (remote `ADD`, `--mount=type=ssh`, `ONBUILD`
//! triggers that read another stage, Windows targets) fail with
//! [`FrontendError::NotSupported`] and the instruction's span; nothing is
//! silently ignored.
//!
//! **Invariant**: this crate does no IO and never prints.
//! **Invariant**: secret values never enter the graph; secrets appear only
//! by id (and target path or variable name).

mod args;
mod checks;
mod copy;
mod dispatch;
mod error;
mod golang;
mod lowering;
mod options;
mod paths;
mod run;
mod stages;
mod state;

pub use error::FrontendError;
pub use options::{BuildOptions, NamedContext};

use dockerfile::lint::LintWarning;
use dockerfile::parser::{self, Diagnostic};
use graph::{Graph, ImageResolver};

/// The result of [`lower`].
#[derive(Debug)]
pub struct Lowered {
    /// One output per target platform, in the order asked for.
    pub graph: Graph,
    /// Warnings of the parser (BuildKit prints them and builds anyway), but for
    /// those a build check reports (see [`dockerfile::lint::reported_by_checks`]).
    pub warnings: Vec<Diagnostic>,
    /// What the build checks found, each once over all platforms, in source order.
    pub checks: Vec<LintWarning>,
    /// Stages other than the target whose SBOM is asked for
    /// (`BUILDKIT_SBOM_SCAN_STAGE`): (platform, stage name, root vertex).
    pub sbom_stages: Vec<(oci::Platform, String, oci::Digest)>,
}

/// Lower the Dockerfile `src` for `opts`, reading base images through
/// `resolver`.
pub fn lower(
    src: &str,
    opts: &BuildOptions,
    resolver: &dyn ImageResolver,
) -> Result<Lowered, FrontendError> {
    let mut parsed = parser::parse(src);
    dockerfile::syntax::apply(&mut parsed, opts.build_arg(dockerfile::syntax::BUILD_ARG));
    if parsed.has_errors() {
        return Err(FrontendError::Parse {
            diagnostics: parsed.diagnostics,
        });
    }
    let cx = lowering::Ctx::new(&parsed.dockerfile, opts, resolver)?;
    let check_config = checks::config(&cx)?;
    let mut graph = Graph::new();
    let mut sbom_stages = Vec::new();
    for platform in cx.target_platforms() {
        // BuildKit sends only the context paths the build reads: a first pass
        // (into a throw-away graph) finds them, the second one builds.
        let mut scratch = Graph::new();
        let probe =
            lowering::Lowering::new(&cx, &mut scratch, platform.clone(), Vec::new())?.run()?;
        let follow = lowering::follow_paths(&probe.ctx_paths);
        let done = lowering::Lowering::new(&cx, &mut graph, platform.clone(), follow)?.run()?;
        sbom_stages.extend(
            done.sbom_stages
                .into_iter()
                .map(|(name, root)| (platform.clone(), name, root)),
        );
        graph.add_output(platform, done.root, done.config)?;
    }
    let checks = checks::run(&parsed, &cx, check_config.as_ref())?;
    let warnings = parsed
        .diagnostics
        .into_iter()
        .filter(|d| !dockerfile::lint::reported_by_checks(d))
        .collect();
    Ok(Lowered {
        graph,
        warnings,
        checks,
        sbom_stages,
    })
}
