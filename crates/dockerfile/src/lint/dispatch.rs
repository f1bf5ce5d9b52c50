//! Rules that follow the build the way BuildKit dispatches it: variables
//! and their expansion, base images and platforms, the working directory,
//! the shell, and files excluded from the context.

use std::collections::{BTreeMap, BTreeSet};

use oci::{Platform, Reference};

use super::syntax::index_of;
use super::{CheckOptions, Rule, Sink};
use crate::expand::{Expanded, Lexer};
use crate::parser::{Chmod, CommandLine, Dockerfile, Instruction, InstructionKind, Source, Stage};

/// Build args that never become environment variables.
const NON_ENV_ARGS: &[&str] = &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];
/// The `PATH` BuildKit gives images that set no environment.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

type Vars = Vec<(String, String)>;

/// Set `name` (replacing an earlier value, like BuildKit's `AddOrReplace`).
pub(crate) fn set_var(vars: &mut Vec<(String, String)>, name: &str, value: String) {
    match vars.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name.to_owned(), value)),
    }
}

pub(crate) fn get_var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    crate::expand::Env::get(vars, name)
}

/// The automatic platform args (`BUILDPLATFORM`, `TARGETOS`, ...), with
/// build args of the same name taking over.
pub(crate) fn builtin_args(
    build: &Platform,
    target: &Platform,
    stage: &str,
    overrides: &BTreeMap<String, String>,
) -> Vars {
    let list = crate::args::automatic(build, target, stage);
    list.into_iter()
        .map(|(k, v)| {
            let v = overrides.get(k).cloned().unwrap_or(v);
            (k.to_owned(), v)
        })
        .collect()
}

/// The `ARG`s before the first `FROM`, evaluated in order on top of `vars`.
/// Returns the variables (those with a value) and every declared name.
pub(crate) fn meta_args(
    d: &Dockerfile,
    lexer: &Lexer,
    mut vars: Vars,
    build_args: Option<&BTreeMap<String, String>>,
) -> (Vars, Vec<String>) {
    let mut declared = Vec::new();
    for ins in d.preamble() {
        let InstructionKind::Arg(decls) = &ins.kind else {
            continue;
        };
        for a in decls {
            declared.push(a.name.clone());
            let value = match build_args.and_then(|b| b.get(&a.name)) {
                Some(v) => Some(v.clone()),
                None => a
                    .default
                    .as_ref()
                    .and_then(|w| lexer.process_word(w, &vars).ok())
                    .map(|e| e.value),
            };
            if let Some(v) = value {
                set_var(&mut vars, &a.name, v);
            }
        }
    }
    (vars, declared)
}

/// What a stage has set up, inherited by stages built `FROM` it.
#[derive(Debug, Clone, Default)]
struct StageState {
    vars: Vars,
    /// Declared `ARG` names (with or without a value).
    args: BTreeSet<String>,
    shell: bool,
    workdir_set: bool,
}

struct Walk<'a, 'o> {
    d: &'a Dockerfile,
    opts: &'a CheckOptions<'o>,
    lexer: Lexer,
    sink: &'a mut Sink,
}

pub(super) fn run(d: &Dockerfile, opts: &CheckOptions<'_>, sink: &mut Sink) {
    let stages = d.stages();
    let last_name = stages
        .last()
        .and_then(|s| match &s.from.kind {
            InstructionKind::From(f) => f.name.clone(),
            _ => None,
        })
        .unwrap_or_default();
    let target = opts.target.clone().unwrap_or(last_name);
    let target = if target.is_empty() {
        "default".to_owned()
    } else {
        target
    };
    let builtins = builtin_args(
        &opts.build_platform,
        &opts.target_platform,
        &target,
        &opts.build_args,
    );
    let mut w = Walk {
        d,
        opts,
        lexer: Lexer::new(d.directives.escape),
        sink,
    };
    let (defaults, _) = meta_args(d, &w.lexer, builtins.clone(), None);
    w.default_base_names(&stages, &defaults);
    let (globals, declared) = meta_args(d, &w.lexer, builtins, Some(&opts.build_args));
    let mut known: BTreeSet<String> = declared.into_iter().collect();
    known.extend(globals.iter().map(|(k, _)| k.clone()));
    let mut done: BTreeMap<String, StageState> = BTreeMap::new();
    for s in &stages {
        let InstructionKind::From(f) = &s.from.kind else {
            continue;
        };
        let state = w.stage(s, f, &globals, &known, &done);
        if let Some(n) = &f.name {
            done.insert(n.clone(), state);
        }
    }
}

