//! Rules that need only the tree: casing, stage names, deprecated and
//! legacy forms, repeated instructions, secrets in names, description
//! comments, empty continuation lines.

use std::collections::BTreeSet;

use super::{Rule, Sink};
use crate::parser::{Dockerfile, Instruction, InstructionKind, Parsed, Span};

const RESERVED_STAGE_NAMES: &[&str] = &["context", "scratch"];

pub(super) fn run(parsed: &Parsed, sink: &mut Sink) {
    let d = &parsed.dockerfile;
    empty_continuations(parsed, sink);
    for (i, ins) in d.instructions.iter().enumerate() {
        per_instruction(i, ins, sink);
    }
    stage_names(d, sink);
    instruction_casing(d, sink);
    repeated_instructions(d, sink);
    secrets(d, sink);
}

fn empty_continuations(parsed: &Parsed, sink: &mut Sink) {
    for diag in &parsed.diagnostics {
        if diag.code == "empty-continuation" {
            sink.warn(
                Rule::NoEmptyContinuation,
                diag.span,
                None,
                "Empty continuation line".into(),
            );
        }
    }
}

fn is_lower(s: &str) -> bool {
    s == s.to_lowercase()
}

fn is_upper(s: &str) -> bool {
    s == s.to_uppercase()
}

/// The words after `FROM` and its flags, as written.
pub(super) fn from_args(ins: &Instruction) -> Vec<&str> {
    ins.original
        .split_whitespace()
        .skip(1)
        .skip_while(|w| w.starts_with("--"))
        .collect()
}

fn per_instruction(i: usize, ins: &Instruction, sink: &mut Sink) {
    let scope = Some(i);
    match &ins.kind {
        InstructionKind::Maintainer(_) => sink.warn(
            Rule::MaintainerDeprecated,
            ins.span,
            scope,
            "Maintainer instruction is deprecated in favor of using label".into(),
        ),
        InstructionKind::From(f) => {
            let args = from_args(ins);
            if args.len() == 3 && !is_lower(args[2]) {
                sink.warn(
                    Rule::StageNameCasing,
                    ins.span,
                    scope,
                    format!("Stage name '{}' should be lowercase", args[2]),
                );
            }
            let kw = ins.keyword.as_str();
            if args.len() >= 3 {
                let as_kw = args[1];
                let mismatch = if is_lower(kw) {
                    !is_lower(as_kw)
                } else {
                    is_upper(kw) && !is_upper(as_kw)
                };
                if mismatch {
                    sink.warn(
                        Rule::FromAsCasing,
                        ins.span,
                        scope,
                        format!("'{as_kw}' and '{kw}' keywords' casing do not match"),
                    );
                }
            }
            if let Some(name) = &f.name {
                definition_description(i, ins, "FROM", &[name.as_str()], sink);
            }
        }
        InstructionKind::Arg(decls) => {
            let keys: Vec<&str> = decls.iter().map(|a| a.name.as_str()).collect();
            definition_description(i, ins, "ARG", &keys, sink);
        }
        InstructionKind::Env(pairs) | InstructionKind::Label(pairs) => {
            for _ in pairs.iter().filter(|p| p.legacy) {
                sink.warn(
                    Rule::LegacyKeyValueFormat,
                    ins.span,
                    scope,
                    format!(
                        "\"{0} key=value\" should be used instead of legacy \"{0} key value\" format",
                        ins.keyword
                    ),
                );
            }
        }
        _ => {}
    }
}

/// The comment just above a `FROM ... AS name` or `ARG` must start with the
/// name it describes.
fn definition_description(i: usize, ins: &Instruction, what: &str, keys: &[&str], sink: &mut Sink) {
    let Some(last) = ins.comments.last() else {
        return;
    };
    if keys.is_empty() {
        return;
    }
    let first = last.split(' ').next().unwrap_or_default();
    if keys.contains(&first) {
        return;
    }
    let example = if keys.len() > 1 { "<arg_key>" } else { keys[0] };
    sink.warn(
        Rule::InvalidDefinitionDescription,
        ins.span,
        Some(i),
        format!("Comment for {what} should follow the format: `# {example} <description>`"),
    );
}

fn stage_names(d: &Dockerfile, sink: &mut Sink) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for s in d.stages() {
        let InstructionKind::From(f) = &s.from.kind else {
            continue;
        };
        let Some(name) = f.name.as_deref() else {
            continue;
        };
        if RESERVED_STAGE_NAMES.contains(&name) {
            sink.warn(
                Rule::ReservedStageName,
                s.from.span,
                None,
                format!("Stage name should not use the same name as reserved stage {name:?}"),
            );
        }
        if !seen.insert(name) {
            sink.warn(
                Rule::DuplicateStageName,
                s.from.span,
                None,
                format!("Duplicate stage name {name:?}, stage names should be unique"),
            );
        }
    }
}

