//! One build: Dockerfile → graph → solve → images in the store, one index per build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use content::Store;
use export::{BaseImage, ImageOptions, LayerDesc, LayerOptions};
use graph::Graph;
use graph::op::Op;
use oci::{Descriptor, Digest, ImageConfig, Platform};
use solver::CancellationToken;
use solver::{CacheStore, EventSink, Phase, SolveOptions, Solver, SolverConfig};
use worker::exec::Executor;
use worker::snapshot::Snapshotter;

use crate::base::{BaseImages, read_config};
use crate::error::BuildError;
use crate::refs::{FsRef, Ref};
use crate::request::{BuildRequest, ExportOptions, Session};
use crate::runner::{Runner, StepInputs};

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The image: its manifest when it has one platform and no attestations (as
    /// BuildKit makes it), else the index of all platforms' manifests.
    pub image: Descriptor,
    /// The image config, when `image` is a manifest (`containerimage.config.digest`).
    pub config: Option<Descriptor>,
    /// One manifest per platform, in the order of the request.
    pub manifests: Vec<Descriptor>,
    /// Parser warnings (the build checks' went out as events).
    pub warnings: Vec<dockerfile::parser::Diagnostic>,
    /// `force-compression` rewrote base layers into this compression (`index` is
    /// the rewritten image's).
    pub recompressed: Option<export::Compression>,
    /// What was pushed, as `NAME@DIGEST`.
    pub pushed: Vec<String>,
}

