//! `manifold build` on a remote builder: each platform goes to a node that runs it
//! natively (declared with `create --platform`, or reported by the daemon), else to
//! the least-loaded node that emulates it. Nodes build in parallel.
//!
//! Where the result goes: with only `--push`, each daemon pushes (several nodes push
//! their parts by digest and the client combines one index in the registry). Any
//! other output (`-o`, `--load`, `-t` into the local store) fetches each node's image
//! into the client's store (only the blobs it lacks, each verified), combines the
//! parts into one index there, and runs the same exporters as a build in this
//! process ([`super::output::Plan::emit`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use oci::{Platform, PlatformMatcher, Reference};
use registry::CredentialSource;
use remote::protocol::{BuildCall, Done, LayoutContext, RegistryCredential};
use solver::EventSink;

use super::output::Plan;
use super::registry::client;
use super::request::Inputs;
use crate::cli::{BuildArgs, Global};
use crate::instances::{Instance, Node};
use crate::render::Hinted;

fn tls(node: &Node) -> Option<remote::TlsFiles> {
    node.tls.as_ref().map(|t| remote::TlsFiles {
        ca: t.ca.clone(),
        cert: t.cert.clone(),
        key: t.key.clone(),
    })
}

/// Which node builds which platforms. Nodes that do not answer are left out (and
/// named when a platform then has nowhere to go).
fn route(
    nodes: &[(Node, Result<remote::Info, remote::RemoteError>)],
    wanted: &[Platform],
) -> anyhow::Result<BTreeMap<usize, Vec<Platform>>> {
    let up: Vec<usize> = (0..nodes.len()).filter(|i| nodes[*i].1.is_ok()).collect();
    let down: Vec<String> = nodes
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{} ({e})", n.name)))
        .collect();
    let mut plan: BTreeMap<usize, Vec<Platform>> = BTreeMap::new();
    for p in wanted {
        let m = PlatformMatcher::only(p);
        let runs = |i: &usize, emulated: bool| {
            let (node, info) = &nodes[*i];
            let info = info.as_ref().expect("only nodes that answered");
            let list = if emulated {
                &info.emulated
            } else {
                &info.native
            };
            node.platforms.iter().any(|d| m.matches(d)) && !emulated
                || list
                    .iter()
                    .filter_map(|s| Platform::parse(s).ok())
                    .any(|q| m.matches(&q))
        };
        let load = |i: &usize| plan.get(i).map_or(0, Vec::len);
        let native = up.iter().filter(|i| runs(i, false)).min_by_key(|i| load(i));
        let chosen = native
            .or_else(|| up.iter().filter(|i| runs(i, true)).min_by_key(|i| load(i)))
            .copied();
        match chosen {
            Some(i) => plan.entry(i).or_default().push(p.clone()),
            None => {
                let why = if down.is_empty() {
                    String::new()
                } else {
                    format!("; not answering: {}", down.join(", "))
                };
                bail!(Hinted::new(
                    format!("no node of this builder runs {p}{why}"),
                    "add a node that runs it (manifold create --append --platform …), \
                     or register QEMU on a node (manifold binfmt install)",
                ));
            }
        }
    }
    Ok(plan)
}

/// Registries the build may need credentials for: the tags', and those named
/// in `FROM` lines (without variables).
fn registries(dockerfile: &str, tags: &[Reference]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = tags.iter().map(|t| t.registry().to_owned()).collect();
    for line in dockerfile.lines() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        if let Some(image) = words.find(|w| !w.starts_with("--"))
            && !image.contains('$')
            && image != "scratch"
            && let Ok(r) = Reference::parse(image)
        {
            out.insert(r.registry().to_owned());
        }
    }
    out
}

