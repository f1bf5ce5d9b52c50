//! A fake runner and graph helpers shared by the solver's test suites.
#![allow(dead_code)] // each suite uses a different part

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use graph::op::{Copy, EnvVar, Exec, File, FileAction, Mount, MountKind, Network, ResolveMode};
use graph::op::{Security, Source};
use graph::{Graph, Metadata, Op, Vertex};
use oci::{Digest, Platform};
use solver::{
    BoxError, CacheRecord, CacheStore, CacheValue, ContentKey, Event, LogStream, OpRunner, RunCtx,
    SolveOptions, Solver, SolverConfig,
};
use tokio::sync::{Barrier, Semaphore, mpsc};

/// A runner whose results are strings naming the op and its inputs. It
/// counts runs, can hold a run until released, and fails on demand.
#[derive(Debug, Default)]
pub struct FakeRunner {
    runs: Mutex<HashMap<Digest, usize>>,
    interrupted: Mutex<HashMap<Digest, usize>>,
    current: AtomicUsize,
    max: AtomicUsize,
    /// Runs of these vertices wait for a permit (or cancellation).
    gates: Mutex<HashMap<Digest, Arc<Semaphore>>>,
    failing: Mutex<HashSet<Digest>>,
    /// Added to a vertex's result, to make it differ from the last run.
    salt: Mutex<HashMap<Digest, String>>,
    /// The build context: path → content.
    files: Mutex<HashMap<String, String>>,
    /// Exec runs meet here in groups.
    barrier: Option<Arc<Barrier>>,
    /// Each run appends the vertex digest here (for other processes).
    run_log: Option<PathBuf>,
    pub unloadable: AtomicBool,
}

/// Leaves the concurrency count on every way out of `run`.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeRunner {
    pub fn new() -> Self {
        FakeRunner::default()
    }

    pub fn with_barrier(n: usize) -> Self {
        FakeRunner {
            barrier: Some(Arc::new(Barrier::new(n))),
            ..FakeRunner::default()
        }
    }

    pub fn with_run_log(path: PathBuf) -> Self {
        FakeRunner {
            run_log: Some(path),
            ..FakeRunner::default()
        }
    }

    pub fn runs(&self, d: &Digest) -> usize {
        self.runs.lock().unwrap().get(d).copied().unwrap_or(0)
    }

    pub fn total_runs(&self) -> usize {
        self.runs.lock().unwrap().values().sum()
    }

    /// The vertices that ran, each once.
    pub fn ran(&self) -> HashSet<Digest> {
        self.runs.lock().unwrap().keys().cloned().collect()
    }

    pub fn reset_runs(&self) {
        self.runs.lock().unwrap().clear();
    }

    pub fn interrupted(&self, d: &Digest) -> usize {
        self.interrupted
            .lock()
            .unwrap()
            .get(d)
            .copied()
            .unwrap_or(0)
    }

    pub fn max_concurrent(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    /// Hold runs of `d` until [`FakeRunner::release`].
    pub fn gate(&self, d: &Digest) -> Arc<Semaphore> {
        self.gates
            .lock()
            .unwrap()
            .entry(d.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(0)))
            .clone()
    }

    pub fn release(&self, d: &Digest) {
        self.gate(d).add_permits(1000);
    }

    pub fn fail(&self, d: &Digest) {
        self.failing.lock().unwrap().insert(d.clone());
    }

    pub fn set_salt(&self, d: &Digest, salt: &str) {
        self.salt.lock().unwrap().insert(d.clone(), salt.to_owned());
    }

    pub fn write_file(&self, path: &str, content: &str) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), content.to_owned());
    }

    fn local_files(&self, vertex: &Vertex) -> Vec<(String, String)> {
        let Op::Source(Source::Local { include, .. }) = &vertex.op else {
            return Vec::new();
        };
        let files = self.files.lock().unwrap();
        let mut out: Vec<_> = include
            .iter()
            .map(|p| (p.clone(), files.get(p).cloned().unwrap_or_default()))
            .collect();
        out.sort();
        out
    }

    fn result(&self, vertex: &Vertex, inputs: &[String]) -> String {
        let digest = vertex.digest();
        let own = match &vertex.op {
            Op::Source(Source::Local { .. }) => format!("{:?}", self.local_files(vertex)),
            op => format!("{}:{}", op.kind(), solver::key::op_digest(op).short()),
        };
        let salt = self.salt.lock().unwrap().get(&digest).cloned();
        format!("{own}({}){}", inputs.join(","), salt.unwrap_or_default())
    }

    async fn hold(&self, digest: &Digest, ctx: &RunCtx) -> Result<(), BoxError> {
        let gate = self.gates.lock().unwrap().get(digest).cloned();
        if let Some(gate) = gate {
            tokio::select! {
                permit = gate.acquire() => permit.unwrap().forget(),
                _ = ctx.cancelled() => {
                    *self.interrupted.lock().unwrap().entry(digest.clone()).or_default() += 1;
                    return Err("interrupted".into());
                }
            }
        }
        Ok(())
    }
}

