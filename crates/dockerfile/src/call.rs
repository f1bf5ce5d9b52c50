//! The data behind `docker buildx build --call=targets` and `--call=outline`,
//! and their text rendering in buildx's format.
//!
//! Descriptions come from comments: a comment line just above `FROM ... AS
//! name` (or `ARG name`) that starts with the name and a space describes it
//! with the rest of the line (`# build compiles the binary`).

use std::collections::{BTreeMap, BTreeSet};

use oci::Platform;

use crate::expand::Lexer;
use crate::lint::dispatch::{builtin_args, get_var, set_var};
use crate::parser::{Dockerfile, Instruction, InstructionKind, MountType, Span, Stage};

/// One build stage, as `--call=targets` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The stage name (lower-cased), empty for an unnamed stage.
    pub name: String,
    pub description: String,
    /// The last stage is what a build without `--target` builds.
    pub default: bool,
    /// The base image or stage, as written.
    pub base: String,
    /// `--platform` of the `FROM`, as written.
    pub platform: Option<String>,
    pub span: Span,
}

/// What a target can be configured with, as `--call=outline` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outline {
    /// The target stage name, empty for an unnamed stage.
    pub name: String,
    pub description: String,
    /// Build args the target consumes, in source order.
    pub args: Vec<OutlineArg>,
    /// Secrets mounted by `RUN --mount=type=secret`, in source order.
    pub secrets: Vec<OutlineMount>,
    /// SSH agents mounted by `RUN --mount=type=ssh`, in source order.
    pub ssh: Vec<OutlineMount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineArg {
    pub name: String,
    /// The value the build would use (default or build arg), empty if none.
    pub value: String,
    pub description: String,
    /// The `ARG` that declares it.
    pub span: Span,
}

/// A secret or SSH mount id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineMount {
    pub name: String,
    pub required: bool,
    /// The first `RUN` that mounts it.
    pub span: Span,
}

/// Inputs of [`outline`] besides the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineOptions {
    /// `--target`; the last stage when unset.
    pub target: Option<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    pub build_platform: Platform,
    pub target_platform: Platform,
}

impl Default for OutlineOptions {
    fn default() -> Self {
        OutlineOptions {
            target: None,
            build_args: BTreeMap::new(),
            build_platform: Platform::new("linux", "amd64", None),
            target_platform: Platform::new("linux", "amd64", None),
        }
    }
}

/// Why there is no outline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the dockerfile has no build stage")]
    NoStages,
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
}

/// The stages of `d`, for `--call=targets`.
pub fn targets(d: &Dockerfile) -> Vec<Target> {
    let stages = d.stages();
    let n = stages.len();
    stages
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let InstructionKind::From(f) = &s.from.kind else {
                return None;
            };
            let name = f.name.clone().unwrap_or_default();
            Some(Target {
                description: doc_comment(&s.from.comments, &name),
                name,
                default: i + 1 == n,
                base: f.image.clone(),
                platform: f.platform.clone(),
                span: s.from.span,
            })
        })
        .collect()
}

/// The description in `comments` for `name`: the rest of the first line
/// that starts with `name` and a space.
fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    comments
        .iter()
        .find_map(|c| c.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_default()
        .to_owned()
}