pub fn run(
    global: &Global,
    args: &BuildArgs,
    name: &str,
    src: String,
    instance: Instance,
) -> anyhow::Result<ExitCode> {
    let nodes = remote_nodes(&instance)?;
    let outputs = Plan::from_args(args)?;
    let (request, inputs) = super::request::request(args, name, &src, &outputs)?;
    let tags: Vec<Reference> = request
        .tags
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<anyhow::Result<_>>()?;
    let push_only = outputs.push_only();
    let fetch = outputs.needs_image();
    let mut wanted = request.options.platforms.clone();
    if wanted.is_empty() {
        wanted.push(Platform::host());
    }
    let rt = super::runtime()?;
    let infos = rt.block_on(ask_nodes(&nodes))?;
    let plan = route(&infos, &wanted)?;
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
    let credentials = credentials(&src, &tags)?;
    let (call, local) = call(global, request, inputs, credentials)?;
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
    let job = Job {
        nodes: &nodes,
        plan: &plan,
        base: &call,
        local: &local,
        fetch_into: &fetch_into,
        tags: &tags,
        push_only,
    };
    let results = rt.block_on(build_on_nodes(job, &events));
    printer.finish();
    let results = results?;
    let mut parts = Vec::new();
    for (node, r) in results {
        let done = r.with_context(|| format!("the build on node {node} failed"))?;
        parts.push(done);
    }
    if let Some(into) = &fetch_into {
        let built = combine(&into.store, &into.lease, parts, &wanted)?;
        let push = match multi {
            true => Some((&call.request, client(global)?)),
            false => None,
        };
        emit_fetched(&rt, &outputs, into, &built, push, quiet)?;
    } else if !multi {
        report_one(&outputs, &parts[0], push_only, quiet)?;
    } else {
        push_combined(global, &rt, &outputs, &tags, &parts, wanted.len(), quiet)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The nodes of `instance` that are reached over the network.
fn remote_nodes(instance: &Instance) -> anyhow::Result<Vec<Node>> {
    let nodes: Vec<Node> = instance
        .nodes
        .iter()
        .filter(|n| n.endpoint.is_some())
        .cloned()
        .collect();
    if nodes.is_empty() {
        bail!("builder {} has no remote node", instance.name);
    }
    Ok(nodes)
}

/// Ask every node what it runs, one after the other, each within 10 s; a node that
/// speaks another protocol fails the build, naming both versions.
async fn ask_nodes(
    nodes: &[Node],
) -> anyhow::Result<Vec<(Node, Result<remote::Info, remote::RemoteError>)>> {
    let mut out = Vec::new();
    for n in nodes {
        let ep = n.endpoint.clone().expect("remote nodes have endpoints");
        let t = tls(n);
        let r = tokio::time::timeout(Duration::from_secs(10), remote::info(&ep, t.as_ref()))
            .await
            .unwrap_or_else(|_| {
                Err(remote::RemoteError::Protocol {
                    endpoint: ep.to_string(),
                    message: "no answer within 10 s".into(),
                })
            });
        if let Ok(info) = &r {
            remote::check_protocol(&ep, info)
                .with_context(|| format!("node {} of the builder", n.name))?;
        }
        out.push((n.clone(), r));
    }
    Ok(out)
}

/// Where the client reads what the daemon asks for.
struct LocalContexts {
    /// The directory of each context, by the name the daemon asks for it by.
    dirs: Vec<(String, PathBuf)>,
    /// The OCI layout of each of the call's layouts, in order.
    layouts: Vec<content::Store>,
}

/// The call every node gets (before its platforms and outputs are set): `request`,
/// with the file lists of its local contexts and the blobs of its `oci-layout://`
/// images; and where the client reads them.
fn call(
    global: &Global,
    request: builder::BuildRequest,
    inputs: Inputs,
    credentials: Vec<RegistryCredential>,
) -> anyhow::Result<(BuildCall, LocalContexts)> {
    let state = super::state_root(global)
        .unwrap_or_else(|_| std::env::temp_dir().join("manifold"))
        .join("contexts");
    let excludes = &request.options.context_excludes;
    let matcher = if excludes.is_empty() {
        None
    } else {
        Some(dockerfile::ignore::Matcher::new(
            dockerfile::ignore::parse_ignore_file(&excludes.join("\n"))?,
        )?)
    };
    let mut call = BuildCall::new(request);
    call.credentials = credentials;
    for (n, d) in &inputs.dirs {
        let m = if n == "context" {
            matcher.as_ref()
        } else {
            None
        };
        call.contexts.push(
            remote::sync::manifest(n, d, m, &state)
                .with_context(|| format!("cannot read build context {}", d.display()))?,
        );
    }
    let mut layouts = Vec::new();
    for (name, layout, root) in inputs.layouts {
        // The chosen image goes with the build (the blobs the daemon lacks).
        let blobs = remote::transfer::tree(&layout, &root)
            .with_context(|| format!("--build-context {name}: cannot read its OCI layout"))?;
        call.layouts.push(LayoutContext { name, root, blobs });
        layouts.push(layout);
    }
    let local = LocalContexts {
        dirs: inputs.dirs,
        layouts,
    };
    Ok((call, local))
}

/// The user name and password of the docker config for each registry the build
/// may need (see [`registries`]).
fn credentials(src: &str, tags: &[Reference]) -> anyhow::Result<Vec<RegistryCredential>> {
    let docker = registry::DockerConfig::load(&registry::credentials::default_config_dir())?;
    let mut credentials = Vec::new();
    for reg in registries(src, tags) {
        if let Ok(registry::Credential::Basic { username, password }) = docker.credential(&reg) {
            credentials.push(RegistryCredential {
                registry: reg,
                username,
                password: password.expose().to_owned(),
            });
        }
    }
    Ok(credentials)
}

/// One build split over the nodes of [`route`]'s plan.
struct Job<'a> {
    nodes: &'a [Node],
    plan: &'a BTreeMap<usize, Vec<Platform>>,
    base: &'a BuildCall,
    local: &'a LocalContexts,
    fetch_into: &'a Option<remote::Fetch>,
    tags: &'a [Reference],
    /// Pushing is all there is to do: the daemons push (by digest when there are
    /// several nodes, for the client to combine), and nothing comes back.
    push_only: bool,
}

/// Run `job` on its nodes at once, their progress into `events`, and wait for all
/// of them; each node's name with its result. Ctrl-C drops the connections, which
/// cancels the builds on the daemons.
async fn build_on_nodes(
    job: Job<'_>,
    events: &EventSink,
) -> anyhow::Result<Vec<(String, Result<Done, remote::RemoteError>)>> {
    let multi = job.plan.len() > 1;
    let mut set = tokio::task::JoinSet::new();
    for (i, ps) in job.plan {
        let node = job.nodes[*i].clone();
        let mut call = job.base.clone();
        call.request.options.platforms = ps.clone();
        if job.push_only && multi {
            // Each node pushes its part by digest; the client combines them.
            let first = &job.tags[0];
            call.request.outputs = vec![export::output::Output {
                names: vec![format!("{}/{}", first.registry(), first.repository())],
                push_by_digest: true,
                ..export::output::Output::push()
            }];
        } else if multi {
            // Each node sends its part back; the client combines them and pushes
            // the whole.
            for o in &mut call.request.outputs {
                if o.kind == (export::output::Kind::Image { push: true }) {
                    o.kind = export::output::Kind::Image { push: false };
                }
            }
        }
        let handle = remote::BuildHandle {
            call,
            dirs: job.local.dirs.clone(),
            layouts: job.local.layouts.clone(),
            fetch: job.fetch_into.clone(),
        };
        let sink: EventSink = events.clone();
        set.spawn(async move {
            let ep = node.endpoint.clone().expect("remote nodes have endpoints");
            let t = tls(&node);
            let r = remote::build(&ep, t.as_ref(), handle, move |e| {
                if let Some(ev) = e.into_event() {
                    sink.emit(ev);
                }
            })
            .await;
            (node.name.clone(), r)
        });
    }
    let mut out = Vec::new();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            // Dropping the connections cancels the builds on the daemons.
            set.abort_all();
            return Err(anyhow::anyhow!("build cancelled"));
        }
        () = async {
            while let Some(j) = set.join_next().await {
                if let Ok(r) = j {
                    out.push(r);
                }
            }
        } => {}
    }
    Ok(out)
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
        eprintln!("{}", super::build::built_line(built));
    }
    let mut notes: Vec<String> = built.pushed.iter().map(|p| format!("pushed {p}")).collect();
    if let Some((req, client)) = push {
        let events = solver::EventSink::none();
        let pushed = rt.block_on(builder::push::push(
            &client,
            &into.store,
            req,
            &built.index,
            &events,
            None,
        ))?;
        notes.extend(pushed.iter().map(|p| format!("pushed {p}")));
    }
    let emitted = outputs.emit(&into.store, &built.index, true, quiet, &mut notes);
    for n in notes {
        eprintln!("{n}");
    }
    emitted
}

