//! [`Runner`]: the solver's [`OpRunner`] for container builds.
//!
//! Each op becomes snapshot work:
//! * `Source::Image`: the platform's manifest (from the store, else pulled) unpacked
//!   as snapshots keyed by chain id, shared by every build and platform.
//! * `Source::Local`: the context directory, read in place; its content key is the
//!   digest of every included file, from the persistent context index.
//! * `Exec`: a writable snapshot on the root input, the process run by runc, the
//!   snapshot committed as one step.
//! * `File`: a writable snapshot on the base with [`crate::fileop`] applied.
//! * `Merge`: the inputs' trees copied onto the first one.
//!
//! Every snapshot a step commits is named `step-<cache key>-<unique>`, so a rerun
//! under `--no-cache` never collides with an older result.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use content::Store;
use graph::Vertex;
use graph::op::{self, FileAction, Op, Source};
use ignore::Matcher;
use oci::document::ManifestOrIndex;
use oci::{Descriptor, Digest, Platform, Reference};
use registry::ops::Platforms;
use solver::{BoxError, CacheRecord, CacheValue, ContentKey, LogStream, OpRunner, RunCtx};
use worker::exec::{
    CancelToken, Entitlements, ExecIo, ExecSpec, Executor, NetworkMode, SecurityMode, Stream,
};
use worker::snapshot::{Key, Snapshotter};

use crate::error::BuildError;
use crate::fileop;
use crate::mounts::{Held, Parts, missing_mount_points, remove_stubs};
use crate::refs::{FsRef, LocalRef, Ref, step_key};
use crate::request::LocalDir;
use crate::secret::Secret;
use crate::selection::Selection;

/// What one build gives its steps beyond the graph.
#[derive(Debug, Default, Clone)]
pub(crate) struct StepInputs {
    /// `context` and each `--build-context NAME=DIR`.
    pub(crate) locals: HashMap<String, LocalDir>,
    /// `--secret id=…`: the values, never logged or stored.
    pub(crate) secrets: BTreeMap<String, Secret>,
    /// What `--allow` granted.
    pub(crate) allow: Entitlements,
}

/// Runs ops on a store, a snapshotter and an executor.
pub struct Runner {
    pub(crate) store: Store,
    pub(crate) snapshotter: Arc<dyn Snapshotter>,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) client: Option<registry::Client>,
    pub(crate) session: StepInputs,
    /// `--pull`: always ask the registry for base images.
    pub(crate) pull: bool,
    /// Context scans made for content keys, by local name.
    scans: Mutex<HashMap<String, Arc<Scan>>>,
    /// Snapshot keys known to exist: listed once per build, so checking cached
    /// results costs no snapshot-store read per step.
    known: Mutex<Option<std::collections::HashSet<String>>>,
    /// A registry cache's uploads, begun as steps run.
    pub(crate) early: Option<Arc<crate::cache_early::EarlyUploads>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("store", &self.store.root())
            .field("snapshotter", &self.snapshotter.driver())
            .finish_non_exhaustive()
    }
}

impl Runner {
    pub(crate) fn new(
        store: Store,
        snapshotter: Arc<dyn Snapshotter>,
        executor: Arc<dyn Executor>,
        client: Option<registry::Client>,
        session: StepInputs,
        pull: bool,
    ) -> Runner {
        Runner {
            store,
            snapshotter,
            executor,
            client,
            session,
            pull,
            scans: Mutex::default(),
            known: Mutex::default(),
            early: None,
        }
    }

    fn contexts_dir(&self) -> PathBuf {
        self.store.root().join("contexts")
    }

    fn cache_mounts_dir(&self) -> PathBuf {
        self.store.root().join("cache-mounts")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.store.root().join("tmp")
    }

    fn local(&self, name: &str) -> Result<&LocalDir, BuildError> {
        self.session
            .locals
            .get(name)
            .ok_or_else(|| BuildError::NoLocal {
                name: name.to_owned(),
            })
    }
}

fn matcher(patterns: &[String]) -> Result<Option<Arc<Matcher>>, BuildError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let text = patterns.join("\n");
    let pats = ignore::parse_ignore_file(&text).map_err(|e| BuildError::Ignore {
        message: e.to_string(),
    })?;
    let m = Matcher::new(pats).map_err(|e| BuildError::Ignore {
        message: e.to_string(),
    })?;
    Ok(Some(Arc::new(m)))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BuildError::Internal(format!("a worker thread failed: {e}")))?
}