impl Walk<'_, '_> {
    fn expand(&self, word: &str, vars: &Vars) -> Option<Expanded> {
        self.lexer.process_word(word, vars).ok()
    }

    /// `InvalidDefaultArgInFrom`: with only the defaults of the global args,
    /// every base image name must be a valid reference.
    fn default_base_names(&mut self, stages: &[Stage<'_>], defaults: &Vars) {
        for s in stages {
            let InstructionKind::From(f) = &s.from.kind else {
                continue;
            };
            let Some(e) = self.expand(&f.image, defaults) else {
                return;
            };
            if Reference::parse(&e.value).is_err() {
                self.sink.warn(
                    Rule::InvalidDefaultArgInFrom,
                    s.from.span,
                    None,
                    format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        f.image
                    ),
                );
            }
        }
    }

    fn undefined_in_from(&mut self, e: &Expanded, known: &BTreeSet<String>, ins: &Instruction) {
        for name in e.unmatched.iter().filter(|n| !known.contains(*n)) {
            let mut msg = format!("FROM argument '{name}' is not declared");
            if let Some(s) = suggest(name, known.iter().map(String::as_str)) {
                msg.push_str(&format!(" (did you mean {s}?)"));
            }
            self.sink.warn(
                Rule::UndefinedArgInFrom,
                ins.span,
                index_of(self.d, ins),
                msg,
            );
        }
    }

