//! Build arguments: the automatic platform arguments, the global scope
//! (`ARG` before the first `FROM`) and proxy variables.

use std::collections::BTreeMap;

use dockerfile::Lexer;
use dockerfile::parser::{Instruction, InstructionKind};
use graph::op::EnvVar;
use oci::Platform;

use crate::error::FrontendError;
use crate::state::EnvList;

/// Build arguments BuildKit passes to `RUN` as proxy settings without an
/// `ARG` (matched case-insensitively) and keeps out of history.
const PROXY_ARGS: [&str; 5] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// The automatic arguments, overridden by build arguments of the same name.
pub(crate) fn platform_args(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
    build_args: &BTreeMap<String, String>,
) -> EnvList {
    let pairs = dockerfile::args::automatic(build, target, target_stage);
    let mut env = EnvList::default();
    for (k, v) in pairs {
        env.set(k, build_args.get(k).map_or(v.as_str(), String::as_str));
    }
    env
}

/// Add the `ARG`s of the global scope to `env`: a build argument wins over
/// the default, a default is expanded with the arguments before it, and an
/// `ARG` with neither stays unset.
pub(crate) fn global_args(
    preamble: &[Instruction],
    lexer: &Lexer,
    build_args: &BTreeMap<String, String>,
    env: &mut EnvList,
) -> Result<(), FrontendError> {
    for ins in preamble {
        let InstructionKind::Arg(decls) = &ins.kind else {
            continue;
        };
        for d in decls {
            let value = match (build_args.get(&d.name), &d.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(
                    lexer
                        .process_word(default, &*env)
                        .map_err(|source| FrontendError::Expand {
                            word: default.clone(),
                            span: ins.span,
                            source: Box::new(source),
                        })?
                        .value,
                ),
                (None, None) => None,
            };
            if let Some(v) = value {
                env.set(&d.name, &v);
            }
        }
    }
    Ok(())
}

/// Proxy settings from the build arguments, by canonical name, sorted.
pub(crate) fn proxy_env(build_args: &BTreeMap<String, String>) -> Vec<EnvVar> {
    let mut out: Vec<EnvVar> = Vec::new();
    for (k, v) in build_args {
        if let Some(name) = PROXY_ARGS.iter().find(|p| p.eq_ignore_ascii_case(k)) {
            out.retain(|e| e.name != *name);
            out.push(EnvVar::new(*name, v));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `SOURCE_DATE_EPOCH` from the options, else from the build arguments.
pub(crate) fn epoch(
    given: Option<i64>,
    build_args: &BTreeMap<String, String>,
) -> Result<Option<i64>, FrontendError> {
    if given.is_some() {
        return Ok(given);
    }
    match build_args.get("SOURCE_DATE_EPOCH") {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| FrontendError::InvalidEpoch { value: v.clone() }),
    }
}
