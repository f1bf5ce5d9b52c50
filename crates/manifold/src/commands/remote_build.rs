//! `manifold build` on a remote builder: the request goes, as it is, to the nodes
//! [`remote::nodes::route`] chose for its platforms; they build in parallel.
//!
//! Each daemon pushes what the request pushes (several nodes push their parts by
//! digest and the client combines one index in the registry). When something is
//! left to do here (`-o`, `--load`, `-t` into the local store), each node's image
//! comes back into the client's store (only the blobs it lacks, each verified), the
//! parts are combined into one index there, and [`super::output::Plan::emit`] writes
//! the outputs.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use oci::{Platform, Reference};
use remote::protocol::Done;

use super::output::Plan;
use super::registry::client;
use crate::cli::{BuildArgs, Global};
use crate::instances::Instance;
use crate::render::Hinted;

pub fn run(
    global: &Global,
    args: &BuildArgs,
    name: &str,
    src: String,
    instance: Instance,
) -> anyhow::Result<ExitCode> {
    let nodes = instance.remote_nodes()?;
    let outputs = Plan::from_args(args)?;
    let (request, inputs) = super::request::request(args, name, &src, &outputs)?;
    let tags: Vec<Reference> = request
        .tags
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<anyhow::Result<_>>()?;
    let push_only = outputs.push_only();
    let fetch = outputs.needs_client();
    let mut wanted = request.options.platforms.clone();
    if wanted.is_empty() {
        wanted.push(Platform::host());
    }
    let rt = super::runtime()?;
    let infos = rt.block_on(remote::nodes::ask(&nodes))?;
    let plan = remote::nodes::route(&infos, &wanted)?;
    if plan.len() > 1 && !push_only && !fetch {
        bail!(Hinted::new(
            format!(
                "builder {} splits this build over {} nodes, and there is nowhere to combine them",
                instance.name,
                plan.len()
            ),
            "name the result (-t NAME, into the local store), give an output (-o), or push it (-t REGISTRY/NAME --push)",
        ));
    }
    let credentials = remote::nodes::credentials(&src, &tags)?;
    let state = super::state_root(global)
        .unwrap_or_else(|_| std::env::temp_dir().join("manifold"))
        .join("contexts");
    let (call, local) =
        remote::nodes::call(request, inputs.dirs, inputs.layouts, credentials, &state)?;
    let fetch_into = match fetch {
        true => {
            let store = super::open_store(global)?;
            let lease = Arc::new(store.lease()?);
            Some(remote::Fetch { store, lease })
        }
        false => None,
    };
    let quiet = args.quiet;
    let mode = match quiet {
        true => crate::progress::Mode::Quiet,
        false => crate::progress::Mode::parse(&args.progress)?,
    };
    let (events, printer) = crate::progress::start(mode);
    let multi = plan.len() > 1;
    let job = remote::nodes::Job {
        nodes: &nodes,
        plan: &plan,
        base: &call,
        local: &local,
        fetch_into: &fetch_into,
        push_repository: push_only
            .then(|| {
                tags.first()
                    .map(|t| format!("{}/{}", t.registry(), t.repository()))
            })
            .flatten(),
    };
    let results = rt.block_on(async {
        tokio::select! {
            // Dropping the connections cancels the builds on the daemons.
            _ = tokio::signal::ctrl_c() => None,
            r = remote::nodes::build_all(job, &events) => Some(r),
        }
    });
    printer.finish();
    let results = results.ok_or_else(|| anyhow::anyhow!("build cancelled"))?;
    let mut parts = Vec::new();
    for (node, r) in results {
        let done = r.with_context(|| format!("the build on node {node} failed"))?;
        parts.push(done);
    }
    if let Some(into) = &fetch_into {
        let built = remote::nodes::combine(
            &into.store,
            &into.lease,
            parts,
            &wanted,
            export::annotation::Annotations(&outputs.annotations).index(),
        )?;
        let push = match multi {
            true => Some((&call.request, client(global)?)),
            false => None,
        };
        emit_fetched(&rt, &outputs, into, &built, push, quiet)?;
    } else if !multi {
        // buildx's provenance keys, read back from where the daemon pushed.
        let extra = match (&outputs.metadata_file, parts[0].pushed.first()) {
            (Some(_), Some(pushed)) => rt.block_on(pushed_provenance(global, pushed))?,
            _ => serde_json::Map::new(),
        };
        report_one(&outputs, &parts[0], push_only, quiet, extra)?;
    } else {
        push_combined(global, &rt, &outputs, &tags, &parts, wanted.len(), quiet)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The nodes' images, fetched into the client's store and combined: named, pushed
/// as `push`'s request asks when several nodes made it (one node pushes its own),
/// and written to the outputs.
fn emit_fetched(
    rt: &tokio::runtime::Runtime,
    outputs: &Plan,
    into: &remote::Fetch,
    built: &builder::BuildOutput,
    push: Option<(&builder::BuildRequest, registry::Client)>,
    quiet: bool,
) -> anyhow::Result<()> {
    if !outputs.tags.is_empty() || !quiet {
        eprintln!("{}", super::output::built_line(built));
    }
    let mut notes: Vec<String> = built.pushed.iter().map(|p| format!("pushed {p}")).collect();
    if let Some((req, client)) = push {
        let events = solver::EventSink::none();
        let pushed = rt.block_on(builder::push::push(
            &client,
            &into.store,
            req,
            // Referrer attestations stay on the daemon: only the index came here.
            (&built.image, &[]),
            &events,
            None,
        ))?;
        notes.extend(pushed.iter().map(|p| format!("pushed {p}")));
    }
    let emitted = outputs.emit(&into.store, built, true, quiet, &mut notes);
    for n in notes {
        eprintln!("{n}");
    }
    emitted
}

/// The result of a build on one node that stays in its daemon's store (or was
/// pushed by it).
fn report_one(
    outputs: &Plan,
    done: &Done,
    push_only: bool,
    quiet: bool,
    extra: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    if !push_only {
        eprintln!(
            "WARNING: no output specified with the remote builder: the result stays in the \
             daemon's store (name it with -t, give -o, or --push it)"
        );
    }
    if !quiet {
        eprintln!(
            "built {} ({} platform(s))",
            done.index.digest,
            done.manifests.len()
        );
    }
    for p in &done.pushed {
        eprintln!("pushed {p}");
    }
    outputs.report(&done.index, done.config.as_deref(), extra, quiet)
}

/// The `--metadata-file` provenance keys of the image the daemon pushed as `pushed`
/// (`NAME@DIGEST`), from its attestations in the registry.
async fn pushed_provenance(
    global: &Global,
    pushed: &str,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let reference = Reference::parse(pushed).with_context(|| format!("pushed {pushed:?}"))?;
    let client = client(global)?;
    let fetched = client.get_manifest(&reference).await?;
    let statements = client.attestation_statements(&reference, &fetched).await?;
    let entries = match &fetched.document {
        oci::document::ManifestOrIndex::Index(i) => i.value().manifests.clone(),
        oci::document::ManifestOrIndex::Manifest(_) => vec![fetched.descriptor.clone()],
    };
    Ok(super::output::provenance_keys(&entries, &statements))
}

/// Several nodes that pushed: one index over their parts, pushed under each tag.
fn push_combined(
    global: &Global,
    rt: &tokio::runtime::Runtime,
    outputs: &Plan,
    tags: &[Reference],
    parts: &[Done],
    platforms: usize,
    quiet: bool,
) -> anyhow::Result<()> {
    let client = client(global)?;
    let store = super::open_store(global)?;
    let combined = rt.block_on(remote::nodes::push_combined(
        &client,
        &store,
        tags,
        parts,
        export::annotation::Annotations(&outputs.annotations).index(),
    ))?;
    if let Some(d) = combined {
        if !quiet {
            eprintln!(
                "built {} ({} platform(s) on {} nodes)",
                d.digest,
                platforms,
                parts.len()
            );
        }
        outputs.report(&d, None, Default::default(), quiet)?;
    }
    Ok(())
}
