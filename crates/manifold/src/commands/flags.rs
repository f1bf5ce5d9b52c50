//! What `manifold build`'s flags say, as typed values: build arguments, labels,
//! platforms, secrets, entitlements, the network mode, ignore files and OCI-layout
//! contexts. Shared by the local and the remote build paths.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use oci::Platform;

use crate::cli::BuildArgs;
use crate::render::Hinted;

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

/// The context's ignore patterns (`<Dockerfile>.dockerignore`, then `.dockerignore`).
pub(super) fn read_ignore(
    args: &BuildArgs,
    dockerfile_name: &str,
) -> Option<dockerfile::ignore::Matcher> {
    dockerfile::ignore::ignore_file_candidates(dockerfile_name)
        .into_iter()
        .map(|c| args.context.join(c))
        .find_map(|p: PathBuf| std::fs::read_to_string(p).ok())
        .and_then(|text| {
            dockerfile::ignore::parse_ignore_file(&text)
                .ok()
                .and_then(|pats| dockerfile::ignore::Matcher::new(pats).ok())
        })
}

/// Parse `--secret id=ID[,src=FILE|,env=VAR]` and read the value.
pub(super) fn secret(spec: &str) -> anyhow::Result<(String, builder::Secret)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_owned()),
            Some(("src" | "source", v)) => src = Some(v.to_owned()),
            Some(("env", v)) => env = Some(v.to_owned()),
            Some(("type", "file" | "env")) => {}
            _ => bail!(Hinted::new(
                format!("invalid --secret {spec:?}: unknown field {field:?}"),
                "write --secret id=ID,src=FILE or --secret id=ID,env=VAR",
            )),
        }
    }
    let id = id.or_else(|| src.clone()).ok_or_else(|| {
        anyhow::Error::new(Hinted::new(
            format!("invalid --secret {spec:?}: no id"),
            "write --secret id=ID,src=FILE",
        ))
    })?;
    let value = match (src, env) {
        (Some(path), _) => std::fs::read(&path)
            .with_context(|| format!("cannot read secret {id:?} from {path}"))?,
        (None, Some(var)) => std::env::var_os(&var)
            .with_context(|| format!("secret {id:?}: environment variable {var} is not set"))?
            .into_encoded_bytes(),
        (None, None) => std::env::var_os(&id)
            .with_context(|| {
                format!("secret {id:?}: no src= or env= given and no environment variable {id}")
            })?
            .into_encoded_bytes(),
    };
    Ok((id, builder::Secret(std::sync::Arc::new(value))))
}

pub(super) fn entitlements(args: &BuildArgs) -> anyhow::Result<worker::Entitlements> {
    let mut e = worker::Entitlements::default();
    for a in &args.allow {
        match a.as_str() {
            "network.host" => e.network_host = true,
            "security.insecure" => e.security_insecure = true,
            other => bail!(Hinted::new(
                format!("unknown entitlement {other:?}"),
                "--allow takes network.host or security.insecure",
            )),
        }
    }
    Ok(e)
}

pub(super) fn network(args: &BuildArgs) -> anyhow::Result<graph::op::Network> {
    Ok(match args.network.as_deref() {
        None | Some("default") => graph::op::Network::Default,
        Some("none") => graph::op::Network::None,
        Some("host") => graph::op::Network::Host,
        Some(other) => bail!(Hinted::new(
            format!("unknown network mode {other:?}"),
            "--network takes default, none or host",
        )),
    })
}

/// The OCI layout `DIR[:TAG|@DIGEST]` of `--build-context NAME=oci-layout://…` and
/// the image it names (the only one when neither is given).
pub(super) fn open_layout(
    name: &str,
    spec: &str,
) -> anyhow::Result<(content::Store, oci::Descriptor)> {
    let (dir, tag, digest) = match spec.rsplit_once('@') {
        Some((d, dg)) if dg.contains(':') => (d, None, Some(dg)),
        _ => match spec.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') => (d, Some(t), None),
            _ => (spec, None, None),
        },
    };
    let layout = content::Store::read_layout(dir)
        .with_context(|| format!("--build-context {name}: cannot read OCI layout {dir}"))?;
    let images = layout.images()?;
    let desc = match (tag, digest) {
        (_, Some(d)) => {
            let d: oci::Digest = d
                .parse()
                .with_context(|| format!("--build-context {name}: invalid digest {d:?}"))?;
            let top = layout.index()?.manifests;
            let mut found = top.iter().find(|m| m.digest == d).cloned();
            for m in &top {
                if found.is_some() {
                    break;
                }
                if let Ok(bytes) = layout.read_document(&m.digest)
                    && let Ok(oci::document::ManifestOrIndex::Index(i)) =
                        oci::document::ManifestOrIndex::parse(&m.media_type, bytes)
                {
                    found = i.value().manifests.iter().find(|c| c.digest == d).cloned();
                }
            }
            found.with_context(|| format!("OCI layout {dir} has no image {d}"))?
        }
        (Some(t), None) => layout
            .resolve(t)
            .with_context(|| format!("OCI layout {dir} has no image named {t}"))?,
        (None, None) => match images.as_slice() {
            [one] => one.descriptor.clone(),
            _ => bail!(Hinted::new(
                format!("OCI layout {dir} holds {} images", images.len()),
                "name one: oci-layout://DIR:TAG or oci-layout://DIR@DIGEST",
            )),
        },
    };
    Ok((layout, desc))
}

/// The context's ignore patterns, as lines for the frontend.
pub(super) fn read_ignore_patterns(
    args: &BuildArgs,
    dockerfile_name: &str,
) -> anyhow::Result<Vec<String>> {
    for c in dockerfile::ignore::ignore_file_candidates(dockerfile_name) {
        let p = args.context.join(c);
        if let Ok(text) = std::fs::read_to_string(&p) {
            dockerfile::ignore::parse_ignore_file(&text)
                .with_context(|| format!("invalid ignore file {}", p.display()))?;
            return Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect());
        }
    }
    Ok(Vec::new())
}
