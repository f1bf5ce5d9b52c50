//! One build over the nodes of a builder instance, on the client's side: what each
//! node runs ([`ask`]), which node builds which platforms ([`route`]: a node that
//! runs it natively, declared with `create --platform` or reported, else the
//! least-loaded node that emulates it), the call each node gets ([`call`]), all of
//! them at once ([`build_all`]), and one index over their parts ([`combine`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci::{Descriptor, Platform, PlatformMatcher, Reference};
use registry::CredentialSource;
use solver::EventSink;

use crate::RemoteError;
use crate::client::{BuildHandle, Fetch, build, check_protocol, info};
use crate::instances::Node;
use crate::protocol::{BuildCall, Done, Info, LayoutContext, RegistryCredential};

/// Why a build could not be split over the nodes, or its parts not combined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodesError {
    #[error("no node of this builder runs {platform}{}", not_answering(.down))]
    NoNode {
        /// The platform, as written (`linux/arm64`).
        platform: String,
        /// The nodes that did not answer, with why.
        down: Vec<String>,
    },
    #[error("node {node} of the builder")]
    Node {
        node: String,
        #[source]
        source: RemoteError,
    },
    #[error("cannot read build context {}", .dir.display())]
    Context {
        dir: PathBuf,
        #[source]
        source: Box<crate::sync::SyncError>,
    },
    #[error("--build-context {name}: cannot read its OCI layout")]
    Layout {
        name: String,
        #[source]
        source: Box<crate::transfer::TransferError>,
    },
    #[error("invalid ignore patterns: {message}")]
    Ignore { message: String },
    #[error("cannot read the docker config's credentials")]
    Credentials(#[source] registry::credentials::CredentialError),
    #[error("the image {digest} from a node is neither an index nor a manifest")]
    NotAnImage { digest: oci::Digest },
    #[error("cannot combine the nodes' images into one index")]
    Combine(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn not_answering(down: &[String]) -> String {
    match down.is_empty() {
        true => String::new(),
        false => format!("; not answering: {}", down.join(", ")),
    }
}

impl NodesError {
    /// How to fix it, when that is known.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            NodesError::NoNode { .. } => Some(
                "add a node that runs it (manifold create --append --platform …), \
                 or register QEMU on a node (manifold binfmt install)",
            ),
            _ => None,
        }
    }
}

/// A node and what it answered (or why it did not).
pub type Answer = (Node, Result<Info, RemoteError>);

/// Ask every node what it runs, one after the other, each within 10 s; a node that
/// speaks another protocol fails the build, naming both versions.
pub async fn ask(nodes: &[Node]) -> Result<Vec<Answer>, NodesError> {
    let mut out = Vec::new();
    for n in nodes {
        let ep = n
            .endpoint
            .clone()
            .expect("invariant: remote nodes have endpoints");
        let t = n.tls_files();
        let r = tokio::time::timeout(Duration::from_secs(10), info(&ep, t.as_ref()))
            .await
            .unwrap_or_else(|_| {
                Err(RemoteError::Protocol {
                    endpoint: ep.to_string(),
                    message: "no answer within 10 s".into(),
                })
            });
        if let Ok(info) = &r {
            check_protocol(&ep, info).map_err(|source| NodesError::Node {
                node: n.name.clone(),
                source,
            })?;
        }
        out.push((n.clone(), r));
    }
    Ok(out)
}

/// Which node builds which platforms, by index into `nodes`. Nodes that do not
/// answer are left out (and named when a platform then has nowhere to go).
pub fn route(
    nodes: &[Answer],
    wanted: &[Platform],
) -> Result<BTreeMap<usize, Vec<Platform>>, NodesError> {
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
            let info = info.as_ref().expect("invariant: only nodes that answered");
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
                return Err(NodesError::NoNode {
                    platform: p.to_string(),
                    down,
                });
            }
        }
    }
    Ok(plan)
}

/// Where the client reads what a daemon asks for.
#[derive(Debug, Clone)]
pub struct LocalContexts {
    /// The directory of each context, by the name the daemon asks for it by.
    pub dirs: Vec<(String, PathBuf)>,
    /// The OCI layout of each of the call's layouts, in order.
    pub layouts: Vec<content::Store>,
}