#[derive(Debug, Clone)]
struct ArgInfo {
    name: String,
    value: String,
    description: String,
    span: Span,
    /// Declaration order, to keep several names of one `ARG` in order.
    seq: usize,
    /// Global args its default refers to: consuming it consumes them.
    deps: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct StageInfo {
    all: BTreeMap<String, ArgInfo>,
    used: BTreeSet<String>,
    vars: Vec<(String, String)>,
    secrets: BTreeMap<String, OutlineMount>,
    ssh: BTreeMap<String, OutlineMount>,
    base: Option<usize>,
    deps: Vec<usize>,
}

/// What target `opts.target` (or the last stage) consumes, for `--call=outline`.
pub fn outline(d: &Dockerfile, opts: &OutlineOptions) -> Result<Outline, CallError> {
    let stages = d.stages();
    let names: Vec<Option<String>> = stages.iter().map(|s| stage_name(s).clone()).collect();
    let target = match &opts.target {
        Some(t) => {
            let t = t.to_lowercase();
            names
                .iter()
                .position(|n| n.as_deref() == Some(t.as_str()))
                .ok_or(CallError::UnknownTarget(t))?
        }
        None => stages.len().checked_sub(1).ok_or(CallError::NoStages)?,
    };
    let stage_label = names[target].clone().unwrap_or_else(|| "default".into());
    let lexer = Lexer::new(d.directives.escape);
    let builtins = builtin_args(
        &opts.build_platform,
        &opts.target_platform,
        &stage_label,
        &opts.build_args,
    );
    let mut seq = 0usize;
    let (globals, global_all) = global_args(d, &lexer, builtins, opts, &mut seq);
    let mut infos: Vec<StageInfo> = Vec::with_capacity(stages.len());
    for (i, s) in stages.iter().enumerate() {
        let InstructionKind::From(f) = &s.from.kind else {
            continue;
        };
        let mut info = StageInfo {
            all: global_all.clone(),
            ..StageInfo::default()
        };
        if let Ok(e) = lexer.process_word(&f.image, &globals) {
            info.used = e.matched;
            let base = e.value.to_lowercase();
            info.base = names[..i].iter().position(|n| n.as_deref() == Some(&base));
        }
        if let Some(b) = info.base {
            info.vars = infos[b].vars.clone();
        }
        for ins in s.instructions {
            stage_instruction(ins, &mut info, &names, &lexer, &globals, opts, &mut seq);
        }
        infos.push(info);
    }
    let from = stages[target].from;
    let name = names[target].clone().unwrap_or_default();
    let mut args = Vec::new();
    collect_args(&mut infos, target, &mut Visited::default(), &mut args);
    args.sort_by_key(|a| (a.span.start.line, a.seq));
    let mut secrets = Vec::new();
    collect_mounts(
        &infos,
        target,
        |s| &s.secrets,
        &mut Visited::default(),
        &mut secrets,
    );
    secrets.sort_by_key(|m| m.span.start.line);
    let mut ssh = Vec::new();
    collect_mounts(
        &infos,
        target,
        |s| &s.ssh,
        &mut Visited::default(),
        &mut ssh,
    );
    ssh.sort_by_key(|m| m.span.start.line);
    Ok(Outline {
        description: doc_comment(&from.comments, &name),
        name,
        args: args
            .into_iter()
            .map(|a| OutlineArg {
                name: a.name,
                value: a.value,
                description: a.description,
                span: a.span,
            })
            .collect(),
        secrets,
        ssh,
    })
}

fn stage_name<'a>(s: &'a Stage<'_>) -> &'a Option<String> {
    static NONE: Option<String> = None;
    match &s.from.kind {
        InstructionKind::From(f) => &f.name,
        _ => &NONE,
    }
}

/// The `ARG`s before the first `FROM`: variables with a value, and what
/// the outline knows of each.
fn global_args(
    d: &Dockerfile,
    lexer: &Lexer,
    mut vars: Vec<(String, String)>,
    opts: &OutlineOptions,
    seq: &mut usize,
) -> (Vec<(String, String)>, BTreeMap<String, ArgInfo>) {
    let mut all: BTreeMap<String, ArgInfo> = BTreeMap::new();
    for ins in d.preamble() {
        let InstructionKind::Arg(decls) = &ins.kind else {
            continue;
        };
        for a in decls {
            let mut deps = BTreeSet::new();
            let value = match (opts.build_args.get(&a.name), &a.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(w)) => lexer.process_word(w, &vars).ok().map(|e| {
                    deps = e.matched;
                    if deps.remove(&a.name)
                        && let Some(old) = all.get(&a.name)
                    {
                        deps.extend(old.deps.iter().cloned());
                    }
                    e.value
                }),
                (None, None) => None,
            };
            if let Some(v) = &value {
                set_var(&mut vars, &a.name, v.clone());
            }
            *seq += 1;
            all.insert(
                a.name.clone(),
                ArgInfo {
                    name: a.name.clone(),
                    value: value.unwrap_or_default(),
                    description: doc_comment(&ins.comments, &a.name),
                    span: ins.span,
                    seq: *seq,
                    deps,
                },
            );
        }
    }
    (vars, all)
}

