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

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use content::Store;
use dockerfile::ignore::Matcher;
use graph::Vertex;
use graph::op::{self, FileAction, MountKind as OpMount, Op, Source};
use oci::document::ManifestOrIndex;
use oci::{Descriptor, Digest, Platform, Reference};
use registry::ops::Platforms;
use solver::{BoxError, CacheRecord, CacheValue, ContentKey, LogStream, OpRunner, RunCtx};
use worker::exec::{
    CancelToken, Entitlements, ExecIo, ExecSpec, Executor, MountKind, MountSpec, NetworkMode,
    SecurityMode, Stream,
};
use worker::snapshot::{Key, ReadOnlyMount, Snapshotter};

use crate::error::BuildError;
use crate::fileop::{self, SourceTree};
use crate::refs::{FsRef, LocalRef, Ref};
use crate::selection::Selection;

/// A directory a `Source::Local` of that name reads.
#[derive(Debug, Clone)]
pub struct LocalDir {
    pub dir: PathBuf,
}

/// What one build gives its steps beyond the graph.
#[derive(Debug, Default, Clone)]
pub struct Session {
    /// `context` and each `--build-context NAME=DIR`.
    pub locals: HashMap<String, LocalDir>,
    /// `--secret id=…`: the values, never logged or stored.
    pub secrets: HashMap<String, Secret>,
    /// What `--allow` granted.
    pub allow: Entitlements,
}