    fn stage(
        &mut self,
        s: &Stage<'_>,
        f: &crate::parser::From,
        globals: &Vars,
        known: &BTreeSet<String>,
        done: &BTreeMap<String, StageState>,
    ) -> StageState {
        let from = s.from;
        let scope = index_of(self.d, from);
        let name = self.expand(&f.image, globals);
        if let Some(e) = &name {
            self.undefined_in_from(e, known, from);
        }
        let mut platform = self.opts.target_platform.clone();
        if let Some(raw) = &f.platform
            && let Some(e) = self.expand(raw, globals)
        {
            self.undefined_in_from(&e, known, from);
            self.platform_flag(raw, &e, f.name.as_deref(), globals, from);
            if let Ok(p) = Platform::parse(&e.value) {
                platform = p;
            }
        }
        let image = name.map(|e| e.value).unwrap_or_else(|| f.image.clone());
        let mut st = match done.get(&image.to_lowercase()) {
            Some(base) => base.clone(),
            None => {
                let mut st = StageState {
                    vars: vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())],
                    ..StageState::default()
                };
                let resolved = (image != "scratch")
                    .then(|| self.opts.images.and_then(|r| r.resolve(&image, &platform)))
                    .flatten();
                if let Some(b) = resolved {
                    if b.platform.os != platform.os
                        || b.platform.architecture != platform.architecture
                    {
                        self.sink.warn(
                            Rule::InvalidBaseImagePlatform,
                            from.span,
                            scope,
                            format!(
                                "Base image {image} was pulled with platform {:?}, expected {:?} for current build",
                                b.platform.normalize().to_string(),
                                platform.normalize().to_string()
                            ),
                        );
                    }
                    if !b.env.is_empty() {
                        st.vars = b.env;
                    }
                }
                st
            }
        };
        for ins in s.instructions {
            self.instruction(ins, &mut st, globals);
        }
        st
    }

    /// `RedundantTargetPlatform` and `FromPlatformFlagConstDisallowed`.
    fn platform_flag(
        &mut self,
        raw: &str,
        e: &Expanded,
        stage: Option<&str>,
        globals: &Vars,
        from: &Instruction,
    ) {
        let scope = index_of(self.d, from);
        if e.matched.len() == 1
            && e.unmatched.is_empty()
            && e.matched.contains("TARGETPLATFORM")
            && get_var(globals, "TARGETPLATFORM") == Some(e.value.as_str())
        {
            self.sink.warn(
                Rule::RedundantTargetPlatform,
                from.span,
                scope,
                format!(
                    "Setting platform to predefined {raw} in FROM is redundant as this is the default behavior"
                ),
            );
        }
        if !e.matched.is_empty() || !e.unmatched.is_empty() {
            return;
        }
        let Ok(p) = Platform::parse(&e.value) else {
            return;
        };
        let stage = stage.unwrap_or_default();
        if stage.contains(p.os.as_str()) || stage.contains(p.architecture.as_str()) {
            return;
        }
        self.sink.warn(
            Rule::FromPlatformFlagConstDisallowed,
            from.span,
            scope,
            format!(
                "FROM --platform flag should not use constant value {:?}",
                e.value
            ),
        );
    }

    /// Expand `word` in the stage's variables, reporting `UndefinedVar`.
    fn word(&mut self, word: &str, st: &StageState, ins: &Instruction) -> Option<String> {
        let e = self.expand(word, &st.vars)?;
        for name in &e.unmatched {
            if st.args.contains(name) || NON_ENV_ARGS.contains(&name.as_str()) {
                continue;
            }
            let mut msg = format!("Usage of undefined variable '${name}'");
            if let Some(s) = suggest(name, st.vars.iter().map(|(k, _)| k.as_str())) {
                msg.push_str(&format!(" (did you mean ${s}?)"));
            }
            self.sink
                .warn(Rule::UndefinedVar, ins.span, index_of(self.d, ins), msg);
        }
        Some(e.value)
    }

    fn instruction(&mut self, ins: &Instruction, st: &mut StageState, globals: &Vars) {
        let scope = index_of(self.d, ins);
        match &ins.kind {
            InstructionKind::Arg(decls) => {
                for a in decls {
                    let value = if let Some(v) = self.opts.build_args.get(&a.name) {
                        Some(v.clone())
                    } else if let Some(w) = &a.default {
                        self.word(w, st, ins)
                    } else {
                        get_var(globals, &a.name).map(str::to_owned)
                    };
                    if let Some(v) = value
                        && !NON_ENV_ARGS.contains(&a.name.as_str())
                    {
                        set_var(&mut st.vars, &a.name, v);
                    }
                    st.args.insert(a.name.clone());
                }
            }
            InstructionKind::Env(pairs) => {
                let mut set = Vec::new();
                for p in pairs {
                    let k = self.word(&p.key, st, ins);
                    let v = self.word(&p.value, st, ins);
                    if let (Some(k), Some(v)) = (k, v) {
                        set.push((k, v));
                    }
                }
                for (k, v) in set {
                    set_var(&mut st.vars, &k, v);
                }
            }
            InstructionKind::Label(pairs) => {
                for p in pairs {
                    self.word(&p.key, st, ins);
                    self.word(&p.value, st, ins);
                }
            }
            InstructionKind::Copy(c) => {
                let sources = self.copy_words(ins, &c.sources, &c.dest, &c.chown, &c.chmod, st);
                if c.from.is_none() {
                    self.ignored_sources(ins, "Copy", &sources);
                }
            }
            InstructionKind::Add(a) => {
                let sources = self.copy_words(ins, &a.sources, &a.dest, &a.chown, &a.chmod, st);
                let local: Vec<String> = sources.into_iter().filter(|s| !is_remote(s)).collect();
                self.ignored_sources(ins, "Add", &local);
            }
            InstructionKind::Expose(ports) => {
                for p in ports {
                    if let Some(v) = self.word(p, st, ins) {
                        for port in v.split_whitespace() {
                            self.expose(port, ins);
                        }
                    }
                }
            }
            InstructionKind::Workdir(p) => {
                let path = self.word(p, st, ins).unwrap_or_else(|| p.clone());
                if !st.workdir_set && !is_abs(&path, &self.opts.target_platform.os) {
                    self.sink.warn(
                        Rule::WorkdirRelativePath,
                        ins.span,
                        scope,
                        format!(
                            "Relative workdir {path:?} can have unexpected results if the base image changes"
                        ),
                    );
                }
                st.workdir_set = true;
            }
            InstructionKind::User(w) | InstructionKind::StopSignal(w) => {
                self.word(w, st, ins);
            }
            InstructionKind::Volume(v) => {
                for w in &v.words {
                    self.word(w, st, ins);
                }
            }
            InstructionKind::Cmd(CommandLine::Shell(_))
            | InstructionKind::Entrypoint(CommandLine::Shell(_))
                if !st.shell =>
            {
                self.sink.warn(
                    Rule::JSONArgsRecommended,
                    ins.span,
                    scope,
                    format!(
                        "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                        ins.keyword
                    ),
                );
            }
            InstructionKind::Shell(_) => st.shell = true,
            _ => {}
        }
    }

    /// Expand the words of a `COPY`/`ADD`; returns the expanded sources.
    fn copy_words(
        &mut self,
        ins: &Instruction,
        sources: &[Source],
        dest: &str,
        chown: &Option<String>,
        chmod: &Option<Chmod>,
        st: &StageState,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for s in sources {
            if let Source::Path(p) = s
                && let Some(v) = self.word(p, st, ins)
            {
                out.push(v);
            }
        }
        if !ins.heredocs.is_empty() && sources.iter().all(|s| matches!(s, Source::Heredoc(_))) {
            out.clear();
        }
        self.word(dest, st, ins);
        if let Some(c) = chown {
            self.word(c, st, ins);
        }
        if let Some(Chmod::Unexpanded(c)) = chmod {
            self.word(c, st, ins);
        }
        out
    }

    /// `CopyIgnoredFile`. Like BuildKit, nothing is reported when the ignore
    /// file has exclusions (`!pattern`): they are too hard to judge statically.
    fn ignored_sources(&mut self, ins: &Instruction, what: &str, sources: &[String]) {
        let Some(m) = self.opts.ignore else {
            return;
        };
        if m.patterns().iter().any(|p| p.is_exclusion()) {
            return;
        }
        for src in sources {
            let src = clean_path(src);
            let hit = if src == "." || src == "/" {
                root_ignored(m)
            } else {
                m.is_excluded(&src)
            };
            if hit {
                self.sink.warn(
                    Rule::CopyIgnoredFile,
                    ins.span,
                    index_of(self.d, ins),
                    format!("Attempting to {what} file {src:?} that is excluded by .dockerignore"),
                );
            }
        }
    }

    /// `ExposeProtoCasing` and `ExposeInvalidFormat` for one
    /// `[[ip:]host:]port[/proto]`.
    fn expose(&mut self, raw: &str, ins: &Instruction) {
        let parts: Vec<&str> = raw.split(':').collect();
        let n = parts.len();
        let container = parts[n - 1];
        let (ip, host) = match n {
            1 => (String::new(), ""),
            2 => (String::new(), parts[0]),
            _ => (parts[..n - 2].join(":"), parts[n - 2]),
        };
        let proto = match container.split_once('/') {
            _ if container.is_empty() || container.starts_with('/') => return,
            None => "tcp",
            Some((_, p)) => p.split('/').next().unwrap_or_default(),
        };
        let proto = if proto.is_empty() { "tcp" } else { proto };
        let scope = index_of(self.d, ins);
        if proto != proto.to_lowercase() {
            self.sink.warn(
                Rule::ExposeProtoCasing,
                ins.span,
                scope,
                format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
            );
        }
        if !ip.is_empty() || !host.is_empty() {
            self.sink.warn(
                Rule::ExposeInvalidFormat,
                ins.span,
                scope,
                format!(
                    "EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"
                ),
            );
        }
    }
}