fn stage_instruction(
    ins: &Instruction,
    info: &mut StageInfo,
    names: &[Option<String>],
    lexer: &Lexer,
    globals: &[(String, String)],
    opts: &OutlineOptions,
    seq: &mut usize,
) {
    let dep = |from: &str, info: &mut StageInfo| {
        let from = from.to_lowercase();
        let found = names
            .iter()
            .position(|n| n.as_deref() == Some(from.as_str()))
            .or_else(|| from.parse::<usize>().ok().filter(|i| *i < names.len()));
        if let Some(i) = found
            && !info.deps.contains(&i)
        {
            info.deps.push(i);
        }
    };
    match &ins.kind {
        InstructionKind::Arg(decls) => {
            for a in decls {
                let mut inherited = false;
                let value = if let Some(v) = opts.build_args.get(&a.name) {
                    Some(v.clone())
                } else if let Some(w) = &a.default {
                    lexer.process_word(w, &info.vars).ok().map(|e| e.value)
                } else {
                    let g = get_var(globals, &a.name).map(str::to_owned);
                    inherited = g.is_some();
                    g
                };
                if let Some(v) = &value {
                    set_var(&mut info.vars, &a.name, v.clone());
                }
                *seq += 1;
                if !inherited {
                    info.all.insert(
                        a.name.clone(),
                        ArgInfo {
                            name: a.name.clone(),
                            value: value.unwrap_or_default(),
                            description: doc_comment(&ins.comments, &a.name),
                            span: ins.span,
                            seq: *seq,
                            deps: BTreeSet::new(),
                        },
                    );
                }
                info.used.insert(a.name.clone());
            }
        }
        InstructionKind::Env(pairs) => {
            for p in pairs {
                let k = lexer.process_word(&p.key, &info.vars);
                let v = lexer.process_word(&p.value, &info.vars);
                if let (Ok(k), Ok(v)) = (k, v) {
                    set_var(&mut info.vars, &k.value, v.value);
                }
            }
        }
        InstructionKind::Copy(c) => {
            if let Some(f) = &c.from {
                dep(f, info);
            }
        }
        InstructionKind::Run(r) => {
            for m in &r.mounts {
                if let Some(f) = &m.from {
                    dep(f, info);
                }
                let (map, id) = match m.kind {
                    MountType::Secret => {
                        let id = m.id.clone().or_else(|| {
                            m.target
                                .as_deref()
                                .map(|t| t.rsplit('/').next().unwrap_or(t).to_owned())
                        });
                        (&mut info.secrets, id)
                    }
                    MountType::Ssh => (
                        &mut info.ssh,
                        Some(m.id.clone().unwrap_or_else(|| "default".into())),
                    ),
                    _ => continue,
                };
                if let Some(id) = id {
                    map.entry(id.clone()).or_insert(OutlineMount {
                        name: id,
                        required: m.required,
                        span: ins.span,
                    });
                }
            }
        }
        _ => {}
    }
}

/// Stages and names already reported. A stage is walked once, so stages
/// that copy from each other (even in a cycle) stay cheap.
#[derive(Debug, Default)]
struct Visited {
    stages: BTreeSet<usize>,
    names: BTreeSet<String>,
}

/// The args consumed by stage `i`, then by its base and the stages it
/// copies or mounts from; a name is reported once, first found first.
fn collect_args(infos: &mut [StageInfo], i: usize, visited: &mut Visited, out: &mut Vec<ArgInfo>) {
    if !visited.stages.insert(i) {
        return;
    }
    let info = &mut infos[i];
    let mut todo: Vec<String> = info.used.iter().cloned().collect();
    while let Some(k) = todo.pop() {
        if let Some(a) = info.all.get(&k) {
            todo.extend(a.deps.iter().filter(|d| !info.used.contains(*d)).cloned());
        }
        info.used.insert(k);
    }
    for k in &info.used {
        if let Some(a) = info.all.get(k)
            && visited.names.insert(k.clone())
        {
            out.push(a.clone());
        }
    }
    let next: Vec<usize> = info.base.into_iter().chain(info.deps.clone()).collect();
    for n in next {
        collect_args(infos, n, visited, out);
    }
}

fn collect_mounts(
    infos: &[StageInfo],
    i: usize,
    pick: fn(&StageInfo) -> &BTreeMap<String, OutlineMount>,
    visited: &mut Visited,
    out: &mut Vec<OutlineMount>,
) {
    if !visited.stages.insert(i) {
        return;
    }
    let info = &infos[i];
    for (k, m) in pick(info) {
        if visited.names.insert(k.clone()) {
            out.push(m.clone());
        }
    }
    for n in info.base.into_iter().chain(info.deps.iter().copied()) {
        collect_mounts(infos, n, pick, visited, out);
    }
}

