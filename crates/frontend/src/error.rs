//! The errors of lowering. Each carries the Dockerfile span it is about
//! (when there is one), so the CLI can show the marked lines.

use dockerfile::ExpandError;
use dockerfile::lint::{CheckConfigError, LintWarning};
use dockerfile::parser::{Diagnostic, Span};
use graph::{GraphError, ResolveError};
use oci::{Platform, PlatformError, ReferenceError};

/// Why a Dockerfile could not be lowered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrontendError {
    #[error("the dockerfile has errors: {}", first_message(diagnostics))]
    Parse { diagnostics: Vec<Diagnostic> },
    #[error("target stage {target:?} could not be found (stages: {})", stages.join(", "))]
    TargetNotFound { target: String, stages: Vec<String> },
    #[error("the Dockerfile contains no stages to build (no FROM)")]
    NoStages,
    #[error("{feature} is not supported yet")]
    NotSupported { feature: String, span: Span },
    #[error("the base image's ONBUILD trigger {trigger:?} is invalid: {message}")]
    BadTrigger {
        trigger: String,
        message: String,
        span: Span,
    },
    #[error("cannot expand variables in {word:?}")]
    Expand {
        word: String,
        span: Span,
        #[source]
        source: Box<ExpandError>,
    },
    #[error("base name {name:?} is blank after expansion")]
    BlankBaseName { name: String, span: Span },
    #[error("invalid platform {value:?}")]
    InvalidPlatform {
        value: String,
        span: Span,
        #[source]
        source: PlatformError,
    },
    #[error("invalid image reference {reference:?}")]
    InvalidReference {
        reference: String,
        span: Span,
        #[source]
        source: ReferenceError,
    },
    #[error("cannot load metadata for {reference} ({platform})")]
    Resolve {
        reference: String,
        platform: Box<Platform>,
        span: Span,
        #[source]
        source: ResolveError,
    },
    #[error("stage {from:?} is used by stage {stage:?} before it is defined")]
    StageNotYetDefined {
        from: String,
        stage: String,
        span: Span,
    },
    #[error(
        "variable expansion is not supported in --from={from:?}: define a stage with FROM and use it instead"
    )]
    FromVariable { from: String, span: Span },
    #[error("invalid chmod {value:?}: expected an octal mode up to 07777 or a symbolic mode")]
    InvalidChmod { value: String, span: Span },
    #[error(
        "invalid chown {value:?}: expected USER[:GROUP], each a name or an id from 0 to 4294967294"
    )]
    InvalidChown { value: String, span: Span },
    #[error("invalid --mount {value:?}: {reason}")]
    InvalidMount {
        value: String,
        reason: String,
        span: Span,
    },
    #[error("invalid port {port:?}")]
    InvalidPort { port: String, span: Span },
    #[error("invalid stop signal {signal:?}")]
    InvalidSignal { signal: String, span: Span },
    #[error("volume paths cannot be empty")]
    EmptyVolume { span: Span },
    #[error("invalid {what}: {reason}")]
    InvalidSource {
        what: &'static str,
        reason: String,
        span: Span,
    },
    #[error("invalid SOURCE_DATE_EPOCH {value:?}: expected seconds since 1970")]
    InvalidEpoch { value: String },
    #[error("invalid build graph")]
    Graph(#[from] GraphError),
    /// `check=error=true` and the build checks found `warnings` (at least one).
    #[error(
        "build checks failed with check=error=true: {}",
        list_warnings(warnings)
    )]
    ChecksFailed { warnings: Vec<LintWarning> },
    #[error("invalid BUILDKIT_DOCKERFILE_CHECK build argument {value:?}")]
    InvalidCheckConfig {
        value: String,
        #[source]
        source: CheckConfigError,
    },
}

/// `Rule (line N)`, joined by `, `.
fn list_warnings(warnings: &[LintWarning]) -> String {
    warnings
        .iter()
        .map(|w| format!("{} (line {})", w.name(), w.span.start.line))
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_message(d: &[Diagnostic]) -> String {
    d.iter()
        .find(|d| d.is_error())
        .map_or_else(String::new, |d| d.message.clone())
}

impl FrontendError {
    /// Where in the Dockerfile the error is.
    pub fn span(&self) -> Option<Span> {
        use FrontendError as E;
        match self {
            E::Parse { diagnostics } => diagnostics.iter().find(|d| d.is_error()).map(|d| d.span),
            E::NotSupported { span, .. }
            | E::BadTrigger { span, .. }
            | E::Expand { span, .. }
            | E::BlankBaseName { span, .. }
            | E::InvalidPlatform { span, .. }
            | E::InvalidReference { span, .. }
            | E::Resolve { span, .. }
            | E::StageNotYetDefined { span, .. }
            | E::FromVariable { span, .. }
            | E::InvalidChmod { span, .. }
            | E::InvalidChown { span, .. }
            | E::InvalidMount { span, .. }
            | E::InvalidPort { span, .. }
            | E::InvalidSignal { span, .. }
            | E::EmptyVolume { span }
            | E::InvalidSource { span, .. } => Some(*span),
            E::ChecksFailed { warnings } => warnings.first().map(|w| w.span),
            E::TargetNotFound { .. }
            | E::NoStages
            | E::InvalidEpoch { .. }
            | E::Graph(_)
            | E::InvalidCheckConfig { .. } => None,
        }
    }

    /// A stable kebab-case code for programs.
    pub fn code(&self) -> &'static str {
        use FrontendError as E;
        match self {
            E::Parse { .. } => "parse",
            E::TargetNotFound { .. } => "target-not-found",
            E::NoStages => "no-stages",
            E::NotSupported { .. } => "not-supported",
            E::BadTrigger { .. } => "bad-trigger",
            E::Expand { .. } => "expand",
            E::BlankBaseName { .. } => "blank-base-name",
            E::InvalidPlatform { .. } => "invalid-platform",
            E::InvalidReference { .. } => "invalid-reference",
            E::Resolve { .. } => "resolve",
            E::StageNotYetDefined { .. } => "stage-not-yet-defined",
            E::FromVariable { .. } => "from-variable",
            E::InvalidChmod { .. } => "invalid-chmod",
            E::InvalidChown { .. } => "invalid-chown",
            E::InvalidMount { .. } => "invalid-mount",
            E::InvalidPort { .. } => "invalid-port",
            E::InvalidSignal { .. } => "invalid-signal",
            E::EmptyVolume { .. } => "empty-volume",
            E::InvalidSource { .. } => "invalid-source",
            E::InvalidEpoch { .. } => "invalid-epoch",
            E::Graph(_) => "graph",
            E::ChecksFailed { .. } => "checks-failed",
            E::InvalidCheckConfig { .. } => "invalid-check-config",
        }
    }

    /// The error as diagnostics, ready for [`Diagnostic::render`]: the
    /// parser's own for [`FrontendError::Parse`], one warning per build check
    /// warning for [`FrontendError::ChecksFailed`], else one with this error's
    /// message and span (empty when the error has no span).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            FrontendError::Parse { diagnostics } => return diagnostics.clone(),
            FrontendError::ChecksFailed { warnings } => {
                return warnings
                    .iter()
                    .map(|w| {
                        let message = format!("{}: {}", w.name(), w.message);
                        Diagnostic::warning("build-check", w.span, message)
                    })
                    .collect();
            }
            _ => {}
        }
        let Some(span) = self.span() else {
            return Vec::new();
        };
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        vec![Diagnostic::error(self.code(), span, message)]
    }
}