/// The result of a build on one node that stays in its daemon's store (or was
/// pushed by it).
fn report_one(outputs: &Plan, done: &Done, push_only: bool, quiet: bool) -> anyhow::Result<()> {
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
    outputs.report(&done.index, quiet)
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
    let sources: Vec<Reference> = parts
        .iter()
        .map(|d| tags[0].with_digest(d.index.digest.clone()))
        .collect();
    let mut combined = None;
    for t in tags {
        let index = rt
            .block_on(client.create_index(&store, &sources, t, false, BTreeMap::new(), false))
            .with_context(|| format!("cannot combine the nodes' images into {t}"))?;
        let media_type = index
            .value()
            .media_type
            .clone()
            .unwrap_or_else(|| oci::media::OCI_INDEX.to_owned());
        combined = Some(oci::Descriptor::for_bytes(&media_type, index.bytes()));
    }
    if let Some(d) = combined {
        if !quiet {
            eprintln!(
                "built {} ({} platform(s) on {} nodes)",
                d.digest,
                platforms,
                parts.len()
            );
        }
        outputs.report(&d, quiet)?;
    }
    Ok(())
}

/// The build result in the client's store: one node's image as it is, or one index
/// over the nodes' manifests, in the order the platforms were asked for.
fn combine(
    store: &content::Store,
    lease: &content::Lease,
    parts: Vec<Done>,
    wanted: &[Platform],
) -> anyhow::Result<builder::BuildOutput> {
    if let [one] = parts.as_slice() {
        return Ok(builder::BuildOutput {
            index: one.index.clone(),
            manifests: one.manifests.clone(),
            warnings: Vec::new(),
            recompressed: None,
            pushed: one.pushed.clone(),
        });
    }
    let mut manifests = Vec::new();
    for p in &parts {
        let bytes = store.read_document(&p.index.digest)?;
        match oci::document::ManifestOrIndex::parse(&p.index.media_type, bytes) {
            Ok(oci::document::ManifestOrIndex::Index(i)) => {
                manifests.extend(i.value().manifests.iter().cloned());
            }
            _ => bail!("the image {} from a node is not an index", p.index.digest),
        }
    }
    let rank = |m: &oci::Descriptor| {
        m.platform.as_ref().map_or(usize::MAX, |q| {
            wanted
                .iter()
                .position(|w| PlatformMatcher::only(w).matches(q))
                .unwrap_or(usize::MAX)
        })
    };
    manifests.sort_by_key(rank);
    let index = export::assemble_index(store, lease, manifests.clone(), BTreeMap::new())
        .context("cannot combine the nodes' images into one index")?;
    Ok(builder::BuildOutput {
        index,
        manifests,
        warnings: Vec::new(),
        recompressed: None,
        pushed: Vec::new(),
    })
}