/// `--call=targets` output: a `TARGET`/`DESCRIPTION` table, the default
/// target marked `(default)`.
pub fn render_targets(targets: &[Target]) -> String {
    let mut rows = vec![vec!["TARGET".to_owned(), "DESCRIPTION".to_owned()]];
    for t in targets {
        let name = match (t.name.is_empty(), t.default) {
            (true, true) => "(default)".to_owned(),
            (false, true) => format!("{} (default)", t.name),
            _ => t.name.clone(),
        };
        rows.push(vec![name, t.description.clone()]);
    }
    tabwrite(&rows, 1)
}

/// `--call=outline` output: the target, then tables of build args,
/// secrets and SSH mounts, each followed by an empty line.
pub fn render_outline(o: &Outline) -> String {
    let mut out = String::new();
    if !o.name.is_empty() || !o.description.is_empty() {
        let name = if o.name.is_empty() {
            "(default)"
        } else {
            &o.name
        };
        let mut rows = vec![vec!["TARGET:".to_owned(), name.to_owned()]];
        if !o.description.is_empty() {
            rows.push(vec!["DESCRIPTION:".to_owned(), o.description.clone()]);
        }
        out.push_str(&tabwrite(&rows, 1));
        out.push('\n');
    }
    if !o.args.is_empty() {
        let mut rows = vec![vec![
            "BUILD ARG".to_owned(),
            "VALUE".to_owned(),
            "DESCRIPTION".to_owned(),
        ]];
        rows.extend(
            o.args
                .iter()
                .map(|a| vec![a.name.clone(), a.value.clone(), a.description.clone()]),
        );
        out.push_str(&tabwrite(&rows, 3));
        out.push('\n');
    }
    for (title, list) in [("SECRET", &o.secrets), ("SSH", &o.ssh)] {
        if list.is_empty() {
            continue;
        }
        let mut rows = vec![vec![title.to_owned(), "REQUIRED".to_owned()]];
        rows.extend(list.iter().map(|m| {
            let req = if m.required { "true" } else { "" };
            vec![m.name.clone(), req.to_owned()]
        }));
        out.push_str(&tabwrite(&rows, 3));
        out.push('\n');
    }
    out
}

/// Go's `text/tabwriter` with minimum width 0, space padding and no flags:
/// every cell but a row's last is a column cell, padded to the widest cell
/// of its column block plus `padding`; the last cell is written as is.
fn tabwrite(rows: &[Vec<String>], padding: usize) -> String {
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&mut out, rows, 0, rows.len(), &mut widths, padding);
    out
}

fn format_block(
    out: &mut String,
    rows: &[Vec<String>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    padding: usize,
) {
    let column = widths.len();
    let has_column = |r: &Vec<String>| column + 1 < r.len();
    let mut this = line0;
    while this < line1 {
        if !has_column(&rows[this]) {
            this += 1;
            continue;
        }
        write_rows(out, &rows[line0..this], widths);
        line0 = this;
        let mut width = 0;
        while this < line1 && has_column(&rows[this]) {
            width = width.max(rows[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(out, rows, line0, this, widths, padding);
        widths.pop();
        line0 = this;
    }
    write_rows(out, &rows[line0..line1], widths);
}

fn write_rows(out: &mut String, rows: &[Vec<String>], widths: &[usize]) {
    for r in rows {
        for (j, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                let pad = w.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
            .collect()
    }

    #[test]
    fn tabwriter_pads_all_but_last_cell() {
        let got = tabwrite(&rows(&[&["A", "VALUE", "D"], &["LONGER", "", ""]]), 3);
        assert_eq!(got, "A        VALUE   D\nLONGER           \n");
    }

    #[test]
    fn tabwriter_blocks_end_at_rows_without_the_column() {
        let got = tabwrite(&rows(&[&["a", "b"], &["only"], &["long name", "c"]]), 1);
        assert_eq!(got, "a b\nonly\nlong name c\n");
    }

    #[test]
    fn doc_comment_needs_name_and_space() {
        let c = vec!["other".to_owned(), "base is the base".to_owned()];
        assert_eq!(doc_comment(&c, "base"), "is the base");
        assert_eq!(doc_comment(&c, "bas"), "");
        assert_eq!(doc_comment(&c, ""), "");
    }
}