/// Changed paths named for a cache-miss reason: at most three, then a count.
fn describe_changes(name: &str, changed: &[String]) -> String {
    let what = if name == "context" {
        "local context".to_owned()
    } else {
        format!("build context {name}")
    };
    match changed.len() {
        0 => format!("{what} files"),
        1 => format!("{what} file {}", changed[0]),
        n if n <= 3 => format!("{what} files {}", changed.join(", ")),
        n => format!(
            "{what} files {} and {} more",
            changed[..3].join(", "),
            n - 3
        ),
    }
}

impl OpRunner for Runner {
    type Output = Ref;

    async fn content_key(
        &self,
        vertex: &Vertex,
        inputs: &[Ref],
    ) -> Result<Option<ContentKey>, BoxError> {
        match &vertex.op {
            Op::Source(Source::Local { name, exclude, .. }) => {
                let scan = self.scan(name, exclude).await?;
                Ok(Some(
                    ContentKey::new(
                        scan.context.digest.clone(),
                        describe_changes(name, &scan.changed),
                    )
                    .with_status(scan.status()),
                ))
            }
            op => Ok(self.selection_key(op, inputs)),
        }
    }

    async fn run(&self, vertex: &Vertex, inputs: Vec<Ref>, ctx: &RunCtx) -> Result<Ref, BoxError> {
        self.materialize(&inputs).await?;
        let out = match &vertex.op {
            Op::Source(Source::Scratch) => Ref::Fs(Arc::new(FsRef::empty())),
            Op::Source(Source::Local { name, exclude, .. }) => {
                let digest = self
                    .scans
                    .lock()
                    .expect("scan map lock")
                    .get(name)
                    .map(|s| s.context.digest.clone())
                    .ok_or_else(|| BuildError::Internal(format!("context {name} not scanned")))?;
                Ref::Local(Arc::new(LocalRef {
                    name: name.clone(),
                    dir: self.local(name)?.dir.clone(),
                    exclude: matcher(exclude)?,
                    digest,
                }))
            }
            Op::Source(Source::Image {
                reference,
                platform,
                resolve_mode,
            }) => {
                let force = self.pull || *resolve_mode == op::ResolveMode::ForcePull;
                Ref::Fs(Arc::new(self.image(reference, platform, force, ctx).await?))
            }
            Op::Exec(exec) => Ref::Fs(Arc::new(self.exec(exec, &inputs, ctx).await?)),
            Op::File(file) => Ref::Fs(Arc::new(self.file(file, &inputs, ctx).await?)),
            Op::Merge(_) => Ref::Fs(Arc::new(self.merge(&inputs, ctx).await?)),
            other => {
                return Err(Box::new(BuildError::Unsupported {
                    what: format!("{} op", other.kind()),
                }));
            }
        };
        if let (Some(early), Ref::Fs(fs)) = (&self.early, &out) {
            match &vertex.op {
                Op::Source(Source::Image { .. }) => early.base(fs),
                Op::Exec(_) | Op::File(_) => {
                    if let Some(top) = &fs.top {
                        early.step(top);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn save(&self, output: &Ref) -> Result<CacheValue, BoxError> {
        let value = match output {
            Ref::Fs(f) => serde_json::json!({ "fs": &**f }),
            // The context's content is not part of its result: each step that
            // reads it keys on what it selects (`selection_key`).
            Ref::Local(l) => serde_json::json!({ "local": l.name }),
        };
        Ok(CacheValue { value, size: 0 })
    }

    fn load_cached(&self, record: &CacheRecord) -> Option<Ref> {
        if let Some(fs) = record.value.get("fs") {
            let fs: FsRef = serde_json::from_value(fs.clone()).ok()?;
            if let Some(base) = &fs.base
                && !self.store.contains(&base.digest)
            {
                return None;
            }
            // A result imported with `--cache-from` is made from its layers when a
            // step runs on it (`run`); an image export takes the layers themselves.
            let imported = crate::cache_io::ImportedSteps::for_store(&self.store);
            if !crate::cache_io::can_materialize(&self.store, &imported, &fs, |k| {
                self.snapshot_exists(k)
            }) {
                return None;
            }
            return Some(Ref::Fs(Arc::new(fs)));
        }
        let name = record.value.get("local")?.as_str()?;
        let digest = self.scans.lock().ok()?.get(name)?.context.digest.clone();
        let dir = self.session.locals.get(name)?.dir.clone();
        Some(Ref::Local(Arc::new(LocalRef {
            name: name.to_owned(),
            dir,
            exclude: None,
            digest,
        })))
    }
}

/// One scan of a context: its entries and the files changed since the last one.
#[derive(Debug)]
pub(crate) struct Scan {
    context: worker::context::Context,
    changed: Vec<String>,
    /// How long the scan took.
    took: std::time::Duration,
}

impl Scan {
    /// What the scan read, as progress shows it: `transferring context: 583.5MB,
    /// 10002 files (10002 read) in 0.52s`. Files whose size and times did not change
    /// since the last scan are not read again.
    fn status(&self) -> solver::Status {
        let (mut files, mut bytes) = (0usize, 0u64);
        for e in self.context.entries.values() {
            if let worker::context::Kind::File { size, .. } = e.kind {
                files += 1;
                bytes += size;
            }
        }
        let text = format!(
            "transferring context: {:.1}MB, {files} files ({} read) in {:.2}s",
            bytes as f64 / 1e6,
            self.context.hashed,
            self.took.as_secs_f64()
        );
        solver::Status::new(&text, 0, None, true)
    }
}

impl Runner {
    /// The content digest of each local context this runner scanned (paths, modes
    /// and file digests: the same files give the same digest on any machine), by
    /// the name the build uses.
    pub(crate) fn context_digests(&self) -> std::collections::BTreeMap<String, oci::Digest> {
        self.scans
            .lock()
            .expect("scan map lock")
            .iter()
            .map(|(name, s)| (name.clone(), s.context.digest.clone()))
            .collect()
    }

    /// Make the snapshots of imported results among `inputs` that are not here yet.
    async fn materialize(&self, inputs: &[Ref]) -> Result<(), BuildError> {
        let missing: Vec<FsRef> = inputs
            .iter()
            .filter_map(Ref::fs)
            .filter(|f| f.top_key().is_some_and(|k| !self.snapshot_exists(&k)))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let (store, snap, client) = (
            self.store.clone(),
            self.snapshotter.clone(),
            self.client.clone(),
        );
        blocking(move || {
            for fs in &missing {
                crate::cache_io::materialize(&store, &*snap, client.as_ref(), fs)?;
            }
            Ok(())
        })
        .await
    }

    /// Whether the committed snapshot `key` exists. Keys listed at the first call
    /// answer at once; any other key is looked up (another process may have just
    /// committed it).
    fn snapshot_exists(&self, key: &Key) -> bool {
        let mut known = self.known.lock().expect("snapshot set lock");
        let set = known.get_or_insert_with(|| {
            self.snapshotter
                .list()
                .map(|l| l.iter().map(|c| c.key().as_str().to_owned()).collect())
                .unwrap_or_default()
        });
        if set.contains(key.as_str()) {
            return true;
        }
        let found = matches!(self.snapshotter.get(key), Ok(Some(_)));
        if found {
            set.insert(key.as_str().to_owned());
        }
        found
    }

    /// Scan the context `name` (once per build) through its persistent index.
    async fn scan(&self, name: &str, exclude: &[String]) -> Result<Arc<Scan>, BuildError> {
        if let Some(s) = self.scans.lock().expect("scan map lock").get(name) {
            return Ok(s.clone());
        }
        let dir = self.local(name)?.dir.clone();
        let exclude = matcher(exclude)?;
        let state = self.contexts_dir();
        let began = std::time::Instant::now();
        let scan = blocking(move || {
            let mut index = worker::context::Index::open(&state, &dir);
            let before = index.files();
            let context = worker::context::scan(&dir, exclude.as_deref(), &mut index)?;
            let after = index.files();
            index.save()?;
            let mut changed: Vec<String> = after
                .iter()
                .filter(|(p, d)| before.get(*p) != Some(*d))
                .map(|(p, _)| p.clone())
                .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
                .collect();
            changed.sort();
            Ok(Scan {
                context,
                changed,
                took: began.elapsed(),
            })
        })
        .await?;
        let scan = Arc::new(scan);
        self.scans
            .lock()
            .expect("scan map lock")
            .insert(name.to_owned(), scan.clone());
        Ok(scan)
    }

    /// The key of what a COPY or a `RUN --mount` reads from build contexts:
    /// one selection digest per read, named after the changed files in it.
    fn selection_key(&self, op: &Op, inputs: &[Ref]) -> Option<ContentKey> {
        let reads: Vec<(usize, Selection)> = match op {
            Op::File(f) => f
                .actions
                .iter()
                .filter_map(|a| match a {
                    FileAction::Copy(c) => {
                        Some((c.src, Selection::new(&c.src_path, c.chmod.is_none())))
                    }
                    _ => None,
                })
                .collect(),
            Op::Exec(e) => e
                .mounts
                .iter()
                .filter_map(|m| m.input.map(|i| (i, Selection::new(&m.selector, true))))
                .collect(),
            _ => Vec::new(),
        };
        let scans = self.scans.lock().expect("scan map lock");
        let mut h = oci::Hasher::new(oci::Algorithm::Sha256);
        let mut changed = Vec::new();
        let mut name = None;
        for (i, sel) in reads {
            let Some(Ref::Local(l)) = inputs.get(i) else {
                continue;
            };
            let scan = scans.get(&l.name)?;
            h.update(format!("{i} {}\n", sel.digest(&scan.context)).as_bytes());
            changed.extend(sel.changed(&scan.changed).into_iter().cloned());
            name.get_or_insert_with(|| l.name.clone());
        }
        let name = name?;
        changed.sort();
        changed.dedup();
        Some(ContentKey::new(
            h.finish(),
            describe_changes(&name, &changed),
        ))
    }

    /// The image's manifest for `platform`, unpacked.
    async fn image(
        &self,
        reference: &str,
        platform: &Platform,
        force_pull: bool,
        ctx: &RunCtx,
    ) -> Result<FsRef, BuildError> {
        let parsed = Reference::parse(reference).map_err(|e| BuildError::Reference {
            reference: reference.to_owned(),
            message: e.to_string(),
        })?;
        let local = if force_pull {
            None
        } else {
            parsed
                .digest()
                .and_then(|d| local_manifest(&self.store, d, platform))
        };
        let manifest = match local {
            Some(m) => m,
            None => self.pull(&parsed, platform, ctx).await?,
        };
        let store = self.store.clone();
        let snap = self.snapshotter.clone();
        let m = manifest.clone();
        let unpacked =
            blocking(move || worker::image::unpack(&store, &*snap, &m).map_err(BuildError::from))
                .await?;
        for (layer, n) in &unpacked.duplicate_paths {
            ctx.log(
                LogStream::Stderr,
                format!(
                    "warning: layer {layer} of {reference} names {n} path(s) more than once; \
                     the last entry of each was kept\n"
                ),
            );
        }
        let top = unpacked.top;
        Ok(FsRef {
            top: top.map(|k| k.as_str().to_owned()),
            base: Some(manifest),
            steps: Vec::new(),
        })
    }

    async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        ctx: &RunCtx,
    ) -> Result<Descriptor, BuildError> {
        let mut client = self.client.clone().ok_or_else(|| BuildError::Offline {
            reference: reference.to_string(),
        })?;
        // Each layer's bytes show under the step, as BuildKit's do.
        let status = ctx.clone();
        client.progress = Some(Arc::new(registry::progress::StatusReporter::new(
            move |id: &str, current, total, done| status.status(id, current, total, done),
        )));
        // The pull future is not `Send` (a higher-ranked closure inside the
        // client), so it runs on a blocking thread of its own.
        let (client, store, r, p) = (
            client,
            self.store.clone(),
            reference.clone(),
            platform.clone(),
        );
        let handle = tokio::runtime::Handle::current();
        let desc = blocking(move || {
            let lease = store.lease().map_err(BuildError::from)?;
            handle
                .block_on(client.pull(&store, &lease, &r, &Platforms::Best(p)))
                .map_err(|e| BuildError::Pull {
                    reference: r.to_string(),
                    source: Box::new(e),
                })
        })
        .await?;
        // Named, so that the base image outlives this process's lease.
        self.store
            .set_name(&reference.to_string(), &desc)
            .map_err(BuildError::from)?;
        Ok(desc)
    }

    async fn file(
        &self,
        file: &op::File,
        inputs: &[Ref],
        ctx: &RunCtx,
    ) -> Result<FsRef, BuildError> {
        let base = match file.base {
            Some(i) => input_fs(inputs, i)?.clone(),
            None => FsRef::empty(),
        };
        let snap = self.snapshotter.clone();
        let actions = file.actions.clone();
        let inputs = inputs.to_vec();
        let this = self.clone_parts();
        let key = step_key(ctx.cache_key());
        blocking(move || {
            let active = snap.prepare(base.top_key().as_ref())?;
            let mut views = Vec::new();
            let mut trees = Vec::new();
            for (i, input) in inputs.iter().enumerate() {
                let used = actions
                    .iter()
                    .any(|a| matches!(a, FileAction::Copy(c) if c.src == i));
                if !used {
                    trees.push(None);
                    continue;
                }
                trees.push(Some(this.tree(input, &mut views)?));
            }
            fileop::apply(active.path(), &actions, &trees)?;
            drop(trees);
            for v in views {
                v.close()?;
            }
            active.commit(&key)?;
            Ok(base.with_step(&key))
        })
        .await
    }

    async fn merge(&self, inputs: &[Ref], ctx: &RunCtx) -> Result<FsRef, BuildError> {
        let base = input_fs(inputs, 0)?.clone();
        let snap = self.snapshotter.clone();
        let inputs = inputs.to_vec();
        let this = self.clone_parts();
        let key = step_key(ctx.cache_key());
        blocking(move || {
            let active = snap.prepare(base.top_key().as_ref())?;
            let mut views = Vec::new();
            let mut trees = vec![None];
            let mut actions = Vec::new();
            for (i, input) in inputs.iter().enumerate().skip(1) {
                trees.push(Some(this.tree(input, &mut views)?));
                actions.push(FileAction::Copy(op::Copy {
                    src: i,
                    src_path: "/".into(),
                    dest: "/".into(),
                    chown: None,
                    chmod: None,
                    follow_symlinks: false,
                    dir_contents_only: true,
                    create_dest_path: true,
                    allow_wildcard: false,
                    allow_empty_wildcard: true,
                    unpack: false,
                    parents: false,
                    include: Vec::new(),
                    exclude: Vec::new(),
                    created: None,
                }));
            }
            fileop::apply(active.path(), &actions, &trees)?;
            drop(trees);
            for v in views {
                v.close()?;
            }
            active.commit(&key)?;
            Ok(base.with_step(&key))
        })
        .await
    }

    /// The parts a blocking task needs.
    fn clone_parts(&self) -> Parts {
        Parts {
            snapshotter: self.snapshotter.clone(),
            tmp: self.tmp_dir(),
        }
    }

    async fn exec(
        &self,
        exec: &op::Exec,
        inputs: &[Ref],
        ctx: &RunCtx,
    ) -> Result<FsRef, BuildError> {
        let root_mount = exec
            .mounts
            .first()
            .filter(|m| m.dest == "/")
            .ok_or_else(|| BuildError::Internal("an exec op without a root mount".into()))?;
        let base = match root_mount.input {
            Some(i) => input_fs(inputs, i)?.clone(),
            None => FsRef::empty(),
        };
        let mut env: Vec<String> = exec
            .env
            .iter()
            .chain(&exec.proxy_env)
            .map(|e| format!("{}={}", e.name, e.value))
            .collect();
        for s in &exec.secret_env {
            match self.session.secrets.get(&s.id) {
                Some(v) => {
                    let value =
                        String::from_utf8(v.0.to_vec()).map_err(|_| BuildError::Secret {
                            id: s.id.clone(),
                            message: "is not UTF-8, so it cannot be an environment variable".into(),
                        })?;
                    env.push(format!("{}={value}", s.name));
                }
                None if s.required => {
                    return Err(BuildError::Secret {
                        id: s.id.clone(),
                        message: "was not given (pass --secret id=…)".into(),
                    });
                }
                None => {}
            }
        }
        let spec = ExecSpec {
            args: exec.args.clone(),
            env,
            cwd: exec.cwd.clone(),
            user: exec.user.clone(),
            hostname: exec
                .hostname
                .clone()
                .unwrap_or_else(|| worker::exec::DEFAULT_HOSTNAME.to_owned()),
            network: match exec.network {
                op::Network::Default => NetworkMode::Default,
                op::Network::None => NetworkMode::None,
                op::Network::Host => NetworkMode::Host,
            },
            security: match exec.security {
                op::Security::Sandbox => SecurityMode::Sandbox,
                op::Security::Insecure => SecurityMode::Insecure,
            },
            rlimits: exec
                .ulimits
                .iter()
                .map(|u| worker::exec::Rlimit {
                    resource: u.name.to_ascii_uppercase(),
                    soft: u.soft,
                    hard: u.hard,
                })
                .collect(),
            extra_hosts: exec
                .extra_hosts
                .iter()
                .map(|h| (h.name.clone(), h.ip))
                .collect(),
            shm_size: exec.shm_size,
            platform: exec.platform.clone(),
            allow: self.session.allow,
        };
        let cancel = CancelToken::new();
        let bridge = {
            let cancel = cancel.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                ctx.cancelled().await;
                cancel.cancel();
            })
        };
        let log_ctx = ctx.clone();
        let io = ExecIo::new(move |stream, bytes| {
            let stream = match stream {
                Stream::Stdout => LogStream::Stdout,
                Stream::Stderr => LogStream::Stderr,
            };
            log_ctx.log(stream, bytes.to_vec());
        });
        let key = step_key(ctx.cache_key());
        let this = self.clone_parts();
        let executor = self.executor.clone();
        let mounts = exec.mounts.clone();
        let inputs = inputs.to_vec();
        let secrets = self.session.secrets.clone();
        let cache_dir = self.cache_mounts_dir();
        let platform = exec.platform.clone();
        let result = blocking(move || {
            let active = this.snapshotter.prepare(base.top_key().as_ref())?;
            let mut held = Held::default();
            let mut specs = Vec::new();
            for m in mounts.iter().skip(1) {
                if let Some(spec) =
                    this.mount(m, &inputs, &secrets, &cache_dir, &platform, &mut held)?
                {
                    specs.push(spec);
                }
            }
            let stubs = missing_mount_points(active.path(), &specs)?;
            let status = executor.run(&spec, active.path(), &specs, io, &cancel);
            held.release()?;
            remove_stubs(active.path(), &stubs)?;
            let status = status?;
            if let Err(failed) = status.check() {
                return Err(BuildError::StepFailed {
                    platform: platform.to_string(),
                    code: failed.code,
                    detail: failed.to_string(),
                });
            }
            active.commit(&key)?;
            Ok(base.with_step(&key))
        })
        .await;
        bridge.abort();
        result
    }
}

fn input_fs(inputs: &[Ref], i: usize) -> Result<&FsRef, BuildError> {
    match inputs.get(i) {
        Some(Ref::Fs(f)) => Ok(f),
        Some(Ref::Local(l)) => Err(BuildError::Internal(format!(
            "input {i} is the build context {}, not a filesystem",
            l.name
        ))),
        None => Err(BuildError::Internal(format!("input {i} is missing"))),
    }
}

/// The single-platform manifest `digest` stands for, when it and its blobs are all
/// in the store.
pub(crate) fn local_manifest(
    store: &Store,
    digest: &Digest,
    platform: &Platform,
) -> Option<Descriptor> {
    let media = store_media_type(store, digest)?;
    let bytes = store.read_document(digest).ok()?;
    let desc = match ManifestOrIndex::parse(&media, bytes).ok()? {
        ManifestOrIndex::Manifest(_) => Descriptor::new(&media, digest.clone(), 0),
        ManifestOrIndex::Index(i) => i.value().manifest_for(platform)?.clone(),
    };
    let bytes = store.read_document(&desc.digest).ok()?;
    let ManifestOrIndex::Manifest(m) = ManifestOrIndex::parse(&desc.media_type, bytes).ok()? else {
        return None;
    };
    let m = m.value();
    let complete =
        store.contains(&m.config.digest) && m.layers.iter().all(|l| store.contains(&l.digest));
    complete.then(|| {
        let mut d = desc.clone();
        if d.size == 0 {
            d.size = store
                .read_document(digest)
                .map(|b| b.len() as u64)
                .unwrap_or(0);
        }
        d
    })
}

/// A stored document's media type, read from its own `mediaType` field.
fn store_media_type(store: &Store, digest: &Digest) -> Option<String> {
    let bytes = store.read_document(digest).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if let Some(m) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Some(m.to_owned());
    }
    Some(if v.get("manifests").is_some() {
        oci::media::OCI_INDEX.to_owned()
    } else {
        oci::media::OCI_MANIFEST.to_owned()
    })
}