impl OpRunner for FakeRunner {
    type Output = String;

    async fn run(
        &self,
        vertex: &Vertex,
        inputs: Vec<String>,
        ctx: &RunCtx,
    ) -> Result<String, BoxError> {
        let digest = ctx.digest().clone();
        assert_eq!(digest, vertex.digest(), "the context names the vertex run");
        *self.runs.lock().unwrap().entry(digest.clone()).or_default() += 1;
        if let Some(path) = &self.run_log {
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            log.write_all(format!("{digest}\n").as_bytes())?;
        }
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = Running(&self.current);
        self.max.fetch_max(now, Ordering::SeqCst);
        ctx.log(LogStream::Stdout, format!("running {}", vertex.op.kind()));
        if let (Some(barrier), Op::Exec(_)) = (&self.barrier, &vertex.op) {
            barrier.wait().await;
        }
        // Give any run that should not be concurrent a chance to start.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        self.hold(&digest, ctx).await?;
        ctx.log(LogStream::Stdout, "finished");
        if self.failing.lock().unwrap().contains(&digest) {
            ctx.log(LogStream::Stderr, "make: *** [all] Error 2");
            return Err(format!("process exited with code 2 in {}", digest.short()).into());
        }
        Ok(self.result(vertex, &inputs))
    }

    async fn content_key(
        &self,
        vertex: &Vertex,
        _inputs: &[String],
    ) -> Result<Option<ContentKey>, BoxError> {
        let files = self.local_files(vertex);
        if !matches!(vertex.op, Op::Source(Source::Local { .. })) {
            return Ok(None);
        }
        let digest = Digest::sha256(format!("{files:?}").as_bytes());
        let name = match files.as_slice() {
            [(path, _)] => format!("local context file {path}"),
            _ => "local context".to_owned(),
        };
        Ok(Some(ContentKey::new(digest, name)))
    }

    fn save(&self, output: &String) -> Result<CacheValue, BoxError> {
        Ok(CacheValue {
            value: serde_json::json!({ "result": output }),
            size: output.len() as u64,
        })
    }

    fn load_cached(&self, record: &CacheRecord) -> Option<String> {
        if self.unloadable.load(Ordering::SeqCst) {
            return None;
        }
        record.value["result"].as_str().map(str::to_owned)
    }
}

pub fn amd64() -> Platform {
    Platform::new("linux", "amd64", None)
}

pub fn meta(description: &str) -> Metadata {
    Metadata {
        description: description.to_owned(),
        platform: Some(amd64()),
        ..Metadata::default()
    }
}

pub fn image(reference: &str) -> Op {
    Op::Source(Source::Image {
        reference: reference.to_owned(),
        platform: amd64(),
        resolve_mode: ResolveMode::Default,
    })
}

/// The build context, sending only `files`.
pub fn local(files: &[&str]) -> Op {
    Op::Source(Source::Local {
        name: "context".to_owned(),
        include: files.iter().map(|f| (*f).to_owned()).collect(),
        exclude: vec![],
        follow_paths: vec![],
    })
}

/// `sh -c script` on input 0, with inputs 1.. mounted read-only.
pub fn exec(script: &str, inputs: usize) -> Op {
    exec_with_proxy(script, inputs, vec![])
}

pub fn exec_with_proxy(script: &str, inputs: usize, proxy_env: Vec<EnvVar>) -> Op {
    let mounts = (0..inputs.max(1))
        .map(|i| Mount {
            input: Some(i),
            dest: if i == 0 {
                "/".to_owned()
            } else {
                format!("/in{i}")
            },
            selector: "/".to_owned(),
            readonly: i != 0,
            kind: MountKind::Bind,
        })
        .collect();
    Op::Exec(Exec {
        args: vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()],
        env: vec![EnvVar::new("PATH", "/usr/bin:/bin")],
        cwd: "/".to_owned(),
        user: String::new(),
        hostname: None,
        network: Network::Default,
        security: Security::Sandbox,
        proxy_env,
        secret_env: vec![],
        platform: amd64(),
        mounts,
        extra_hosts: Vec::new(),
        ulimits: Vec::new(),
        shm_size: None,
    })
}

