//! What `manifold build`'s flags say, as typed values: build arguments, labels,
//! platforms, secrets, entitlements, the network mode, ignore files and OCI-layout
//! contexts. Shared by the local and the remote build paths.

use std::collections::BTreeMap;

use anyhow::Context;
use oci::Platform;

use crate::cli::BuildArgs;

pub(super) fn build_args(args: &BuildArgs) -> BTreeMap<String, String> {
    args.build_args
        .iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            // NAME alone: the value from the environment, as docker does.
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

/// `--build-arg` as the frontend takes it: `NAME` alone reads the environment.
pub(super) fn build_arg_pairs(args: &BuildArgs) -> Vec<(String, Option<String>)> {
    args.build_args
        .iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (a.clone(), std::env::var(a).ok()),
        })
        .collect()
}

/// `--label KEY=VALUE` (a bare `KEY` is an empty label).
pub(super) fn labels(args: &BuildArgs) -> Vec<(String, String)> {
    args.labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// `SOURCE_DATE_EPOCH`: the build argument, else the environment.
pub(super) fn source_date_epoch(pairs: &[(String, Option<String>)]) -> Option<i64> {
    pairs
        .iter()
        .rev()
        .find_map(|(k, v)| (k == "SOURCE_DATE_EPOCH").then_some(v.as_deref()).flatten())
        .map(str::to_owned)
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .and_then(|v| v.parse().ok())
}

pub(super) fn platforms(args: &BuildArgs) -> anyhow::Result<Vec<Platform>> {
    args.platform
        .iter()
        .map(|p| Platform::parse(p).with_context(|| format!("invalid platform {p:?}")))
        .collect()
}

/// The context's ignore patterns (`<Dockerfile>.dockerignore`, then `.dockerignore`),
/// as a matcher; `None` when there are none or they do not parse.
pub(super) fn read_ignore(
    args: &BuildArgs,
    dockerfile_name: &str,
) -> Option<dockerfile::ignore::Matcher> {
    let lines = builder::context_ignore_patterns(&args.context, dockerfile_name).ok()?;
    let patterns = dockerfile::ignore::parse_ignore_file(&lines.join("\n")).ok()?;
    dockerfile::ignore::Matcher::new(patterns).ok()
}