/// A secret's bytes. `Debug` never shows them.
#[derive(Clone)]
pub struct Secret(pub Arc<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Runs ops on a store, a snapshotter and an executor.
pub struct Runner {
    pub(crate) store: Store,
    pub(crate) snapshotter: Arc<dyn Snapshotter>,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) client: Option<registry::Client>,
    pub(crate) session: Session,
    /// `--pull`: always ask the registry for base images.
    pub(crate) pull: bool,
    /// Context scans made for content keys, by local name.
    scans: Mutex<HashMap<String, Arc<Scan>>>,
    /// Snapshot keys known to exist: listed once per build, so checking cached
    /// results costs no snapshot-store read per step.
    known: Mutex<Option<std::collections::HashSet<String>>>,
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
    pub fn new(
        store: Store,
        snapshotter: Arc<dyn Snapshotter>,
        executor: Arc<dyn Executor>,
        client: Option<registry::Client>,
        session: Session,
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
    let pats = dockerfile::ignore::parse_ignore_file(&text).map_err(|e| BuildError::Ignore {
        message: e.to_string(),
    })?;
    let m = Matcher::new(pats).map_err(|e| BuildError::Ignore {
        message: e.to_string(),
    })?;
    Ok(Some(Arc::new(m)))
}

/// A unique snapshot key for a step's result.
fn step_key(cache_key: &Digest) -> Key {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Key::new(format!(
        "step-{}-{}-{nanos:x}-{n}",
        &cache_key.hex()[..32],
        std::process::id()
    ))
    .expect("invariant: step keys are printable")
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
                Ok(Some(ContentKey::new(
                    scan.context.digest.clone(),
                    describe_changes(name, &scan.changed),
                )))
            }
            op => Ok(self.selection_key(op, inputs)),
        }
    }

    async fn run(&self, vertex: &Vertex, inputs: Vec<Ref>, ctx: &RunCtx) -> Result<Ref, BoxError> {
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
                Ref::Fs(Arc::new(self.image(reference, platform, force).await?))
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
            if let Some(top) = fs.top_key()
                && !self.snapshot_exists(&top)
            {
                return None;
            }
            if let Some(base) = &fs.base
                && !self.store.contains(&base.digest)
            {
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
}

impl Runner {
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
            Ok(Scan { context, changed })
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
            None => self.pull(&parsed, platform).await?,
        };
        let store = self.store.clone();
        let snap = self.snapshotter.clone();
        let m = manifest.clone();
        let top = blocking(move || {
            let (top, _) = worker::image::unpack(&store, &*snap, &m).map_err(BuildError::from)?;
            Ok(top)
        })
        .await?;
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
    ) -> Result<Descriptor, BuildError> {
        let client = self.client.as_ref().ok_or_else(|| BuildError::Offline {
            reference: reference.to_string(),
        })?;
        // The pull future is not `Send` (a higher-ranked closure inside the
        // client), so it runs on a blocking thread of its own.
        let (client, store, r, p) = (
            client.clone(),
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
            rlimits: Vec::new(),
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

/// Snapshot views and scratch dirs a step holds while it runs.
#[derive(Default)]
struct Held {
    /// Staging bind mounts of in-root sources; unmounted first.
    binds: Vec<PathBuf>,
    /// In-root handles of bind sources, open until the step ends. First, so that
    /// they are dropped before the mounts they pin.
    leaves: Vec<archive::Leaf>,
    files: Vec<std::fs::File>,
    views: Vec<ReadOnlyMount>,
    actives: Vec<worker::snapshot::Active>,
    dirs: Vec<PathBuf>,
    locks: Vec<std::fs::File>,
}

impl Held {
    fn release(mut self) -> Result<(), BuildError> {
        self.unwind()
    }

    /// Undo everything, in dependency order: staging binds, then the handles that
    /// pin their sources, then views and throwaway snapshots, then scratch dirs.
    fn unwind(&mut self) -> Result<(), BuildError> {
        // Never removed recursively: if an unmount failed, the source stays
        // reachable below the staging path, and only empty entries are removed.
        for b in std::mem::take(&mut self.binds) {
            let _ = rustix::mount::unmount(&b, rustix::mount::UnmountFlags::DETACH);
            let _ = std::fs::remove_dir(&b).or_else(|_| std::fs::remove_file(&b));
            if let Some(parent) = b.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        self.leaves.clear();
        self.files.clear();
        let mut first = None;
        for v in std::mem::take(&mut self.views) {
            if let Err(e) = v.close() {
                first.get_or_insert(BuildError::from(e));
            }
        }
        for a in std::mem::take(&mut self.actives) {
            if let Err(e) = a.abort() {
                first.get_or_insert(BuildError::from(e));
            }
        }
        for d in std::mem::take(&mut self.dirs) {
            let _ = std::fs::remove_dir_all(&d);
        }
        self.locks.clear();
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.unwind();
    }
}

struct Parts {
    snapshotter: Arc<dyn Snapshotter>,
    tmp: PathBuf,
}

impl Parts {
    /// The tree of a result, for reading.
    fn tree(&self, input: &Ref, views: &mut Vec<ReadOnlyMount>) -> Result<SourceTree, BuildError> {
        match input {
            Ref::Local(l) => Ok(SourceTree {
                root: l.dir.clone(),
                exclude: l.exclude.clone(),
                keep_owner: false,
            }),
            Ref::Fs(f) => match f.top_key() {
                Some(k) => {
                    let v = self.snapshotter.view(&k)?;
                    let root = v.path().to_owned();
                    views.push(v);
                    Ok(SourceTree {
                        root,
                        exclude: None,
                        keep_owner: true,
                    })
                }
                None => {
                    let dir = self.scratch_dir("empty")?;
                    Ok(SourceTree {
                        root: dir,
                        exclude: None,
                        keep_owner: true,
                    })
                }
            },
        }
    }

    fn scratch_dir(&self, what: &str) -> Result<PathBuf, BuildError> {
        std::fs::create_dir_all(&self.tmp).map_err(|e| BuildError::io(&self.tmp, e))?;
        let dir = self.tmp.join(format!(
            "{what}-{}",
            step_key(&Digest::sha256(what.as_bytes())).as_str()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| BuildError::io(&dir, e))?;
        Ok(dir)
    }

    /// `selector` inside `root` as a path the runtime can bind. Symlinks on the way
    /// are resolved in-root (a link to `/` is the tree's own root); the handle opened
    /// there is bind-mounted onto a staging path under the state root's `tmp/`, in
    /// this process's mount namespace, so what runc mounts is exactly what was
    /// checked, and no path can be swapped in between. (runc cannot mount a
    /// `/proc/<pid>/fd/<n>` of another mount namespace itself.)
    fn in_tree(&self, root: &Path, selector: &str, held: &mut Held) -> Result<PathBuf, BuildError> {
        use std::os::fd::AsRawFd;
        let p = archive::CleanPath::new(selector.as_bytes())?;
        if p.is_root() {
            return Ok(root.to_owned());
        }
        let tree = archive::Root::open(root)?;
        let (fd, is_dir) = match tree.open_dir(&p) {
            Ok(dir) => {
                let fd = dir.fd().as_raw_fd();
                held.leaves.push(dir);
                (fd, true)
            }
            Err(_) => {
                let file = tree.open_regular(&p)?;
                let fd = file.as_raw_fd();
                held.files.push(file);
                (fd, false)
            }
        };
        // Not in `held.dirs`: those are removed recursively.
        let staging = self.scratch_dir("bind")?.join("src");
        if is_dir {
            std::fs::create_dir(&staging).map_err(|e| BuildError::io(&staging, e))?;
        } else {
            std::fs::File::create(&staging).map_err(|e| BuildError::io(&staging, e))?;
        }
        held.binds.push(staging.clone());
        rustix::mount::mount_bind(format!("/proc/self/fd/{fd}").as_str(), &staging)
            .map_err(|e| BuildError::io(&staging, e.into()))?;
        Ok(staging)
    }

    /// A throwaway copy of `source` for a writable bind of the build context:
    /// the step's writes must never reach the client's files.
    fn scratch_copy(&self, source: &Path, held: &mut Held) -> Result<PathBuf, BuildError> {
        let dir = self.scratch_dir("rw-bind")?;
        held.dirs.push(dir.clone());
        let copy = dir.join("copy");
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg("--no-dereference")
            .arg(source)
            .arg(&copy)
            .output()
            .map_err(|e| BuildError::io(source, e))?;
        if !out.status.success() {
            return Err(BuildError::io(
                source,
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            ));
        }
        Ok(copy)
    }

    /// One `RUN --mount` as a runtime mount.
    fn mount(
        &self,
        m: &op::Mount,
        inputs: &[Ref],
        secrets: &HashMap<String, Secret>,
        cache_dir: &Path,
        platform: &Platform,
        held: &mut Held,
    ) -> Result<Option<MountSpec>, BuildError> {
        let kind = match &m.kind {
            OpMount::Bind => {
                let input = m.input.map(|i| &inputs[i]);
                let source = match input {
                    Some(Ref::Local(l)) if m.readonly => self.in_tree(&l.dir, &m.selector, held)?,
                    Some(Ref::Local(l)) => {
                        let src = self.in_tree(&l.dir, &m.selector, held)?;
                        self.scratch_copy(&src, held)?
                    }
                    Some(Ref::Fs(f)) if m.readonly => match f.top_key() {
                        Some(k) => {
                            let v = self.snapshotter.view(&k)?;
                            let p = self.in_tree(v.path(), &m.selector, held)?;
                            held.views.push(v);
                            p
                        }
                        None => {
                            let d = self.scratch_dir("bind")?;
                            held.dirs.push(d.clone());
                            d
                        }
                    },
                    Some(Ref::Fs(f)) => {
                        // Writable: a throwaway snapshot, dropped after the step.
                        let a = self.snapshotter.prepare(f.top_key().as_ref())?;
                        let p = self.in_tree(a.path(), &m.selector, held)?;
                        held.actives.push(a);
                        p
                    }
                    None => {
                        let d = self.scratch_dir("bind")?;
                        held.dirs.push(d.clone());
                        d
                    }
                };
                MountKind::Bind {
                    source,
                    readonly: m.readonly,
                }
            }
            OpMount::Cache { id, sharing } => {
                // Ids are hashed: never used as paths.
                let name = Digest::sha256(format!("{id}\n{platform}").as_bytes());
                let dir = cache_dir.join(name.hex());
                std::fs::create_dir_all(cache_dir).map_err(|e| BuildError::io(cache_dir, e))?;
                let created = match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(BuildError::io(&dir, e)),
                };
                // A new cache takes the owner and mode of its seed (`from=`, or
                // the directory the frontend made for `uid=`/`gid=`/`mode=`).
                if created
                    && let Some(seed) = m.input.and_then(|i| inputs[i].fs())
                    && let Some(k) = seed.top_key()
                {
                    let v = self.snapshotter.view(&k)?;
                    let src = self.in_tree(v.path(), &m.selector, held)?;
                    let meta = std::fs::metadata(&src).map_err(|e| BuildError::io(&src, e))?;
                    held.views.push(v);
                    std::os::unix::fs::chown(&dir, Some(meta.uid()), Some(meta.gid()))
                        .map_err(|e| BuildError::io(&dir, e))?;
                    std::fs::set_permissions(
                        &dir,
                        std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                    )
                    .map_err(|e| BuildError::io(&dir, e))?;
                }
                if *sharing == op::CacheSharing::Locked {
                    let lock_path = cache_dir.join(format!("{}.lock", name.hex()));
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&lock_path)
                        .map_err(|e| BuildError::io(&lock_path, e))?;
                    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
                        .map_err(|e| BuildError::io(&lock_path, e.into()))?;
                    held.locks.push(f);
                }
                MountKind::Bind {
                    source: dir,
                    readonly: m.readonly,
                }
            }
            OpMount::Tmpfs { size } => MountKind::Tmpfs {
                size: size.unwrap_or(0),
            },
            OpMount::Secret {
                id,
                required,
                uid,
                gid,
                mode,
            } => {
                let Some(secret) = secrets.get(id) else {
                    if *required {
                        return Err(BuildError::Secret {
                            id: id.clone(),
                            message: "was not given (pass --secret id=…)".into(),
                        });
                    }
                    return Ok(None);
                };
                let dir = self.scratch_dir("secret")?;
                held.dirs.push(dir.clone());
                let file = dir.join("secret");
                let mut f = std::fs::OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .mode(0o400)
                    .open(&file)
                    .map_err(|e| BuildError::io(&file, e))?;
                f.write_all(&secret.0)
                    .map_err(|e| BuildError::io(&file, e))?;
                drop(f);
                std::os::unix::fs::chown(&file, Some(*uid), Some(*gid))
                    .map_err(|e| BuildError::io(&file, e))?;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode & 0o7777))
                    .map_err(|e| BuildError::io(&file, e))?;
                MountKind::Bind {
                    source: file,
                    readonly: true,
                }
            }
            OpMount::Ssh { .. } => {
                return Err(BuildError::Unsupported {
                    what: "RUN --mount=type=ssh".into(),
                });
            }
            _ => {
                return Err(BuildError::Unsupported {
                    what: "this RUN --mount type".into(),
                });
            }
        };
        Ok(Some(MountSpec {
            destination: m.dest.clone(),
            kind,
        }))
    }
}

