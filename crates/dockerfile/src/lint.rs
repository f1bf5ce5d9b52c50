//! BuildKit's build checks ("lints") over a parsed Dockerfile.
//!
//! [`check`] runs every rule of [`Rule::ALL`] and returns the warnings that the
//! configuration lets through. The configuration is the `# check=` directive,
//! or, when the caller passes one, the `BUILDKIT_DOCKERFILE_CHECK` build
//! argument, which replaces the directive whole (as in BuildKit). A `# check=`
//! comment just above an instruction adds its `skip`/`experimental` rules for
//! the warnings about that instruction.
//!
//! Two rules need facts that a parse alone does not have; the caller supplies
//! them through [`CheckOptions`]: `InvalidBaseImagePlatform` asks an
//! [`ImageResolver`] for the platform of each base image (it also supplies the
//! image's environment, so `UndefinedVar` knows e.g. `PATH`), and
//! `CopyIgnoredFile` uses the build context's ignore [`Matcher`]. Without
//! them, these rules stay silent and base images are assumed to set only
//! `PATH`.

mod config;
pub(crate) mod dispatch;
mod rules;
mod syntax;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use oci::Platform;

use crate::ignore::Matcher;
use crate::parser::{Diagnostic, Dockerfile, Parsed, Span};

pub use config::{CheckConfig, CheckConfigError};
pub use rules::Rule;

/// What a base image looks like, as far as the checks care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The platform the image was resolved to.
    pub platform: Platform,
    /// `Env` of the image config, as `(name, value)`.
    pub env: Vec<(String, String)>,
}

impl BaseImage {
    /// What the checks need of an image config: its platform and its `Env`.
    pub fn from_config(config: oci::ImageConfig) -> BaseImage {
        let platform = config.platform();
        let env = config
            .config
            .and_then(|c| c.env)
            .unwrap_or_default()
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv, String::new()),
            })
            .collect();
        BaseImage { platform, env }
    }
}

/// Resolves base images (a registry or cache lookup, done by the frontend).
pub trait ImageResolver {
    /// The image `reference` (expanded, as written after `FROM`) resolved
    /// for `platform`; `None` when it is not known.
    fn resolve(&self, reference: &str, platform: &Platform) -> Option<BaseImage>;
}

impl ImageResolver for BTreeMap<String, BaseImage> {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Option<BaseImage> {
        self.get(reference).cloned()
    }
}

impl<S: std::hash::BuildHasher> ImageResolver for HashMap<String, BaseImage, S> {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Option<BaseImage> {
        self.get(reference).cloned()
    }
}

