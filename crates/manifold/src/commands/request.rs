//! The one conversion of `manifold build`'s flags: into the [`builder::BuildRequest`]
//! a builder here or a daemon receives, and the [`Inputs`] it reads on this side.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use builder::{Attestation, BuildRequest, CacheSpec};

use super::flags::{build_arg_pairs, labels, platforms, source_date_epoch};
use super::output::Plan;
use crate::cli::BuildArgs;
use crate::render::Hinted;

/// What a request's named contexts are read from on this side.
#[derive(Debug)]
pub struct Inputs {
    /// The directory of each local context, by the name the request uses
    /// (`context`, `context:NAME`), the main context first.
    pub dirs: Vec<(String, PathBuf)>,
    /// `--build-context NAME=oci-layout://…`: NAME, the layout, and the image chosen
    /// in it (which the request names [`builder::layout_context_name`]).
    pub layouts: Vec<(String, content::Store, oci::Descriptor)>,
}

/// The request the flags ask for, with the Dockerfile `src` (read from `name`), and
/// what its contexts are read from.
pub fn request(
    args: &BuildArgs,
    name: &str,
    src: &str,
    plan: &Plan,
) -> anyhow::Result<(BuildRequest, Inputs)> {
    if !args.context.is_dir() {
        bail!(Hinted::new(
            format!(
                "build context {} is not a directory",
                args.context.display()
            ),
            "give the directory that holds the files the Dockerfile copies",
        ));
    }
    let (named_contexts, inputs) = named_contexts(args)?;
    let build_args = build_arg_pairs(args);
    let source_date_epoch = source_date_epoch(&build_args);
    let options = frontend::BuildOptions {
        target: args.target.clone(),
        platforms: platforms(args)?,
        build_args,
        named_contexts,
        labels: labels(args).into_iter().collect(),
        // The frontend stamps copied files and history with it too.
        source_date_epoch,
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        context_excludes: builder::context_ignore_patterns(&args.context, name)?,
        network: builder::parse_network(args.network.as_deref())?,
        extra_hosts: args
            .add_hosts
            .iter()
            .map(|h| builder::run_flags::parse_add_host(h))
            .collect::<Result<_, _>>()?,
        ulimits: args
            .ulimits
            .iter()
            .map(|u| builder::run_flags::parse_ulimit(u))
            .collect::<Result<_, _>>()?,
        shm_size: args
            .shm_size
            .as_deref()
            .map(builder::run_flags::parse_shm_size)
            .transpose()?,
        ..frontend::BuildOptions::default()
    };
    let tags = args
        .tags
        .iter()
        .map(|t| {
            oci::Reference::parse(t)
                .map(|r| r.to_string())
                .with_context(|| format!("invalid tag {t:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cache_from = CacheSpec::parse_all(&args.cache_from)?;
    let cache_to = CacheSpec::parse_all(&args.cache_to)?;
    builder::check_cache_specs(&cache_to, &cache_from)?;
    let mut secrets = BTreeMap::new();
    for s in &args.secret {
        let (id, value) = builder::Secret::from_flag(s)?;
        secrets.insert(id, value);
    }
    let request = BuildRequest {
        dockerfile: src.to_owned(),
        dockerfile_name: String::new(),
        options,
        secrets,
        allow: builder::parse_allow(&args.allow)?,
        pull: args.pull,
        tags,
        outputs: plan.request_outputs(),
        export: plan.export_options(builder::ExportOptions {
            source_date_epoch,
            ..builder::ExportOptions::default()
        }),
        cache_from,
        cache_to,
        attestations: Vec::new(),
    };
    let pushes = request
        .outputs
        .iter()
        .any(|o| o.kind == export::output::Kind::Image { push: true });
    let no_default = std::env::var("BUILDX_NO_DEFAULT_ATTESTATIONS").ok();
    let attestations = builder::provenance::with_default(
        Attestation::from_flags(
            args.provenance.as_deref(),
            args.sbom.as_deref(),
            &args.attest,
        )?,
        pushes,
        request.export.oci_mediatypes,
        no_default.as_deref(),
    );
    let request = BuildRequest {
        attestations,
        dockerfile_name: name.to_owned(),
        ..request
    };
    // Bad attestation options fail here, before anything is built (a builder checks
    // them again).
    builder::provenance::requested(&request)?;
    Ok((request, inputs))
}

/// `--build-context` values: local directories, images, and images chosen in OCI
/// layouts (named as the store they are built from names them).
fn named_contexts(
    args: &BuildArgs,
) -> anyhow::Result<(BTreeMap<String, frontend::NamedContext>, Inputs)> {
    let mut named = BTreeMap::new();
    let mut inputs = Inputs {
        dirs: vec![("context".to_owned(), args.context.clone())],
        layouts: Vec::new(),
    };
    for spec in &args.build_contexts {
        let (name, value) = spec.split_once('=').ok_or_else(|| {
            anyhow::Error::new(Hinted::new(
                format!("invalid --build-context {spec:?}"),
                "write --build-context NAME=DIR|docker-image://REF|oci-layout://DIR[:TAG|@DIGEST]",
            ))
        })?;
        let ctx = if let Some(r) = value.strip_prefix("docker-image://") {
            frontend::NamedContext::Image {
                reference: r.to_owned(),
            }
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            let (store, root) = content::layout::open_image(layout)
                .with_context(|| format!("--build-context {name}"))?;
            let reference = builder::layout_context_name(name, &root.digest);
            inputs.layouts.push((name.to_owned(), store, root));
            frontend::NamedContext::Image { reference }
        } else {
            let dir = PathBuf::from(value);
            if !dir.is_dir() {
                bail!(Hinted::new(
                    format!("--build-context {name}: {value} is not a directory"),
                    "give a directory, docker-image://REF or oci-layout://DIR",
                ));
            }
            let local = format!("context:{name}");
            inputs.dirs.push((local.clone(), dir));
            frontend::NamedContext::Local { name: local }
        };
        named.insert(name.to_owned(), ctx);
    }
    Ok((named, inputs))
}