/// Why a build failed, by phase.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildFailure {
    #[error(transparent)]
    Frontend(#[from] frontend::FrontendError),
    #[error(transparent)]
    Platform(#[from] worker::binfmt::BinfmtError),
    #[error(transparent)]
    Solve(#[from] solver::SolveError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The machinery builds run on: a store, its snapshots, an executor and a
/// registry client. One per process.
pub struct Builder {
    store: Store,
    snapshotter: Arc<dyn Snapshotter>,
    executor: Arc<dyn Executor>,
    client: Option<registry::Client>,
    parallelism: usize,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("store", &self.store.root())
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub fn new(
        store: Store,
        snapshotter: Arc<dyn Snapshotter>,
        executor: Arc<dyn Executor>,
        client: Option<registry::Client>,
    ) -> Builder {
        Builder {
            store,
            snapshotter,
            executor,
            client,
            parallelism: SolverConfig::default().parallelism,
        }
    }

    /// A builder on `store`'s root: the snapshot driver that root supports, and the
    /// OCI runtime `runtime` (a name on `PATH`, or a path) with its bundles there.
    pub fn on_root(
        store: Store,
        runtime: PathBuf,
        client: Option<registry::Client>,
    ) -> Result<Builder, BuildError> {
        let snapshotter: Arc<dyn Snapshotter> = worker::snapshot::detect(store.root())?.into();
        let mut runc = worker::RuncConfig::new(store.root().join("bundles"));
        runc.runtime = runtime;
        let executor = Arc::new(worker::Runc::new(runc));
        Ok(Builder::new(store, snapshotter, executor, client))
    }

    /// Run at most `n` ops at once.
    pub fn with_parallelism(mut self, n: usize) -> Builder {
        self.parallelism = n.max(1);
        self
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.store.root().join("cache")
    }

    /// Lower `req`'s Dockerfile to the build graph (base images resolved).
    pub async fn lower(&self, req: &BuildRequest) -> Result<frontend::Lowered, BuildFailure> {
        let resolver = BaseImages::for_build(
            self.store.clone(),
            self.client.clone(),
            req.pull,
            tokio::runtime::Handle::current(),
        );
        let src = req.dockerfile.clone();
        let opts = req.options.clone();
        tokio::task::spawn_blocking(move || frontend::lower(&src, &opts, &resolver))
            .await
            .map_err(|e| BuildError::Internal(format!("the frontend thread failed: {e}")))?
            .map_err(BuildFailure::from)
    }

    /// Build `req`: every platform's image into the store, one index over them,
    /// named by each tag.
    pub async fn build(
        &self,
        req: &BuildRequest,
        session: &Session,
        events: EventSink,
        cancel: CancellationToken,
    ) -> Result<BuildOutput, BuildFailure> {
        crate::cache_io::check_specs(&req.cache_to, &req.cache_from)?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let attestations = crate::provenance::requested(req).map_err(BuildError::Request)?;
        if attestations.any() && !req.export.oci_mediatypes {
            return Err(BuildError::Request(export::output::SpecError::new(
                "attestations are OCI manifests and cannot go in an index of Docker media types (oci-mediatypes=false)",
                "drop oci-mediatypes=false, or pass --provenance=false",
            ))
            .into());
        }
        let local_cache = req
            .cache_to
            .iter()
            .chain(&req.cache_from)
            .any(|c| c.kind == crate::request::CacheKind::Local);
        if session.for_remote_client && local_cache {
            return Err(BuildError::Request(export::output::SpecError::new(
                "a type=local cache is read and written where the build runs, not through a \
                 remote builder",
                "build with the local builder (--builder default) to use --cache-to/--cache-from",
            ))
            .into());
        }
        let lowered = self.lower(req).await;
        let checks = match &lowered {
            Ok(l) => l.checks.as_slice(),
            Err(BuildFailure::Frontend(frontend::FrontendError::ChecksFailed { warnings })) => {
                warnings.as_slice()
            }
            Err(_) => &[],
        };
        emit_checks(&events, &req.dockerfile, checks);
        let lowered = lowered?;
        let graph = lowered.graph;
        check_platforms(&graph)?;
        let mut roots: Vec<Digest> = graph.outputs().iter().map(|o| o.root.clone()).collect();
        // The stages whose SBOM is asked for are built too (BuildKit builds only the
        // stages the target needs, and so does this: they are among them).
        let sbom_stages = match attestations.sbom {
            true => lowered.sbom_stages.clone(),
            false => Vec::new(),
        };
        for (_, _, root) in &sbom_stages {
            if !roots.contains(root) {
                roots.push(root.clone());
            }
        }
        let opts = SolveOptions {
            no_cache: req.options.no_cache,
            cancel,
            events: events.clone(),
        };

        let tap = crate::push::push_tap(self.client.as_ref(), req)?;
        let attest_lease = match attestations.any() {
            true => Some(Arc::new(self.store.lease().map_err(BuildError::from)?)),
            false => None,
        };
        let attest = attest_lease.clone().map(|lease| AttestPlan {
            lease,
            wanted: attestations,
            request: req.clone(),
            graph: graph.clone(),
            started,
            times_dir: self.store.root().join("cache").join("provenance"),
            scan_context: req
                .options
                .build_arg("BUILDKIT_SBOM_SCAN_CONTEXT")
                .is_some_and(|v| export::output::parse_bool("", v) == Ok(true))
                .then(|| session.locals.get("context").map(|l| l.dir.clone()))
                .flatten(),
            contexts: BTreeMap::new(),
            sbom_stages,
        });
        let built = self
            .solve_and_export(req, session, &graph, &roots, &opts, (tap.as_ref(), attest))
            .await;
        let pushed = match built {
            Ok((ref image, _, _, ref referrers)) if !crate::push::push_targets(req)?.is_empty() => {
                let Some(client) = &self.client else {
                    return Err(BuildError::Offline {
                        reference: req.tags.first().cloned().unwrap_or_default(),
                    }
                    .into());
                };
                let r = crate::push::push(
                    client,
                    &self.store,
                    req,
                    (image, referrers),
                    &events,
                    tap.as_deref(),
                )
                .await;
                Some(r)
            }
            _ => None,
        };
        if let Some(tap) = &tap {
            // Uploads a failed build or push did not wait for.
            tap.abort();
        }
        let (image, manifests, recompressed, _) = built?;
        // The attestations' lease held until they were pushed.
        drop(attest_lease);
        let pushed = pushed.transpose()?.unwrap_or_default();
        let config = export::sink::config_of(&self.store, &image).map_err(BuildError::from)?;
        Ok(BuildOutput {
            image,
            config,
            manifests,
            warnings: lowered.warnings,
            recompressed: recompressed.then_some(req.export.compression),
            pushed,
        })
    }

    /// Solve `graph` for `roots` and export every platform's image and one index over
    /// them (layers through `tap`), named as `req` asks unless the build is for a
    /// remote client.
    async fn solve_and_export(
        &self,
        req: &BuildRequest,
        session: &Session,
        graph: &Graph,
        roots: &[Digest],
        opts: &SolveOptions,
        (tap, mut attest): (Option<&Arc<export::PushTap>>, Option<AttestPlan>),
    ) -> Result<Exported, BuildFailure> {
        let mut runner = Runner::new(
            self.store.clone(),
            self.snapshotter.clone(),
            self.executor.clone(),
            self.client.clone(),
            StepInputs {
                locals: session.locals.clone(),
                secrets: req.secrets.clone(),
                allow: req.allow,
            },
            req.pull,
        );
        let early = self.early_uploads(req)?;
        runner.early = early.as_ref().map(|(_, e)| e.clone());
        let cache =
            CacheStore::open(self.cache_dir()).map_err(|e| BuildFailure::Solve(e.into()))?;
        self.import_caches(req, &cache, &opts.events).await?;
        let solver = Solver::new(
            runner,
            cache.clone(),
            SolverConfig {
                parallelism: self.parallelism,
            },
        );
        let solved = solver.solve_keyed(graph, roots, opts).await?;
        if let Some(a) = attest.as_mut() {
            a.contexts = solver.runner().context_digests();
        }
        let results = solved.outputs;
        let keys: Vec<Digest> = solved.keys.into_values().collect();
        let inline = match req
            .cache_to
            .iter()
            .any(|c| c.kind == crate::request::CacheKind::Inline)
        {
            true => Some(crate::cache_io::records_of(&cache, &keys)?),
            false => None,
        };
        let store = self.store.clone();
        let snap = self.snapshotter.clone();
        let outputs = graph.outputs().to_vec();
        let export = req.export.clone();
        let tap = tap.map(|t| t.clone() as Arc<dyn export::LayerTap>);
        let names = match session.for_remote_client {
            true => Vec::new(),
            false => store_names(req),
        };
        let force = req.outputs.iter().any(|o| o.export.force);
        // Attestations in the index make it one; as referrers they stay out of it.
        let as_index =
            graph.outputs().len() > 1 || attest.as_ref().is_some_and(|a| !a.wanted.referrers);
        if !as_index {
            export::output::single_platform_annotations(&export.annotations)
                .map_err(BuildError::Request)?;
        }
        let phase = Phase::start(&opts.events, EXPORT_PHASE);
        let client = self.client.clone();
        // Only pushed: layers a lazy cache import left in a registry stay there (the
        // push mounts them); anything else needs them here.
        let lazy = !force && !req.needs_client();
        let exported = tokio::task::spawn_blocking(move || {
            let r = export_all(
                &store,
                (&*snap, client.as_ref(), lazy),
                &outputs,
                &results,
                How {
                    opts: &export,
                    tap: tap.as_deref(),
                    force,
                    as_index,
                    inline: inline.as_deref(),
                    attest: attest.as_ref(),
                },
                &names,
                &phase,
            );
            match &r {
                Ok(_) => phase.done(),
                Err(e) => phase.failed(e),
            }
            r
        })
        .await
        .map_err(|e| BuildError::Internal(format!("the export thread failed: {e}")))??;
        let mounts = crate::cache_io::cache_mounts_of(graph);
        self.export_caches(req, &cache, (&keys, &mounts), early, &opts.events)
            .await?;
        Ok(exported)
    }

    /// `--cache-from`: each cache read into this root before the solve, each a
    /// progress step; one that cannot be read is a warning on its step, and the
    /// build goes on without it.
    async fn import_caches(
        &self,
        req: &BuildRequest,
        records: &CacheStore,
        events: &EventSink,
    ) -> Result<(), BuildError> {
        use crate::cache_io::{ImportError, Place};
        for spec in &req.cache_from {
            let place = Place::of(spec, false);
            let shown = place.to_string();
            let phase = Phase::start(events, &format!("importing cache from {shown}"));
            let (store, records, client) =
                (self.store.clone(), records.clone(), self.client.clone());
            let handle = tokio::runtime::Handle::current();
            let r = tokio::task::spawn_blocking(move || {
                let (source, entry, _lease) = match &place {
                    Place::Local(dir) => {
                        let (layout, entry) = crate::cache_io::open_layout(dir)?;
                        (layout, entry, None)
                    }
                    Place::Registry(reference) => {
                        let read = |message: String| ImportError::Read {
                            dir: shown.clone(),
                            message,
                        };
                        let client = client
                            .as_ref()
                            .ok_or_else(|| read("no registry client".into()))?;
                        let top = handle
                            .block_on(client.get_manifest(reference))
                            .map_err(|e| read(solver::error_chain(&e)))?;
                        let is_cache = match &top.document {
                            oci::document::ManifestOrIndex::Index(i) => {
                                i.value().manifests.iter().any(|m| {
                                    m.artifact_type.as_deref()
                                        == Some(crate::cache_io::CACHE_ARTIFACT)
                                })
                            }
                            _ => false,
                        };
                        if !is_cache {
                            // An image: the cache its configs carry (type=inline).
                            return handle.block_on(crate::cache_io::import_inline(
                                &store, &records, client, reference, &top,
                            ));
                        }
                        let lease = store.lease().map_err(|e| read(e.to_string()))?;
                        // Documents only: layers are fetched when a build needs them.
                        let desc = handle
                            .block_on(crate::cache_io::fetch_documents(
                                &store, client, &lease, reference,
                            ))
                            .map_err(read)?;
                        (store.clone(), desc, Some(lease))
                    }
                };
                crate::cache_io::import(
                    &store,
                    &records,
                    (&source, &entry),
                    &shown,
                    client.as_ref(),
                )
            })
            .await
            .map_err(|e| BuildError::Internal(format!("the import thread failed: {e}")))?;
            match r {
                Ok(report) => phase.note(&report.line()),
                Err(e) => phase.note(&format!("warning: {e}; building without it")),
            }
            phase.done();
        }
        Ok(())
    }

    /// The uploads of the first `--cache-to type=registry`, begun as steps run: the
    /// index of its spec and the uploads.
    fn early_uploads(&self, req: &BuildRequest) -> Result<Option<EarlyPlan>, BuildError> {
        let (Some(client), Some((i, spec))) = (
            &self.client,
            req.cache_to
                .iter()
                .enumerate()
                .find(|(_, c)| c.kind == crate::request::CacheKind::Registry),
        ) else {
            return Ok(None);
        };
        let crate::cache_io::Place::Registry(target) = crate::cache_io::Place::of(spec, true)
        else {
            return Ok(None);
        };
        let lopts = layer_options(&crate::cache_io::encoding_for(spec, &req.export));
        let (store, snap) = (self.store.clone(), self.snapshotter.clone());
        let make = move |lease: &content::Lease, step: &str| {
            step_layer(&store, &*snap, lease, step, &lopts, None)
        };
        let early = crate::cache_early::EarlyUploads::new(
            client.clone(),
            &target,
            self.store.clone(),
            Box::new(make),
        )?;
        Ok(Some((i, early)))
    }

    /// `--cache-to`: each cache written after the image, each a progress step.
    async fn export_caches(
        &self,
        req: &BuildRequest,
        records: &CacheStore,
        (keys, mounts): (&[Digest], &[crate::cache_io::CacheMount]),
        early: Option<EarlyPlan>,
        events: &EventSink,
    ) -> Result<(), BuildError> {
        use crate::cache_io::Place;
        // An inline cache went into the image's config at the export.
        for (i, spec) in req
            .cache_to
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind != crate::request::CacheKind::Inline)
        {
            let place = Place::of(spec, true);
            let phase = Phase::start(events, &format!("exporting cache to {place}"));
            // The upload of each blob shows on the step, as an image push's does.
            let client = self.client.clone().map(|mut c| {
                c.progress = Some(Arc::new(registry::progress::StatusReporter::new(
                    phase.status_fn(),
                )));
                c
            });
            let (store, snap, records) = (
                self.store.clone(),
                self.snapshotter.clone(),
                records.clone(),
            );
            let keys = keys.to_vec();
            let encoding = crate::cache_io::encoding_for(spec, &req.export);
            let travel = spec
                .attrs
                .get("mounts")
                .is_some_and(|v| export::output::parse_bool("mounts", v) == Ok(true));
            let max = spec
                .attrs
                .get("mounts-max-size")
                .and_then(|v| crate::run_flags::parse_size("mounts-max-size", v).ok())
                .unwrap_or(crate::cache_io::MOUNTS_MAX_SIZE);
            let mounts = travel.then(|| mounts.to_vec());
            // What the uploads begun during the build put in the registry.
            let present = match &early {
                Some((j, e)) if *j == i => e.finish().await,
                _ => BTreeSet::new(),
            };
            let handle = tokio::runtime::Handle::current();
            let r = tokio::task::spawn_blocking(move || {
                let step = |lease: &content::Lease, step: &str, lopts: &LayerOptions| {
                    cache_step_layer(&store, (&*snap, client.as_ref()), lease, step, lopts)
                };
                let made = crate::cache_io::assemble(
                    &store,
                    &records,
                    &keys,
                    &encoding,
                    &step,
                    mounts.as_deref().map(|m| (m, max)),
                )?;
                match &place {
                    Place::Local(dir) => {
                        export::rotate_oci_layout(&store, &made.index, dir, "latest")?;
                    }
                    Place::Registry(reference) => {
                        let Some(client) = client else {
                            return Err(BuildError::Offline {
                                reference: reference.to_string(),
                            });
                        };
                        handle.block_on(export::push_known(
                            &client,
                            &store,
                            &made.index,
                            reference,
                            &present,
                        ))?;
                    }
                }
                Ok(made.report)
            })
            .await
            .map_err(|e| BuildError::Internal(format!("the cache export thread failed: {e}")))?;
            match r {
                Ok(report) => {
                    phase.note(&report.line());
                    for n in &report.notes {
                        phase.note(&format!("warning: {n}"));
                    }
                    phase.done();
                }
                Err(e) => {
                    let ignore = spec
                        .attrs
                        .get("ignore-error")
                        .is_some_and(|v| export::output::parse_bool("ignore-error", v) == Ok(true));
                    if ignore {
                        phase.note(&format!("warning: {e}"));
                        phase.done();
                    } else {
                        phase.failed(&e);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The uploads of one `--cache-to` (by its index in the request) begun during the
/// build.
type EarlyPlan = (usize, Arc<crate::cache_early::EarlyUploads>);

/// A step's layer for a cache export: remembered, else from its snapshot, else
/// (a step imported here and never made) its imported layer as it is.
fn cache_step_layer(
    store: &Store,
    (snapshotter, client): (&dyn Snapshotter, Option<&registry::Client>),
    lease: &content::Lease,
    step: &str,
    lopts: &LayerOptions,
) -> Result<Option<LayerDesc>, BuildError> {
    let key = worker::snapshot::Key::new(step.to_owned())?;
    let cache = export::LayerCache::for_store(store);
    if cache.step(store, lease, step, lopts)?.is_none()
        && snapshotter.get(&key)?.is_none()
        && let Some(imported) = crate::cache_io::ImportedSteps::for_store(store).get(step)
    {
        let Some(l) = imported else {
            return Ok(None);
        };
        crate::cache_io::fetch_missing(store, client, lease, std::slice::from_ref(&l.descriptor))?;
        // Protected by the export's lease before it is referenced.
        store.protect(lease, &l.descriptor.digest)?;
        return Ok(Some(LayerDesc {
            descriptor: l.descriptor,
            diff_id: l.diff_id,
            from_cache: true,
        }));
    }
    step_layer(store, snapshotter, lease, step, lopts, None)
}

/// The names a build gives its image in the store it ran on: the tags, then the
/// names of `type=image` outputs, normalised (`app` → `docker.io/library/app:latest`),
/// each once.
fn store_names(req: &BuildRequest) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let image_names = req
        .outputs
        .iter()
        .filter(|o| matches!(o.kind, export::output::Kind::Image { .. }) && !o.push_by_digest)
        .flat_map(|o| o.names.iter());
    for n in req.tags.iter().chain(image_names) {
        let n = export::output::normal(n);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// The build checks' warnings as [`solver::Event::Warning`]s, about the Dockerfile
/// `dockerfile` (named by its digest).
fn emit_checks(events: &EventSink, dockerfile: &str, checks: &[dockerfile::lint::LintWarning]) {
    if checks.is_empty() {
        return;
    }
    let digest = Digest::sha256(dockerfile.as_bytes());
    for w in checks {
        events.emit(solver::Event::Warning {
            digest: digest.clone(),
            warning: solver::Warning {
                rule: w.name().to_owned(),
                message: w.message.clone(),
                url: Some(w.url()),
                line: Some(w.span.start.line),
            },
        });
    }
}

/// Fail before anything runs when a platform's steps cannot run here.
fn check_platforms(graph: &Graph) -> Result<(), worker::binfmt::BinfmtError> {
    let platforms: BTreeSet<String> = graph
        .vertices()
        .filter_map(|(_, v)| match &v.op {
            Op::Exec(e) => Some(e.platform.to_string()),
            _ => None,
        })
        .collect();
    for p in platforms {
        let platform = Platform::parse(&p).expect("invariant: platforms print parseably");
        worker::binfmt::check_platform(&platform)?;
    }
    Ok(())
}

/// The name of the step that stands for the export in progress output.
pub const EXPORT_PHASE: &str = "exporting to image";

/// The status of the layers' export: compressed bytes written so far.
const EXPORTING_LAYERS: &str = "exporting layers";

/// Counts the compressed bytes of the layers written, for [`EXPORTING_LAYERS`], and
/// passes them on to the build's own tap.
#[derive(Debug)]
struct CountingTap<'a> {
    inner: Option<&'a dyn export::LayerTap>,
    phase: &'a Phase,
    /// Bytes of the layers finished before the one being written.
    before: Arc<std::sync::atomic::AtomicU64>,
}

struct CountingWriter {
    inner: Option<Box<dyn export::TapWriter>>,
    report: Box<dyn FnMut(u64) + Send>,
    before: Arc<std::sync::atomic::AtomicU64>,
}

impl export::LayerTap for CountingTap<'_> {
    fn begin(&self, blob: &std::fs::File) -> Option<Box<dyn export::TapWriter>> {
        let status = self.phase.status_fn();
        let before = self.before.clone();
        let base = before.load(std::sync::atomic::Ordering::Relaxed);
        let mut throttle = registry::progress::Throttle::default();
        Some(Box::new(CountingWriter {
            inner: self.inner.and_then(|t| t.begin(blob)),
            report: Box::new(move |n| {
                if throttle.due() {
                    status(EXPORTING_LAYERS, base + n, None, false);
                }
            }),
            before,
        }))
    }
}

impl export::TapWriter for CountingWriter {
    fn written(&mut self, total: u64) {
        (self.report)(total);
        if let Some(w) = &mut self.inner {
            w.written(total);
        }
    }

    fn commit(self: Box<Self>, digest: &Digest, size: u64) {
        self.before
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = self.inner {
            w.commit(digest, size);
        }
    }
}

/// How [`export_all`] exports: the encoding, the tap new layers go through,
/// `force-compression`, whether the image is an index, and the records an inline
/// cache carries.
struct How<'a> {
    opts: &'a ExportOptions,
    tap: Option<&'a dyn export::LayerTap>,
    force: bool,
    as_index: bool,
    inline: Option<&'a [(solver::CacheRecord, FsRef)]>,
    attest: Option<&'a AttestPlan>,
}

/// What an export made: the image, each platform's manifest, whether base layers
/// were recompressed, and the attestations that are referrers (each with the
/// digest of the image manifest it is about).
type Exported = (Descriptor, Vec<Descriptor>, bool, Vec<(Descriptor, Digest)>);

/// A stage whose SBOM is asked for: its platform, its name, and the snapshot of its
/// root filesystem (`None`: empty).
type StageTop = (Platform, String, Option<String>);

/// What the attestations of a build's images are made from.
struct AttestPlan {
    /// Holds the attestations until the build has pushed them (referrers are in no
    /// index, so nothing named reaches them).
    lease: Arc<content::Lease>,
    wanted: crate::provenance::Requested,
    request: BuildRequest,
    graph: Graph,
    /// When the build began, in seconds since the epoch.
    started: i64,
    /// Where the times of earlier builds' provenance are kept.
    times_dir: PathBuf,
    /// The build context's directory, when `BUILDKIT_SBOM_SCAN_CONTEXT` asks for an
    /// SBOM of it too.
    scan_context: Option<PathBuf>,
    /// The content digest of each local context the build read, by name.
    contexts: BTreeMap<String, Digest>,
    /// `BUILDKIT_SBOM_SCAN_STAGE`: (platform, stage name, root) of each stage other
    /// than the target whose SBOM is asked for.
    sbom_stages: Vec<(Platform, String, Digest)>,
}

impl AttestPlan {
    /// The SBOM scan of the snapshot `top` (an empty root when `None`), remembered
    /// by its key so a no-op rebuild mounts nothing.
    fn scan_top(
        &self,
        snapshotter: &dyn Snapshotter,
        top: Option<&str>,
    ) -> Result<crate::sbom::Scan, BuildError> {
        let Some(key) = top else {
            return Ok(crate::sbom::Scan::default());
        };
        let sbom_dir = self.times_dir.with_file_name("sbom");
        crate::sbom::scan_snapshot(&sbom_dir, key, || {
            let k = worker::snapshot::Key::new(key.to_owned()).map_err(|e| e.to_string())?;
            let view = snapshotter.view(&k).map_err(|e| e.to_string())?;
            let root = archive::Root::open(view.path())
                .map_err(|e| format!("open the image to scan it: {e}"))?;
            Ok(crate::sbom::scan(&root))
        })
        .map_err(BuildError::Internal)
    }

    /// The attestation manifest about each of `manifests` (one per output, whose
    /// root filesystem is the snapshot in `tops`), and what the SBOM scans had to
    /// say.
    fn manifests(
        &self,
        (store, snapshotter): (&Store, &dyn Snapshotter),
        outputs: &[graph::Output],
        (manifests, tops, stages): (&[Descriptor], &[Option<String>], &[StageTop]),
        phase: &Phase,
    ) -> Result<Vec<Descriptor>, BuildError> {
        let host = Platform::host();
        let mut out = Vec::new();
        for ((output, manifest), top) in outputs.iter().zip(manifests).zip(tops) {
            // One set of times per image: the first build's, or SOURCE_DATE_EPOCH.
            let times = crate::provenance::times_for(
                &self.times_dir,
                &manifest.digest,
                self.wanted.provenance.as_ref().map_or("sbom", |o| {
                    if o.mode == crate::provenance::Mode::Max {
                        "max"
                    } else {
                        "min"
                    }
                }),
                self.request.export.source_date_epoch,
                self.started,
            );
            let mut statements = Vec::new();
            if let Some(opts) = &self.wanted.provenance {
                let (predicate_type, bytes) = crate::provenance::statement(
                    opts,
                    &crate::provenance::Input {
                        request: &self.request,
                        graph: &self.graph,
                        output,
                        manifest,
                        builder_platform: &host,
                        contexts: &self.contexts,
                        times,
                    },
                );
                statements.push(export::attest::Statement {
                    predicate_type,
                    bytes,
                });
            }
            if self.wanted.sbom {
                let scan = self.scan_top(snapshotter, top.as_deref())?;
                for w in &scan.warnings {
                    phase.note(&format!("warning: SBOM of {}: {w}", output.platform));
                }
                statements.push(export::attest::Statement {
                    predicate_type: crate::sbom::PREDICATE_SPDX.to_owned(),
                    bytes: crate::provenance::sbom_statement(
                        &self.request,
                        output,
                        manifest,
                        (&scan, None),
                        times,
                    ),
                });
                // BUILDKIT_SBOM_SCAN_STAGE: each stage asked for, of this platform,
                // as a document of its own.
                for (_, name, top) in stages.iter().filter(|(p, _, _)| *p == output.platform) {
                    let scan = self.scan_top(snapshotter, top.as_deref())?;
                    for w in &scan.warnings {
                        phase.note(&format!("warning: SBOM of stage {name}: {w}"));
                    }
                    statements.push(export::attest::Statement {
                        predicate_type: crate::sbom::PREDICATE_SPDX.to_owned(),
                        bytes: crate::provenance::sbom_statement(
                            &self.request,
                            output,
                            manifest,
                            (&scan, Some(&format!("stage-{name}"))),
                            times,
                        ),
                    });
                }
                // BUILDKIT_SBOM_SCAN_CONTEXT: the build context too, as a document of
                // its own next to the image's.
                if let Some(dir) = &self.scan_context {
                    let root = archive::Root::open(dir).map_err(|e| {
                        BuildError::Internal(format!("open the build context to scan it: {e}"))
                    })?;
                    let scan = crate::sbom::scan(&root);
                    for w in &scan.warnings {
                        phase.note(&format!("warning: SBOM of the build context: {w}"));
                    }
                    statements.push(export::attest::Statement {
                        predicate_type: crate::sbom::PREDICATE_SPDX.to_owned(),
                        bytes: crate::provenance::sbom_statement(
                            &self.request,
                            output,
                            manifest,
                            (&scan, Some("context")),
                            times,
                        ),
                    });
                }
            }
            out.push(export::attest::assemble_attestation_manifest(
                store,
                &self.lease,
                manifest,
                &statements,
                self.wanted.referrers,
            )?);
        }
        Ok(out)
    }
}

fn export_all(
    store: &Store,
    (snapshotter, client, lazy): (&dyn Snapshotter, Option<&registry::Client>, bool),
    outputs: &[graph::Output],
    results: &std::collections::HashMap<Digest, Ref>,
    how: How<'_>,
    tags: &[String],
    phase: &Phase,
) -> Result<Exported, BuildError> {
    let How {
        opts,
        tap,
        force,
        as_index,
        inline,
        attest,
    } = how;
    let lease = store.lease()?;
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tap = CountingTap {
        inner: tap,
        phase,
        before: written.clone(),
    };
    phase.status(EXPORTING_LAYERS, 0, None, false);
    // Every image's layers first, so that the layers' status ends before the documents.
    let mut layers = Vec::new();
    let mut tops = Vec::new();
    for out in outputs {
        let fs = match &results[&out.root] {
            Ref::Fs(f) => f.clone(),
            Ref::Local(_) => {
                return Err(BuildError::Internal(
                    "a build's result is a context, not a filesystem".into(),
                ));
            }
        };
        // The layers a lazy cache import left in the registry: the image is made of
        // them (a push-only build mounts them instead).
        if !lazy {
            crate::cache_io::fetch_missing(
                store,
                client,
                &lease,
                &crate::cache_io::layers_of(store, &fs),
            )?;
        }
        let own = export_layers(store, (snapshotter, client), &lease, &fs, opts, &tap)?;
        tops.push(fs.top.clone());
        layers.push((fs, own));
    }
    content::crash::point("export");
    let bytes = written.load(std::sync::atomic::Ordering::Relaxed);
    phase.status(EXPORTING_LAYERS, bytes, None, true);
    let annotations = export::annotation::Annotations(&opts.annotations);
    let mut manifests = Vec::new();
    for (out, (fs, layers)) in outputs.iter().zip(layers) {
        let platform = out.config.platform();
        let own = annotations.manifest(&platform);
        let mut config = out.config.clone();
        // A base's inline cache is not this image's; `--cache-to type=inline` puts
        // this build's in.
        config.inline_cache =
            inline.map(|chosen| crate::cache_io::inline_document(chosen, &fs, &layers, opts));
        let mut desc = export_image(store, &lease, &fs, layers, config, opts, own)?;
        desc.annotations = annotations.manifest_descriptor(&platform);
        phase.note(&format!("exporting manifest {}", desc.digest));
        manifests.push(desc);
    }
    let mut recompressed = false;
    if force
        && let Some(new) = export::sink::force_compression(
            store,
            &lease,
            &manifests,
            opts.compression,
            opts.oci_mediatypes,
        )?
    {
        manifests = new;
        recompressed = true;
        phase.note(&format!(
            "recompressing base layers to {}",
            opts.compression.key()
        ));
    }
    let mut entries = manifests.clone();
    let mut referrers = Vec::new();
    if let Some(plan) = attest {
        let stages: Vec<StageTop> = plan
            .sbom_stages
            .iter()
            .filter_map(|(platform, name, root)| match results.get(root) {
                Some(Ref::Fs(f)) => Some((platform.clone(), name.clone(), f.top.clone())),
                _ => None,
            })
            .collect();
        let made = plan.manifests(
            (store, snapshotter),
            outputs,
            (&manifests, &tops, &stages),
            phase,
        )?;
        match plan.wanted.referrers {
            true => {
                referrers = made
                    .into_iter()
                    .zip(&manifests)
                    .map(|(r, m)| (r, m.digest.clone()))
                    .collect();
            }
            false => entries.extend(made),
        }
    }
    let image = match (as_index, manifests.as_slice()) {
        (false, [one]) => one.clone(),
        _ => {
            let index = export::assemble_index(store, &lease, entries, annotations.index())?;
            phase.note(&format!("exporting manifest list {}", index.digest));
            index
        }
    };
    for t in tags {
        export::tag(store, t, &image)?;
        phase.note(&format!("naming to {t}"));
    }
    Ok((image, manifests, recompressed, referrers))
}

/// The layers of `fs`'s own steps: remembered by the layer cache per step snapshot
/// and options (so a no-op rebuild reads no snapshot), or exported now (the
/// snapshots of a result imported with `--cache-from` made first).
fn export_layers(
    store: &Store,
    (snapshotter, client): (&dyn Snapshotter, Option<&registry::Client>),
    lease: &content::Lease,
    fs: &FsRef,
    opts: &ExportOptions,
    tap: &dyn export::LayerTap,
) -> Result<Vec<Option<LayerDesc>>, BuildError> {
    let lopts = layer_options(opts);
    let mut layers = Vec::new();
    let mut materialized = false;
    for step in &fs.steps {
        let key = worker::snapshot::Key::new(step.clone())?;
        if !materialized && snapshotter.get(&key)?.is_none() {
            let cache = export::LayerCache::for_store(store);
            if cache.step(store, lease, step, &lopts)?.is_none() {
                crate::cache_io::materialize(store, snapshotter, client, fs)?;
                materialized = true;
            }
        }
        layers.push(step_layer(
            store,
            snapshotter,
            lease,
            step,
            &lopts,
            Some(tap),
        )?);
    }
    Ok(layers)
}

/// How the steps' layers are encoded for `opts`.
fn layer_options(opts: &ExportOptions) -> LayerOptions {
    LayerOptions {
        compression: opts.compression,
        source_date_epoch: opts.source_date_epoch,
        oci_mediatypes: opts.oci_mediatypes,
        // Steps' layers are remembered per snapshot below, and changed layers reuse
        // runs through the run index: the diff_id entries would only be written.
        use_cache: false,
    }
}

/// The layer of step snapshot `step` with `lopts`: remembered by the layer cache,
/// or its snapshot diffed and exported now (through `tap`).
fn step_layer(
    store: &Store,
    snapshotter: &dyn Snapshotter,
    lease: &content::Lease,
    step: &str,
    lopts: &LayerOptions,
    tap: Option<&dyn export::LayerTap>,
) -> Result<Option<LayerDesc>, BuildError> {
    let cache = export::LayerCache::for_store(store);
    if let Some(layer) = cache.step(store, lease, step, lopts)? {
        return Ok(layer);
    }
    let key = worker::snapshot::Key::new(step.to_owned())?;
    let changes = snapshotter.diff_committed(&key)?;
    let l = export::export_layer_once(store, lease, changes, lopts, tap)?;
    cache.remember_step(step, lopts, l.as_ref())?;
    Ok(l)
}

fn export_image(
    store: &Store,
    lease: &content::Lease,
    fs: &FsRef,
    layers: Vec<Option<LayerDesc>>,
    config: ImageConfig,
    opts: &ExportOptions,
    annotations: BTreeMap<String, String>,
) -> Result<Descriptor, BuildError> {
    let base = match &fs.base {
        Some(m) => Some(BaseImage {
            manifest: m.clone(),
            config: read_config(store, m)?,
        }),
        None => None,
    };
    let iopts = ImageOptions {
        oci_mediatypes: opts.oci_mediatypes,
        source_date_epoch: opts.source_date_epoch,
        annotations,
        ..ImageOptions::default()
    };
    Ok(export::assemble_image(
        store,
        lease,
        base.as_ref(),
        &layers,
        config,
        &iopts,
    )?)
}