/// How to run [`check`].
pub struct CheckOptions<'a> {
    /// `BUILDKIT_DOCKERFILE_CHECK`: replaces the `# check=` directive.
    pub config: Option<CheckConfig>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target` (sets `TARGETSTAGE`); the last stage when unset.
    pub target: Option<String>,
    pub build_platform: Platform,
    pub target_platform: Platform,
    /// Base image facts, for `InvalidBaseImagePlatform` and `UndefinedVar`.
    pub images: Option<&'a dyn ImageResolver>,
    /// The build context's ignore patterns, for `CopyIgnoredFile`.
    pub ignore: Option<&'a Matcher>,
}

impl Default for CheckOptions<'_> {
    fn default() -> Self {
        CheckOptions {
            config: None,
            build_args: BTreeMap::new(),
            target: None,
            build_platform: Platform::new("linux", "amd64", None),
            target_platform: Platform::new("linux", "amd64", None),
            images: None,
            ignore: None,
        }
    }
}

impl fmt::Debug for CheckOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckOptions")
            .field("config", &self.config)
            .field("build_args", &self.build_args)
            .field("target", &self.target)
            .field("build_platform", &self.build_platform)
            .field("target_platform", &self.target_platform)
            .field("images", &self.images.map(|_| "<resolver>"))
            .field("ignore", &self.ignore)
            .finish()
    }
}

/// One build-check warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintWarning {
    pub rule: Rule,
    /// The message, worded as BuildKit words it.
    pub message: String,
    pub span: Span,
}

impl LintWarning {
    /// The rule's stable name.
    pub fn name(&self) -> &'static str {
        self.rule.name()
    }

    pub fn description(&self) -> &'static str {
        self.rule.description()
    }

    pub fn url(&self) -> String {
        self.rule.url()
    }
}

impl fmt::Display for LintWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.span.start, self.rule, self.message)
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// In source order.
    pub warnings: Vec<LintWarning>,
    /// `error=true` is configured and there are warnings: the build fails.
    pub error: bool,
}

impl CheckReport {
    /// The report as `docker buildx build --call=check` prints it: how many warnings,
    /// then each with its rule, URL, message and the Dockerfile lines it is about
    /// (`src`, shown as `name`).
    pub fn render(&self, name: &str, src: &str) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let n = self.warnings.len();
        match n {
            0 => out.push_str("Check complete, no warnings found.\n"),
            1 => out.push_str("Check complete, 1 warning has been found!\n"),
            _ => {
                let _ = writeln!(out, "Check complete, {n} warnings have been found!");
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "\nWARNING: {} - {}\n{}", w.name(), w.url(), w.message);
            let excerpt = crate::parser::Diagnostic::warning("lint", w.span, w.message.clone())
                .render(name, src);
            let _ = writeln!(out, "{name}:{}\n--------------------", w.span.start.line);
            for line in excerpt.lines().skip(1) {
                let _ = writeln!(out, "{line}");
            }
            out.push_str("--------------------\n");
        }
        out
    }
}

/// Run the build checks on `parsed`.
pub fn check(parsed: &Parsed, opts: &CheckOptions<'_>) -> CheckReport {
    let d = &parsed.dockerfile;
    let base = match &opts.config {
        Some(c) => c.clone(),
        None => d
            .directives
            .check
            .as_ref()
            .map(CheckConfig::from_directive)
            .unwrap_or_default(),
    };
    let mut sink = Sink::default();
    syntax::run(parsed, &mut sink);
    dispatch::run(d, opts, &mut sink);
    let mut warnings: Vec<LintWarning> = Vec::new();
    for f in sink.found {
        let cfg = match f.scope {
            Some(i) => scoped(&base, d, i),
            None => base.clone(),
        };
        if !cfg.enabled(f.rule) {
            continue;
        }
        let w = LintWarning {
            rule: f.rule,
            message: f.message,
            span: f.span,
        };
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    warnings.sort_by_key(|w| w.span.start);
    let error = base.error && !warnings.is_empty();
    CheckReport { warnings, error }
}

/// Whether a build check reports the parser's diagnostic `d` itself (an empty
/// continuation line is `NoEmptyContinuation`): a caller that runs the checks
/// shows it only as that check's warning, which `# check=skip=` can turn off.
pub fn reported_by_checks(d: &Diagnostic) -> bool {
    d.code == "empty-continuation"
}

/// `base` merged with a `# check=` comment just above instruction `i`.
fn scoped(base: &CheckConfig, d: &Dockerfile, i: usize) -> CheckConfig {
    let Some(ins) = d.instructions.get(i) else {
        return base.clone();
    };
    match ins.comments.iter().find_map(|c| config::comment_config(c)) {
        Some(Ok(c)) => base.merged(&c),
        _ => base.clone(),
    }
}

/// A rule violation before configuration is applied.
#[derive(Debug)]
struct Found {
    rule: Rule,
    message: String,
    span: Span,
    /// Index of the instruction whose `# check=` comment applies.
    scope: Option<usize>,
}

#[derive(Debug, Default)]
struct Sink {
    found: Vec<Found>,
}

impl Sink {
    fn warn(&mut self, rule: Rule, span: Span, scope: Option<usize>, message: String) {
        self.found.push(Found {
            rule,
            message,
            span,
            scope,
        });
    }
}