/// The call every node gets (before its platforms and outputs are set): `request`,
/// with the file lists of its local context directories `dirs` (listed through the
/// context index under `state`) and the blobs of its `oci-layout://` images; and
/// where the client reads them.
pub fn call(
    request: builder::BuildRequest,
    dirs: Vec<(String, PathBuf)>,
    layouts: Vec<(String, content::Store, Descriptor)>,
    credentials: Vec<RegistryCredential>,
    state: &Path,
) -> Result<(BuildCall, LocalContexts), NodesError> {
    let excludes = &request.options.context_excludes;
    let matcher = match excludes.is_empty() {
        true => None,
        false => {
            let bad = |e: &dyn std::fmt::Display| NodesError::Ignore {
                message: e.to_string(),
            };
            let patterns = ignore::parse_ignore_file(&excludes.join("\n")).map_err(|e| bad(&e))?;
            Some(ignore::Matcher::new(patterns).map_err(|e| bad(&e))?)
        }
    };
    let mut call = BuildCall::new(request);
    call.credentials = credentials;
    for (n, d) in &dirs {
        let m = if n == "context" {
            matcher.as_ref()
        } else {
            None
        };
        call.contexts
            .push(
                crate::sync::manifest(n, d, m, state).map_err(|source| NodesError::Context {
                    dir: d.clone(),
                    source: Box::new(source),
                })?,
            );
    }
    let mut stores = Vec::new();
    for (name, layout, root) in layouts {
        // The chosen image goes with the build (the blobs the daemon lacks).
        let blobs = crate::transfer::tree(&layout, &root).map_err(|source| NodesError::Layout {
            name: name.clone(),
            source: Box::new(source),
        })?;
        call.layouts.push(LayoutContext { name, root, blobs });
        stores.push(layout);
    }
    let local = LocalContexts {
        dirs,
        layouts: stores,
    };
    Ok((call, local))
}

/// Registries a build of `dockerfile` tagged `tags` may need credentials for: the
/// tags', and those named in `FROM` lines (without variables).
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