/// For each mount, the first component of its destination that the root lacks:
/// the runtime creates it as a mount point, and it must not end up in the layer.
/// Files the executor bind-mounts into every step (see `worker::exec`): runc
/// creates them when the image lacks them, and they must not end up in a layer.
const EXECUTOR_MOUNTS: [&str; 2] = ["/etc/resolv.conf", "/etc/hosts"];

fn missing_mount_points(
    root: &Path,
    mounts: &[MountSpec],
) -> Result<Vec<archive::CleanPath>, BuildError> {
    let tree = archive::Root::open(root)?;
    let mut out = Vec::new();
    // The executor's own binds come on top of the step's mounts.
    let dests = mounts
        .iter()
        .map(|m| m.destination.as_str())
        .chain(EXECUTOR_MOUNTS);
    for d in dests {
        let dest = archive::CleanPath::new(d.as_bytes())?;
        for depth in 1..=dest.depth() {
            let p = dest.prefix(depth);
            if tree.lstat(&p)?.is_none() {
                if !out.contains(&p) {
                    out.push(p);
                }
                break;
            }
        }
    }
    Ok(out)
}

/// Remove the mount points [`missing_mount_points`] found, when the step left
/// them empty (a step that wrote files there keeps them, as BuildKit does).
fn remove_stubs(root: &Path, stubs: &[archive::CleanPath]) -> Result<(), BuildError> {
    let tree = archive::Root::open(root)?;
    for p in stubs {
        if only_stubs(&tree, p)? {
            tree.remove_all(p)?;
        }
    }
    Ok(())
}

/// Whether `p` is an empty file, or a directory holding only such files and dirs.
fn only_stubs(tree: &archive::Root, p: &archive::CleanPath) -> Result<bool, BuildError> {
    let Some(st) = tree.lstat(p)? else {
        return Ok(false);
    };
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Directory => {
            for name in tree.read_dir(p)? {
                if !only_stubs(tree, &p.join(&name))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        rustix::fs::FileType::RegularFile => Ok(st.st_size == 0),
        _ => Ok(false),
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