fn is_remote(src: &str) -> bool {
    src.starts_with("http://")
        || src.starts_with("https://")
        || src.starts_with("git@")
        || src.ends_with(".git")
}

fn is_abs(path: &str, os: &str) -> bool {
    if os == "windows" {
        let b = path.as_bytes();
        return path.starts_with(['/', '\\'])
            || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':');
    }
    path.starts_with('/')
}

/// Patterns that exclude everything at the root of the context.
fn root_ignored(m: &crate::ignore::Matcher) -> bool {
    m.patterns()
        .iter()
        .any(|p| !p.is_exclusion() && matches!(p.as_str(), "*" | "**" | "**/*"))
}

pub(crate) use crate::path::clean as clean_path;

/// The option closest to `name` (Levenshtein distance below 3, the first
/// of the closest), unless `name` is itself an option.
pub(crate) fn suggest<'a>(name: &str, options: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<&str> = None;
    let mut min = 3;
    for opt in options {
        if opt == name {
            return None;
        }
        let dist = levenshtein(name, opt);
        if dist < min {
            min = dist;
            best = Some(opt);
        }
    }
    best.map(str::to_owned)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::typo("PAHT", &["PATH", "HOME"], Some("PATH"))]
    #[case::exact("PATH", &["PATH"], None)]
    #[case::far("FOO", &["PATH"], None)]
    #[case::first_closest("AB", &["AC", "AD"], Some("AC"))]
    fn suggests(#[case] name: &str, #[case] opts: &[&str], #[case] want: Option<&str>) {
        assert_eq!(suggest(name, opts.iter().copied()).as_deref(), want);
    }
}