/// `COPY <src_path> <dest>` from input 1 onto input 0.
pub fn copy(src_path: &str, dest: &str) -> Op {
    Op::File(File {
        base: Some(0),
        actions: vec![FileAction::Copy(Copy {
            src: 1,
            src_path: src_path.to_owned(),
            dest: dest.to_owned(),
            chown: None,
            chmod: None,
            follow_symlinks: true,
            dir_contents_only: false,
            create_dest_path: true,
            allow_wildcard: true,
            allow_empty_wildcard: false,
            unpack: false,
            parents: false,
            include: vec![],
            exclude: vec![],
            created: None,
        })],
    })
}

pub fn add(graph: &mut Graph, op: Op, inputs: &[&Digest], description: &str) -> Digest {
    let inputs = inputs.iter().map(|d| (*d).clone()).collect();
    graph.add_op(op, inputs, meta(description)).unwrap()
}

/// The vertices of [`app_graph`].
#[derive(Debug, Clone)]
pub struct App {
    pub base: Digest,
    pub context: Digest,
    pub deps: Digest,
    pub copy: Digest,
    pub build: Digest,
    pub test: Digest,
}

/// A small app build: `deps` does not read the context, `copy` and what
/// follows it do.
///
/// ```text
/// base ── deps ───────────────┐
///   └──── copy ◀── context    ├── test
///          └──── build ───────┘
/// ```
pub fn app_graph() -> (Graph, App) {
    let mut g = Graph::new();
    let base = add(
        &mut g,
        image("docker.io/library/alpine:3.20"),
        &[],
        "[base 1/1] FROM alpine",
    );
    let context = add(
        &mut g,
        local(&["app/main.c"]),
        &[],
        "[internal] load build context",
    );
    let deps = add(
        &mut g,
        exec("apk add gcc", 1),
        &[&base],
        "[build 2/4] RUN apk add gcc",
    );
    let copy = add(
        &mut g,
        copy("app/main.c", "/src/"),
        &[&deps, &context],
        "[build 3/4] COPY app/main.c /src/",
    );
    let build = add(
        &mut g,
        exec("cc /src/main.c", 1),
        &[&copy],
        "[build 4/4] RUN cc /src/main.c",
    );
    let test = add(
        &mut g,
        exec("./a.out", 2),
        &[&build, &deps],
        "[test 1/1] RUN ./a.out",
    );
    let app = App {
        base,
        context,
        deps,
        copy,
        build,
        test,
    };
    (g, app)
}

/// A solver over a cache at `root` with `parallelism`.
pub fn solver_at(
    root: &std::path::Path,
    runner: FakeRunner,
    parallelism: usize,
) -> Solver<FakeRunner> {
    let store = CacheStore::open(root).unwrap();
    Solver::new(runner, store, SolverConfig { parallelism })
}

/// Options with a fresh event channel.
pub fn options() -> (SolveOptions, mpsc::UnboundedReceiver<Event>) {
    let (events, rx) = solver::EventSink::channel();
    let opts = SolveOptions {
        events,
        ..SolveOptions::default()
    };
    (opts, rx)
}

/// Every event received so far.
pub fn drain(rx: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

/// Wait (without a clock: the test runner's timeout ends a hang) for an
/// event matching `pred`.
pub async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    loop {
        let event = rx
            .recv()
            .await
            .expect("the solve ended before the event came");
        if pred(&event) {
            return event;
        }
    }
}

/// Wait until every vertex of `ds` has started, in any order.
pub async fn wait_started(rx: &mut mpsc::UnboundedReceiver<Event>, ds: &[&Digest]) {
    let mut left: HashSet<&Digest> = ds.iter().copied().collect();
    while !left.is_empty() {
        if let Event::VertexStarted { digest, .. } = wait_for(rx, |_| true).await {
            left.remove(&digest);
        }
    }
}

pub fn started(d: &Digest) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::VertexStarted { digest, .. } if digest == d)
}

/// The cache misses in `events`, by vertex.
pub fn misses(events: &[Event]) -> HashMap<Digest, solver::MissReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CacheMiss { digest, reason, .. } => Some((digest.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

/// The cache keys in `events`, by vertex.
pub fn keys(events: &[Event]) -> HashMap<Digest, Digest> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CacheMiss { digest, key, .. } | Event::VertexCached { digest, key, .. } => {
                Some((digest.clone(), key.clone()))
            }
            _ => None,
        })
        .collect()
}
