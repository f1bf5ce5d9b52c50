//! Stages: their names, expanded base names and platforms, what they use
//! from each other, and which ones the target needs.

use std::collections::BTreeSet;

use dockerfile::Lexer;
use dockerfile::parser::{Dockerfile, From, InstructionKind, Stage};
use oci::Platform;

use crate::error::FrontendError;
use crate::state::EnvList;

/// A stage, with what is known before it is lowered.
#[derive(Debug, Clone)]
pub(crate) struct StageDecl<'a> {
    pub stage: Stage<'a>,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The base after expansion with the global arguments.
    pub base: String,
    /// `--platform` after expansion.
    pub platform: Option<Platform>,
    /// The earlier stage named by `base`, if any.
    pub base_stage: Option<usize>,
    /// Stages used by `COPY --from` and `RUN --mount=from=`.
    pub deps: BTreeSet<usize>,
}

impl StageDecl<'_> {
    /// The name shown in progress: the stage name or `stage-N`.
    pub fn display(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"))
    }
}

/// Expand every stage's `FROM` with the global arguments.
pub(crate) fn declare<'a>(
    df: &'a Dockerfile,
    lexer: &Lexer,
    globals: &EnvList,
) -> Result<Vec<StageDecl<'a>>, FrontendError> {
    let mut out: Vec<StageDecl<'a>> = Vec::new();
    for stage in df.stages() {
        let InstructionKind::From(from) = &stage.from.kind else {
            unreachable!("a stage starts with FROM");
        };
        let decl = declare_one(stage, from, lexer, globals, &out)?;
        out.push(decl);
    }
    for i in 0..out.len() {
        let deps = stage_refs(&out[i].stage)
            .into_iter()
            .filter_map(|name| find(&out, name))
            .collect();
        out[i].deps = deps;
    }
    Ok(out)
}

fn declare_one<'a>(
    stage: Stage<'a>,
    from: &From,
    lexer: &Lexer,
    globals: &EnvList,
    earlier: &[StageDecl<'a>],
) -> Result<StageDecl<'a>, FrontendError> {
    let span = stage.from.span;
    let expand = |word: &str| {
        lexer
            .process_word(word, globals)
            .map(|e| e.value)
            .map_err(|source| FrontendError::Expand {
                word: word.to_owned(),
                span,
                source: Box::new(source),
            })
    };
    let base = expand(&from.image)?;
    if base.is_empty() {
        return Err(FrontendError::BlankBaseName {
            name: from.image.clone(),
            span,
        });
    }
    let platform = match &from.platform {
        None => None,
        Some(p) => {
            let value = expand(p)?;
            Some(
                Platform::parse(&value).map_err(|source| FrontendError::InvalidPlatform {
                    value,
                    span,
                    source,
                })?,
            )
        }
    };
    let lower = base.to_lowercase();
    let base_stage = earlier
        .iter()
        .rposition(|d| d.name.as_deref() == Some(lower.as_str()));
    Ok(StageDecl {
        stage,
        name: from.name.clone(),
        base,
        platform,
        base_stage,
        deps: BTreeSet::new(),
    })
}

/// The `--from` names a stage uses (not yet resolved).
fn stage_refs<'s>(stage: &Stage<'s>) -> Vec<&'s str> {
    let mut out = Vec::new();
    for ins in stage.instructions {
        match &ins.kind {
            InstructionKind::Copy(c) => out.extend(c.from.as_deref()),
            InstructionKind::Run(r) => {
                out.extend(r.mounts.iter().filter_map(|m| m.from.as_deref()))
            }
            _ => {}
        }
    }
    out
}

/// The stage `name` refers to: a stage name (any case) or an index.
pub(crate) fn find(decls: &[StageDecl<'_>], name: &str) -> Option<usize> {
    if let Ok(i) = name.parse::<usize>() {
        return (i < decls.len()).then_some(i);
    }
    let lower = name.to_lowercase();
    decls
        .iter()
        .position(|d| d.name.as_deref() == Some(lower.as_str()))
}

/// The target stage's index.
pub(crate) fn target(
    decls: &[StageDecl<'_>],
    target: Option<&str>,
) -> Result<usize, FrontendError> {
    match target {
        None => decls.len().checked_sub(1).ok_or(FrontendError::NoStages),
        Some(t) => decls
            .iter()
            .position(|d| d.name.as_deref() == Some(t.to_lowercase().as_str()))
            .ok_or_else(|| FrontendError::TargetNotFound {
                target: t.to_owned(),
                stages: decls.iter().filter_map(|d| d.name.clone()).collect(),
            }),
    }
}

/// The stages `target` needs, itself included.
pub(crate) fn reachable(decls: &[StageDecl<'_>], target: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !seen.insert(i) {
            continue;
        }
        todo.extend(decls[i].base_stage);
        todo.extend(decls[i].deps.iter().copied());
    }
    seen
}