/// The user name and password of the docker config for each registry the build may
/// need (see [`registries`]), for this build only.
pub fn credentials(
    dockerfile: &str,
    tags: &[Reference],
) -> Result<Vec<RegistryCredential>, NodesError> {
    let docker = registry::DockerConfig::load(&registry::credentials::default_config_dir())
        .map_err(NodesError::Credentials)?;
    let mut credentials = Vec::new();
    for reg in registries(dockerfile, tags) {
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
#[derive(Debug)]
pub struct Job<'a> {
    pub nodes: &'a [Node],
    pub plan: &'a BTreeMap<usize, Vec<Platform>>,
    pub base: &'a BuildCall,
    pub local: &'a LocalContexts,
    pub fetch_into: &'a Option<Fetch>,
    /// The first tag's repository: several nodes that only push push their parts
    /// there by digest, for the client to combine.
    pub push_repository: Option<String>,
}

/// Run `job` on its nodes at once, their progress into `events`, and wait for all
/// of them; each node's name with its result. Dropping the future drops the
/// connections, which cancels the builds on the daemons.
///
/// With several nodes, a node does not push to the request's names: it pushes its
/// part by digest to [`Job::push_repository`] when the build only pushes, else it
/// sends its part back and the client pushes the combined index.
pub async fn build_all(
    job: Job<'_>,
    events: &EventSink,
) -> Vec<(String, Result<Done, RemoteError>)> {
    let multi = job.plan.len() > 1;
    let mut set = tokio::task::JoinSet::new();
    for (i, ps) in job.plan {
        let node = job.nodes[*i].clone();
        let mut call = job.base.clone();
        call.request.options.platforms = ps.clone();
        if multi {
            part_outputs(&mut call.request, job.push_repository.as_deref());
        }
        let handle = BuildHandle {
            call,
            dirs: job.local.dirs.clone(),
            layouts: job.local.layouts.clone(),
            fetch: job.fetch_into.clone(),
        };
        let sink: EventSink = events.clone();
        set.spawn(async move {
            let ep = node
                .endpoint
                .clone()
                .expect("invariant: remote nodes have endpoints");
            let t = node.tls_files();
            let r = build(&ep, t.as_ref(), handle, move |e| {
                if let Some(ev) = e.into_event() {
                    sink.emit(ev);
                }
            })
            .await;
            (node.name.clone(), r)
        });
    }
    let mut out = Vec::new();
    while let Some(j) = set.join_next().await {
        if let Ok(r) = j {
            out.push(r);
        }
    }
    out
}

/// The outputs of one node's part of a build split over several: pushes by digest
/// to `repository` when given (the build only pushes), else no push at all (the part
/// comes back, and the client pushes the whole).
/// The index and its descriptor are the client's to annotate: a node's part may be
/// one platform's manifest.
fn part_outputs(req: &mut builder::BuildRequest, repository: Option<&str>) {
    use export::annotation::Level;
    use export::output::{Kind, Output};
    req.export
        .annotations
        .retain(|a| matches!(a.level, Level::Manifest | Level::ManifestDescriptor));
    for o in &mut req.outputs {
        o.annotations.clear();
    }
    match repository {
        Some(repo) => {
            req.outputs = vec![Output {
                names: vec![repo.to_owned()],
                push_by_digest: true,
                ..Output::push()
            }];
        }
        None => {
            for o in &mut req.outputs {
                if o.kind == (Kind::Image { push: true }) {
                    o.kind = Kind::Image { push: false };
                }
            }
        }
    }
}

/// Several nodes' parts, pushed by digest to the first tag's repository: one index
/// over them, pushed under each tag with `client` (blobs the store lacks are read
/// from the registry). The index, as pushed.
pub async fn push_combined(
    client: &registry::Client,
    store: &content::Store,
    tags: &[Reference],
    parts: &[Done],
    index_annotations: BTreeMap<String, String>,
) -> Result<Option<Descriptor>, NodesError> {
    let Some(first) = tags.first() else {
        return Ok(None);
    };
    use registry::create::{CreateOptions, Source, SourceSpec};
    // As descriptors: a node's one-platform manifest keeps its entry's annotations.
    let sources: Vec<Source> = parts
        .iter()
        .map(|d| Source::new(SourceSpec::Descriptor(d.index.clone()), first, None))
        .collect();
    let opts = CreateOptions {
        index_annotations,
        ..CreateOptions::default()
    };
    let fail = |e: registry::RegistryError| NodesError::Combine(Box::new(e));
    let created = client
        .create(store, &sources, first, &opts)
        .await
        .map_err(fail)?;
    for t in &tags[1..] {
        client
            .tag_created(store, &created, first, t)
            .await
            .map_err(fail)?;
    }
    Ok(Some(created.descriptor))
}

/// The build result in the client's store: one node's image as it is, or one index
/// over the nodes' manifests, in the order the platforms were asked for.
pub fn combine(
    store: &content::Store,
    lease: &content::Lease,
    parts: Vec<Done>,
    wanted: &[Platform],
    index_annotations: BTreeMap<String, String>,
) -> Result<builder::BuildOutput, NodesError> {
    if let [one] = parts.as_slice() {
        return Ok(builder::BuildOutput {
            image: one.index.clone(),
            config: one.config.as_deref().cloned(),
            manifests: one.manifests.clone(),
            warnings: Vec::new(),
            recompressed: None,
            pushed: one.pushed.clone(),
        });
    }
    let mut manifests = Vec::new();
    for p in &parts {
        let bytes = store
            .read_document(&p.index.digest)
            .map_err(|e| NodesError::Combine(Box::new(e)))?;
        match oci::document::ManifestOrIndex::parse(&p.index.media_type, bytes) {
            Ok(oci::document::ManifestOrIndex::Index(i)) => {
                manifests.extend(i.value().manifests.iter().cloned());
            }
            Ok(oci::document::ManifestOrIndex::Manifest(_)) => manifests.push(p.index.clone()),
            Err(_) => {
                return Err(NodesError::NotAnImage {
                    digest: p.index.digest.clone(),
                });
            }
        }
    }
    let rank = |m: &Descriptor| {
        m.platform.as_ref().map_or(usize::MAX, |q| {
            wanted
                .iter()
                .position(|w| PlatformMatcher::only(w).matches(q))
                .unwrap_or(usize::MAX)
        })
    };
    // Images in the order asked for; each node's attestations (unknown/unknown)
    // after them, as one build orders its index.
    manifests.sort_by_key(rank);
    let index = export::assemble_index(store, lease, manifests.clone(), index_annotations)
        .map_err(|e| NodesError::Combine(Box::new(e)))?;
    manifests.retain(|m| !export::attest::is_attestation(m));
    Ok(builder::BuildOutput {
        image: index,
        config: None,
        manifests,
        warnings: Vec::new(),
        recompressed: None,
        pushed: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    fn node(name: &str, declared: &[&str]) -> Node {
        Node {
            name: name.into(),
            endpoint: Some(Endpoint::parse(&format!("unix:///run/{name}.sock")).unwrap()),
            platforms: declared
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
            tls: None,
        }
    }

    fn info(native: &[&str], emulated: &[&str]) -> Result<Info, RemoteError> {
        Ok(Info {
            version: "x".into(),
            protocol: crate::protocol::PROTOCOL,
            native: native.iter().map(|s| s.to_string()).collect(),
            emulated: emulated.iter().map(|s| s.to_string()).collect(),
            snapshotter: "copy".into(),
            cache_bytes: 0,
            running: 0,
        })
    }

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn platforms_go_to_native_nodes_first_then_the_least_loaded_emulator() {
        let nodes = vec![
            (
                node("amd", &[]),
                info(&["linux/amd64"], &["linux/arm64", "linux/riscv64"]),
            ),
            (node("arm", &["linux/arm64"]), info(&[], &["linux/riscv64"])),
            (
                node("gone", &["linux/s390x"]),
                Err(RemoteError::Protocol {
                    endpoint: "unix:///run/gone.sock".into(),
                    message: "no answer within 10 s".into(),
                }),
            ),
        ];
        let plan = route(
            &nodes,
            &[p("linux/amd64"), p("linux/arm64"), p("linux/riscv64")],
        )
        .unwrap();
        // amd64 runs natively on `amd`, arm64 is declared on `arm`; riscv64 is
        // emulated by both, which have one platform each then: the first of them.
        assert_eq!(plan[&0], [p("linux/amd64"), p("linux/riscv64")]);
        assert_eq!(plan[&1], [p("linux/arm64")]);
        // With `amd` busier, the emulated platform goes to `arm`.
        let plan = route(
            &nodes,
            &[p("linux/amd64"), p("linux/386"), p("linux/riscv64")],
        );
        assert!(plan.is_err(), "386 is run by no node: {plan:?}");
        let plan = route(
            &nodes,
            &[p("linux/amd64"), p("linux/amd64"), p("linux/riscv64")],
        )
        .unwrap();
        assert_eq!(plan[&1], [p("linux/riscv64")]);
        // The declared node that is down cannot take its platform; it is named.
        let e = route(&nodes, &[p("linux/s390x")]).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("no node of this builder runs linux/s390x"),
            "{shown}"
        );
        assert!(
            shown.contains("not answering: gone (builder daemon at"),
            "{shown}"
        );
        assert!(e.hint().is_some());
    }

    #[test]
    fn a_part_pushes_by_digest_or_not_at_all() {
        use export::output::{Kind, Output};
        let mut req = builder::BuildRequest {
            tags: vec!["r.example/app:1".into()],
            outputs: vec![
                Output::push(),
                Output {
                    kind: Kind::Tar,
                    dest: Some(export::output::Dest::Stdout),
                    ..Output::push()
                },
            ],
            ..builder::BuildRequest::default()
        };
        let mut only_push = req.clone();
        part_outputs(&mut only_push, Some("r.example/app"));
        assert_eq!(only_push.outputs.len(), 1);
        assert!(only_push.outputs[0].push_by_digest);
        assert!(!only_push.needs_client());
        part_outputs(&mut req, None);
        assert_eq!(req.outputs[0].kind, Kind::Image { push: false });
        assert!(req.needs_client());
    }

    #[test]
    fn credentials_go_to_the_registries_of_the_tags_and_from_lines() {
        let tags = [Reference::parse("r.example:5000/app:1").unwrap()];
        let got = registries(
            "FROM --platform=$BUILDPLATFORM other.example/base:1 AS b\n\
             FROM scratch\nFROM ${BASE}\nfrom docker.io/library/alpine\n",
            &tags,
        );
        let want: BTreeSet<String> = ["r.example:5000", "other.example", "docker.io"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(got, want);
    }
}