/// Keywords that are neither all-lower nor all-upper, or that differ from
/// the casing most keywords use (ties count as upper case). Only stages
/// count: the `ARG`s before the first `FROM` are not looked at.
fn instruction_casing(d: &Dockerfile, sink: &mut Sink) {
    let stages = d.stages();
    let keywords = || {
        stages
            .iter()
            .flat_map(|s| std::iter::once(s.from).chain(s.instructions.iter()))
    };
    let (mut lower, mut upper) = (0usize, 0usize);
    for ins in keywords() {
        let k = ins.keyword.as_str();
        if is_lower(k) {
            lower += 1;
        } else if is_upper(k) {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for ins in keywords() {
        let k = ins.keyword.as_str();
        let want = if majority_lower && !is_lower(k) {
            "lowercase"
        } else if !majority_lower && !is_upper(k) {
            "uppercase"
        } else {
            continue;
        };
        sink.warn(
            Rule::ConsistentInstructionCasing,
            ins.span,
            None,
            format!("Command '{k}' should match the case of the command majority ({want})"),
        );
    }
}

/// A second `CMD`, `ENTRYPOINT` or `HEALTHCHECK` in a stage: the earlier one
/// is reported, since it is the one that has no effect.
fn repeated_instructions(d: &Dockerfile, sink: &mut Sink) {
    for s in d.stages() {
        let mut last: [Option<Span>; 3] = [None; 3];
        for ins in s.instructions {
            let slot = match ins.kind {
                InstructionKind::Cmd(_) => 0,
                InstructionKind::Entrypoint(_) => 1,
                InstructionKind::Healthcheck(_) => 2,
                _ => continue,
            };
            if let Some(prev) = last[slot] {
                sink.warn(
                    Rule::MultipleInstructionsDisallowed,
                    prev,
                    index_of(d, ins),
                    format!(
                        "Multiple {} instructions should not be used in the same stage because only the last one will be used",
                        ins.keyword
                    ),
                );
            }
            last[slot] = Some(ins.span);
        }
    }
}

/// `ARG` and `ENV` names inside stages that look like they hold secrets.
fn secrets(d: &Dockerfile, sink: &mut Sink) {
    for s in d.stages() {
        for ins in s.instructions {
            let (what, keys): (&str, Vec<&str>) = match &ins.kind {
                InstructionKind::Arg(a) => ("ARG", a.iter().map(|a| a.name.as_str()).collect()),
                InstructionKind::Env(e) => ("ENV", e.iter().map(|e| e.key.as_str()).collect()),
                _ => continue,
            };
            for key in keys.into_iter().filter(|k| looks_secret(k)) {
                sink.warn(
                    Rule::SecretsUsedInArgOrEnv,
                    ins.span,
                    index_of(d, ins),
                    format!(
                        "Do not use ARG or ENV instructions for sensitive data ({what} {key:?})"
                    ),
                );
            }
        }
    }
}

const SECRET_WORDS: &[&str] = &[
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];
const ALLOWED_WORDS: &[&str] = &["public", "file", "version"];

/// Whether `name`, split on `_`, starts or ends with (or is) a secret word,
/// and has no allowed word at its start or end (ASCII case-insensitive).
fn looks_secret(name: &str) -> bool {
    has_edge_word(name, SECRET_WORDS) && !has_edge_word(name, ALLOWED_WORDS)
}

/// Whether a word from `words` appears delimited by `_` or the ends of
/// `name` (the regexp `(?i)(?:_|^)(?:w1|w2…)(?:_|$)`).
fn has_edge_word(name: &str, words: &[&str]) -> bool {
    let lower = name.to_ascii_lowercase();
    words.iter().any(|w| {
        lower.match_indices(w).any(|(at, _)| {
            let before_ok = at == 0 || lower.as_bytes()[at - 1] == b'_';
            let end = at + w.len();
            let after_ok = end == lower.len() || lower.as_bytes()[end] == b'_';
            before_ok && after_ok
        })
    })
}

/// The index of `ins` in `d.instructions` (`None` for an `ONBUILD`'s inner
/// instruction), found from its address.
pub(super) fn index_of(d: &Dockerfile, ins: &Instruction) -> Option<usize> {
    let size = std::mem::size_of::<Instruction>().max(1);
    let start = d.instructions.as_ptr() as usize;
    let at = (ins as *const Instruction as usize).checked_sub(start)?;
    let i = at / size;
    (at % size == 0 && i < d.instructions.len()).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain_token("GITHUB_TOKEN", true)]
    #[case::whole_word("password", true)]
    #[case::first_word("Secret_message", true)]
    #[case::middle_word("MY_KEY_NAME", true)]
    #[case::inside_word("MONKEY", false)]
    #[case::public_allowed("PUBLIC_KEY", false)]
    #[case::file_allowed("PASSWORD_FILE", false)]
    #[case::version_allowed("AUTH_VERSION", false)]
    #[case::no_secret("VERSION", false)]
    #[case::apikey("apikey", true)]
    fn secret_names(#[case] name: &str, #[case] want: bool) {
        assert_eq!(looks_secret(name), want);
    }
}
