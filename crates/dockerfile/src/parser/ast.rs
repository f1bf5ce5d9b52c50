//! The Dockerfile tree. Arguments are kept as raw, unexpanded words: word
//! expansion (`$VAR`, quotes) happens later, in [`crate::expand`].

use std::time::Duration;

use super::diag::{Diagnostic, Span};

/// What [`super::parse`] returns: always a tree, plus what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub dockerfile: Dockerfile,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// Whether any diagnostic is an error (BuildKit would refuse the file).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dockerfile {
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
}

/// A build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage<'a> {
    pub from: &'a Instruction,
    pub instructions: &'a [Instruction],
}

impl Dockerfile {
    /// `ARG`s (and anything else) before the first `FROM`: the global scope.
    pub fn preamble(&self) -> &[Instruction] {
        let first = self.first_from().unwrap_or(self.instructions.len());
        &self.instructions[..first]
    }

    /// The build stages, in order. Each starts with its `FROM`.
    pub fn stages(&self) -> Vec<Stage<'_>> {
        let mut starts: Vec<usize> = self
            .instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.kind, InstructionKind::From(_)))
            .map(|(n, _)| n)
            .collect();
        starts.push(self.instructions.len());
        starts
            .windows(2)
            .map(|w| Stage {
                from: &self.instructions[w[0]],
                instructions: &self.instructions[w[0] + 1..w[1]],
            })
            .collect()
    }

    fn first_from(&self) -> Option<usize> {
        self.instructions
            .iter()
            .position(|i| matches!(i.kind, InstructionKind::From(_)))
    }
}

/// Parser directives: comments like `# escape=`` at the very top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=`, as written.
    pub syntax: Option<SyntaxDirective>,
    /// The escape char: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=` value, parsed.
    pub check: Option<CheckDirective>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// `# syntax=<frontend image>`: the value as written and the directive's line
/// ([`crate::syntax`] says what it means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxDirective {
    pub value: String,
    pub span: Span,
}

/// `# check=skip=<rules|all>;error=<bool>;experimental=<rules|all>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckDirective {
    pub skip: RuleSet,
    pub error: bool,
    pub experimental: RuleSet,
}

/// A set of lint rules named by `# check=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSet {
    /// The named rules (possibly none).
    Rules(Vec<String>),
    /// `skip=all`.
    All,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::Rules(Vec::new())
    }
}

/// One instruction with its source text and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The keyword as written (`run`, `Run`, ...).
    pub keyword: String,
    pub kind: InstructionKind,
    /// The flags as written, in order (also decoded into `kind`).
    pub flags: Vec<Flag>,
    /// Heredocs attached to this instruction, in order of appearance.
    pub heredocs: Vec<Heredoc>,
    /// Comments on the lines just before the instruction (without `#`).
    pub comments: Vec<String>,
    /// From the keyword to the end of the last line (heredocs included).
    pub span: Span,
    /// The logical line: continuations joined, comments inside removed.
    pub original: String,
}

/// A `--name[=value]` flag as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    /// `None` for `--link`, `Some("")` for `--from=`.
    pub value: Option<String>,
    pub span: Span,
}

/// The instruction and its decoded arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstructionKind {
    From(From),
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    Label(Vec<KeyValue>),
    Env(Vec<KeyValue>),
    Maintainer(String),
    Expose(Vec<String>),
    Add(Add),
    Copy(Copy),
    Volume(Words),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(Option<Box<Instruction>>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// Not a known instruction; the text after the keyword.
    Unknown(String),
}

impl InstructionKind {
    /// The canonical (upper-case) keyword.
    pub fn name(&self) -> &'static str {
        match self {
            InstructionKind::From(_) => "FROM",
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::User(_) => "USER",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Unknown(_) => "UNKNOWN",
        }
    }
}

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct From {
    pub image: String,
    pub platform: Option<String>,
    /// Stage name, lower-cased as BuildKit does.
    pub name: Option<String>,
}

/// Shell form (one string, run by the shell) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Shell(String),
    Exec(Vec<String>),
}

impl CommandLine {
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandLine::Exec(_))
    }
}

/// Whitespace-separated words or a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Words {
    pub words: Vec<String>,
    pub json: bool,
}

/// `RUN [--mount ...] [--network] [--security] cmd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: CommandLine,
    pub mounts: Vec<Mount>,
    pub network: Option<NetworkMode>,
    pub security: Option<SecurityMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountType {
    #[default]
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// A decoded `--mount=...`.
///
/// Values containing `$` cannot be checked before expansion: they are kept
/// in `unexpanded` (key, raw value) and the typed field stays unset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    /// Explicit `ro`/`rw`, else BuildKit's default (read-only except cache/tmpfs).
    pub read_only: bool,
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// secret: expose as this environment variable.
    pub env: Option<String>,
    pub unexpanded: Vec<(String, String)>,
    /// The flag value as written.
    pub raw: String,
}

/// A decoded `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    /// e.g. `u=rwX,go=rX`, validated.
    Symbolic(String),
    /// Contains `$`: validated after expansion.
    Unexpanded(String),
}

/// A source of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(String),
    /// Index into [`Instruction::heredocs`].
    Heredoc(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    pub sources: Vec<Source>,
    pub dest: String,
    pub json: bool,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<Chmod>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Add {
    pub sources: Vec<Source>,
    pub dest: String,
    pub json: bool,
    pub chown: Option<String>,
    pub chmod: Option<Chmod>,
    pub link: bool,
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    pub exclude: Vec<String>,
}

/// `key=value` (or legacy `key value`) of `ENV`/`LABEL`; raw, quotes kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Written as `ENV key value` (no `=`).
    pub legacy: bool,
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Cmd(HealthcheckCmd),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckCmd {
    pub command: CommandLine,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

/// A here-document (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, unquoted.
    pub name: String,
    /// `3<<EOF` gives `Some(3)`.
    pub fd: Option<u32>,
    /// `<<-`: leading tabs are stripped (see [`Heredoc::chomped`]).
    pub chomp: bool,
    /// False when the delimiter was quoted: no variable expansion.
    pub expand: bool,
    /// The body as written, every line with its newline.
    pub content: String,
    /// Position of the `<<` word.
    pub span: Span,
}

impl Heredoc {
    /// The content with leading tabs removed from each line if `chomp`.
    pub fn chomped(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}
