//! `manifold build --progress`: the rawjson lines of real builds checked against
//! the schema documented in docs/progress.md, and the tty display as a terminal
//! shows it (under tmux). Needs root and runc, like tests/build.rs; the tty test
//! needs tmux (scripts/setup.sh installs it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use serde_json::Value;

const BASE: &str = "localhost/busybox:test";

fn env_for(root: &Path) -> [(&'static str, PathBuf); 3] {
    [
        ("MANIFOLD_ROOT", root.to_path_buf()),
        ("MANIFOLD_CONFIG", root.join("config")),
        ("DOCKER_CONFIG", root.join("docker")),
    ]
}

fn manifold(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args)
        .envs(env_for(root))
        .env_remove("MANIFOLD_RUNTIME")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A state root whose store holds a busybox index for `arches` named [`BASE`].
fn root_with_base(arches: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(dir.path(), BASE, arches);
    dir
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap();
}

// ------------------------------------------------------------ rawjson

/// Field name → type, per event kind; `"*"` holds the fields of every event.
type Schema = BTreeMap<String, BTreeMap<String, String>>;

/// The schema as docs/progress.md documents it: the field tables under the
/// `### Fields of every event` and `### \`KIND\`` headings of its rawjson part.
fn documented_schema() -> Schema {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/progress.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (_, rawjson) = doc.split_once("## rawjson").expect("a rawjson section");
    let mut schema = Schema::new();
    let mut kind: Option<String> = None;
    for line in rawjson.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            kind = if heading == "Fields of every event" {
                Some("*".into())
            } else if heading == "Example" {
                None
            } else {
                Some(heading.trim_matches('`').to_owned())
            };
            if let Some(k) = &kind {
                schema.entry(k.clone()).or_default();
            }
        } else if let (Some(k), Some(row)) = (&kind, line.strip_prefix("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let field = cells[0].trim_end_matches('`');
            schema
                .get_mut(k)
                .unwrap()
                .insert(field.to_owned(), cells[1].to_owned());
        }
    }
    assert!(
        schema.len() > 5,
        "too few event kinds parsed from {}: {schema:?}",
        path.display()
    );
    schema
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "string or null" => v.is_string() || v.is_null(),
        "integer or null" => v.is_u64() || v.is_i64() || v.is_null(),
        "boolean" => v.is_boolean(),
        "digest" => v.as_str().is_some_and(|s| {
            s.strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        }),
        other => panic!("docs/progress.md uses a type the test does not know: {other:?}"),
    }
}

/// Every rawjson event of a build's standard error, each checked against
/// `schema`. The events come first; what follows (`built …`, the error) is not
/// JSON.
fn events(schema: &Schema, stderr: &str) -> Vec<Value> {
    let lines: Vec<&str> = stderr.lines().collect();
    let n = lines
        .iter()
        .position(|l| !l.starts_with('{'))
        .unwrap_or(lines.len());
    assert!(
        lines[n..].iter().all(|l| !l.starts_with('{')),
        "JSON after the build's last event:\n{stderr}"
    );
    let (mut started, mut cached) = (HashSet::new(), HashSet::new());
    lines[..n]
        .iter()
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            check_event(schema, &v, line);
            let vertex = v["vertex"].as_str().unwrap().to_owned();
            match v["event"].as_str().unwrap() {
                "started" => {
                    started.insert(vertex);
                }
                "cached" => {
                    cached.insert(vertex);
                }
                "log" | "completed" | "failed" => assert!(
                    started.contains(&vertex),
                    "an event of a step that did not start: {line}"
                ),
                "status" => assert!(
                    started.contains(&vertex) || cached.contains(&vertex),
                    "a status of a step not shown yet: {line}"
                ),
                _ => {}
            }
            v
        })
        .collect()
}

fn check_event(schema: &Schema, v: &Value, line: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {line}"));
    let kind = obj
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no event kind: {line}"));
    let own = schema
        .get(kind)
        .unwrap_or_else(|| panic!("undocumented event kind {kind:?}: {line}"));
    let fields: BTreeMap<&String, &String> = schema["*"].iter().chain(own).collect();
    let keys: BTreeSet<&String> = obj.keys().collect();
    let expected: BTreeSet<&String> = fields.keys().copied().collect();
    assert_eq!(keys, expected, "fields of a {kind:?} event: {line}");
    for (field, ty) in fields {
        assert!(has_type(&obj[field], ty), "{field} is not a {ty}: {line}");
    }
    assert_eq!(obj["v"], 1, "{line}");
    match kind {
        "log" => assert!(["stdout", "stderr"].contains(&obj["stream"].as_str().unwrap())),
        "cache_miss" => assert!(
            [
                "no_cache",
                "ignore_cache",
                "new_step",
                "content_changed",
                "input_changed",
                "record_missing",
                "record_corrupt",
                "unloadable",
                "other"
            ]
            .contains(&obj["cause"].as_str().unwrap()),
            "{line}"
        ),
        _ => {}
    }
}

fn kinds(events: &[Value]) -> BTreeSet<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

/// The events of `kind` whose `field` contains `needle`.
fn find<'a>(events: &'a [Value], kind: &str, field: &str, needle: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e[field].as_str().is_some_and(|s| s.contains(needle)))
        .collect()
}

#[test]
fn rawjson_lines_follow_the_documented_schema() {
    testkit::require_root_and_runc();
    let schema = documented_schema();
    let root = root_with_base(&["amd64", "i386"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nCOPY a.txt /a.txt\nRUN echo to stdout && echo to stderr >&2 && cat /a.txt\n",
    );
    write(ctx.path(), "a.txt", "first\n");
    let build_for = |platforms: &str, dir: &Path| {
        let out = manifold(
            root.path(),
            &[
                "build",
                "--progress=rawjson",
                "--platform",
                platforms,
                dir.to_str().unwrap(),
            ],
        );
        (out.status.success(), text(&out.stderr))
    };
    let build = |dir: &Path| build_for("linux/amd64", dir);

    let (ok, err) = build(ctx.path());
    assert!(ok, "{err}");
    let first = events(&schema, &err);
    for kind in ["cache_miss", "started", "log", "completed"] {
        assert!(kinds(&first).contains(kind), "no {kind} event:\n{err}");
    }
    let run = find(&first, "started", "name", "RUN echo to stdout");
    assert_eq!(run.len(), 1, "{err}");
    assert_eq!(run[0]["platform"], Value::Null, "single-platform: {err}");
    let logs: String = first
        .iter()
        .filter(|e| e["event"] == "log" && e["vertex"] == run[0]["vertex"])
        .map(|e| format!("{}:{}", e["stream"], e["data"].as_str().unwrap()))
        .collect();
    assert!(logs.contains("\"stdout\":to stdout\n"), "{logs}");
    assert!(logs.contains("\"stderr\":to stderr\n"), "{logs}");
    // Reading the context shows under its step.
    let context = find(&first, "status", "id", "transferring context: ");
    assert_eq!(context.len(), 1, "{err}");
    let id = context[0]["id"].as_str().unwrap();
    assert!(id.contains(", 2 files (2 read) in "), "{id}");
    assert_eq!(
        context[0]["vertex"],
        find(&first, "started", "name", "load build context")[0]["vertex"],
        "{err}"
    );
    // The export is a step of its own, with the layers' bytes and the documents.
    let export = find(&first, "started", "name", "exporting to image");
    assert_eq!(export.len(), 1, "{err}");
    let of_export = |id: &str| -> Vec<&Value> {
        find(&first, "status", "id", id)
            .into_iter()
            .filter(|e| e["vertex"] == export[0]["vertex"])
            .collect()
    };
    let layers = of_export("exporting layers");
    let last = layers
        .last()
        .unwrap_or_else(|| panic!("no layers status:\n{err}"));
    assert_eq!(last["done"], true, "{err}");
    assert!(last["current"].as_u64().unwrap() > 0, "{err}");
    assert_eq!(of_export("exporting manifest sha256:").len(), 1, "{err}");
    assert_eq!(
        find(
            &first,
            "completed",
            "vertex",
            export[0]["vertex"].as_str().unwrap()
        )
        .len(),
        1,
        "{err}"
    );

    // A rebuild takes every step from the cache.
    let (ok, err) = build(ctx.path());
    assert!(ok, "{err}");
    let cached = events(&schema, &err);
    assert!(kinds(&cached).contains("cached"), "{err}");
    // Only the export runs: its layers come from the first build's.
    let ran: Vec<&str> = cached
        .iter()
        .filter(|e| e["event"] == "started")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["exporting to image"], "{err}");
    assert_eq!(
        find(&cached, "cached", "name", "RUN echo").len(),
        1,
        "{err}"
    );

    // A changed context file is a content change.
    write(ctx.path(), "a.txt", "second\n");
    let (ok, err) = build(ctx.path());
    assert!(ok, "{err}");
    let changed = events(&schema, &err);
    let misses = find(&changed, "cache_miss", "reason", "a.txt changed");
    assert!(!misses.is_empty(), "{err}");
    assert!(
        misses.iter().all(|m| m["cause"] == "content_changed"),
        "{err}"
    );

    // A failing step, for two platforms: steps say their platform. Neither
    // platform's step fails before both have started (a failure cancels the
    // steps not started yet): each waits at a barrier on the host's network.
    let barrier = StepBarrier::new(2);
    let bad = tempfile::tempdir().unwrap();
    write(
        bad.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test\n\
             RUN echo about to fail && nc 127.0.0.1 {} </dev/null; exit 3\n",
            barrier.port
        ),
    );
    let (ok, err) = build_for("linux/amd64,linux/386", bad.path());
    assert!(!ok, "{err}");
    assert_eq!(
        barrier.arrived(),
        2,
        "both platforms' RUN steps were running at once (needs 2 or more steps at a time): {err}"
    );
    let failed = events(&schema, &err);
    for platform in ["linux/amd64", "linux/386"] {
        let run = find(&failed, "started", "name", "RUN echo about to fail");
        assert!(
            run.iter().any(|e| e["platform"] == platform
                && e["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("[{platform} "))),
            "{platform}: {err}"
        );
    }
    let f = find(&failed, "failed", "error", "exit code 3");
    assert!(!f.is_empty(), "{err}");
    for e in f {
        let logs = find(&failed, "log", "data", "about to fail");
        assert!(logs.iter().any(|l| l["vertex"] == e["vertex"]), "{err}");
    }
}

#[test]
fn rawjson_has_a_warning_event_per_build_check_warning() {
    testkit::require_root_and_runc();
    let schema = documented_schema();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    let dockerfile = "FROM localhost/busybox:test as x\nRUN echo hi\n";
    write(ctx.path(), "Dockerfile", dockerfile);
    let out = manifold(
        root.path(),
        &["build", "--progress=rawjson", ctx.path().to_str().unwrap()],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let all = events(&schema, &err);
    let warnings: Vec<&Value> = all.iter().filter(|e| e["event"] == "warning").collect();
    assert_eq!(warnings.len(), 1, "{err}");
    let w = warnings[0];
    assert_eq!(w["rule"], "FromAsCasing", "{err}");
    assert_eq!(
        w["message"], "'as' and 'FROM' keywords' casing do not match",
        "{err}"
    );
    assert_eq!(w["line"], 1, "{err}");
    assert_eq!(
        w["url"], "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
        "{err}"
    );
    let digest = oci::Digest::sha256(dockerfile.as_bytes()).to_string();
    assert_eq!(w["vertex"], digest.as_str(), "{err}");
    // Before any step: the checks run when the Dockerfile is lowered.
    let first_started = all.iter().position(|e| e["event"] == "started").unwrap();
    let at = all.iter().position(|e| e["event"] == "warning").unwrap();
    assert!(at < first_started, "{err}");
    // Programs get the events; the lines for people are not printed.
    assert!(!err.contains("warning found"), "{err}");

    let clean = tempfile::tempdir().unwrap();
    write(
        clean.path(),
        "Dockerfile",
        "FROM localhost/busybox:test AS x\nRUN echo hi\n",
    );
    let out = manifold(
        root.path(),
        &[
            "build",
            "--progress=rawjson",
            clean.path().to_str().unwrap(),
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!kinds(&events(&schema, &err)).contains("warning"), "{err}");
}

/// A barrier for build steps on the host's network (a `RUN`'s default): it
/// holds each connection to `port` open until `steps` have come, then closes
/// them all, so `nc 127.0.0.1 PORT </dev/null` in a step returns only once
/// every one of the steps is running.
struct StepBarrier {
    port: u16,
    over: Arc<AtomicBool>,
    waiter: std::thread::JoinHandle<usize>,
}

impl StepBarrier {
    /// How long the barrier waits for the last step before letting the ones
    /// that came go on: a bound so that a build which cannot run the steps at
    /// once fails the test instead of hanging it.
    const PATIENCE: Duration = Duration::from_secs(300);

    fn new(steps: usize) -> StepBarrier {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let over = Arc::new(AtomicBool::new(false));
        let waiter = {
            let over = over.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Self::PATIENCE;
                let mut held = Vec::new();
                while held.len() < steps && Instant::now() < deadline && !over.load(SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => held.push(conn),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => panic!("accepting a step's connection: {e}"),
                    }
                }
                held.len()
            })
        };
        StepBarrier { port, over, waiter }
    }

    /// How many steps came to the barrier, once the build is over.
    fn arrived(self) -> usize {
        self.over.store(true, SeqCst);
        self.waiter.join().expect("the barrier does not panic")
    }
}

/// The `status` events of the step named `step` whose id contains `id`.
fn statuses<'a>(events: &'a [Value], step: &str, id: &str) -> Vec<&'a Value> {
    let vertex = find(events, "started", "name", step)
        .first()
        .unwrap_or_else(|| panic!("no step {step:?}"))["vertex"]
        .clone();
    find(events, "status", "id", id)
        .into_iter()
        .filter(|e| e["vertex"] == vertex)
        .collect()
}

#[test]
fn pulls_and_pushes_show_each_blobs_bytes() {
    testkit::require_root_and_runc();
    let schema = documented_schema();
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let name = format!("{}/progress/img:1", registry.addr);
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    // Over the client's one-PUT limit (8 MiB): sent as a stream, counted as it goes.
    let big = testkit::noise(12 << 20, 7);
    std::fs::write(ctx.path().join("big.bin"), &big).unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nCOPY big.bin /big.bin\n",
    );
    let out = manifold(
        root.path(),
        &[
            "build",
            "--progress=rawjson",
            "-t",
            &name,
            "--push",
            ctx.path().to_str().unwrap(),
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let pushed = events(&schema, &err);
    let exported = statuses(&pushed, "exporting to image", "exporting layers");
    let last = exported.last().unwrap();
    assert_eq!(last["done"], true, "{err}");
    assert!(
        last["current"].as_u64().unwrap() >= 12 << 20,
        "random bytes do not shrink: {err}"
    );
    let step = format!("pushing {name}");
    let push = find(&pushed, "started", "name", &step);
    assert_eq!(push.len(), 1, "{err}");
    let vertex = push[0]["vertex"].as_str().unwrap();
    assert_eq!(
        find(&pushed, "completed", "vertex", vertex).len(),
        1,
        "{err}"
    );
    // The base layer is not the build's: the push sends it, and says so at its end.
    let sent: Vec<&Value> = statuses(&pushed, &step, "sha256:")
        .into_iter()
        .filter(|e| e["done"] == true && e["total"].is_u64())
        .collect();
    assert!(!sent.is_empty(), "{err}");
    for e in &sent {
        assert_eq!(e["current"], e["total"], "{err}");
    }
    // The new layer went up while it was exported: the push waited for the rest.
    let tapped = statuses(&pushed, &step, "layers streamed during the export");
    let last = tapped.last().unwrap();
    assert_eq!(last["done"], true, "{err}");
    assert!(last["total"].as_u64().unwrap() >= 12 << 20, "{err}");
    assert_eq!(last["current"], last["total"], "{err}");
    assert!(
        statuses(&pushed, &step, "pushing manifest sha256:")
            .iter()
            .any(|e| e["done"] == true),
        "{err}"
    );
    assert!(err.contains(&format!("pushed {name}@sha256:")), "{err}");

    // A fresh root pulls the image: the FROM step shows each layer's bytes.
    let fresh = tempfile::tempdir().unwrap();
    let from = tempfile::tempdir().unwrap();
    write(
        from.path(),
        "Dockerfile",
        &format!("FROM {name}\nCOPY Dockerfile /\n"),
    );
    let out = manifold(
        fresh.path(),
        &["build", "--progress=rawjson", from.path().to_str().unwrap()],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let pulled = events(&schema, &err);
    let layers = statuses(&pulled, &format!("FROM {name}"), "sha256:");
    let big_layer: Vec<&&Value> = layers
        .iter()
        .filter(|e| e["total"].as_u64().is_some_and(|t| t >= 12 << 20))
        .collect();
    assert!(
        big_layer
            .iter()
            .any(|e| e["done"] == false
                && e["current"].as_u64().unwrap() < e["total"].as_u64().unwrap()),
        "bytes reported before the end: {err}"
    );
    let end = big_layer.last().unwrap();
    assert_eq!(
        (end["done"].clone(), end["current"].clone()),
        (Value::Bool(true), end["total"].clone()),
        "{err}"
    );
}

// ---------------------------------------------------------------- tty

/// A command in a detached tmux session on a server of its own; the server
/// is killed when this is dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, cols: u32, rows: u32, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let st = tmux
            .cmd()
            .args(["new-session", "-d", "-s", "t", "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string())
            .arg(command)
            .status()
            .unwrap();
        assert!(st.success(), "tmux new-session");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(["-f", "/dev/null"]);
        c
    }

    /// The pane's history and screen, one string per row, trailing blanks cut.
    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-J", "-S", "-", "-t", "t"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux capture-pane: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The capture once `marker` shows up.
    fn wait_for(&self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture();
            if screen.contains(marker) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {marker:?} after {timeout:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// The final screen of `manifold build --progress=tty ARGS` in a 160×40
/// terminal, which must exit with `code`.
fn tty_build(root: &Path, args: &str, code: i32) -> String {
    testkit::require_tool("tmux");
    let env: String = env_for(root)
        .iter()
        .map(|(k, v)| format!("{k}={} ", v.display()))
        .collect();
    let command = format!(
        "env -u MANIFOLD_RUNTIME {env}{} build --progress=tty {args} </dev/null; echo manifold-exit=$?; sleep 600",
        env!("CARGO_BIN_EXE_manifold")
    );
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(dir.path(), 160, 40, &command);
    let screen = tmux.wait_for("manifold-exit=", Duration::from_secs(300));
    assert!(
        screen.contains(&format!("manifold-exit={code}")),
        "{screen}"
    );
    screen
}

/// The lines of `screen` that contain every one of `parts`.
fn lines_with<'a>(screen: &'a str, parts: &[&str]) -> Vec<&'a str> {
    screen
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

#[test]
fn tty_display_shows_each_platforms_steps_and_cached_on_a_rebuild() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64", "i386"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nCOPY a.txt /a.txt\n\
         RUN for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done\n",
    );
    write(ctx.path(), "a.txt", "a\n");
    let args = format!("--platform linux/amd64,linux/386 {}", ctx.path().display());

    let screen = tty_build(root.path(), &args, 0);
    // Redrawn in place: one display, not one per frame.
    let headers = lines_with(&screen, &["[+] Building"]);
    assert_eq!(headers.len(), 1, "{screen}");
    assert!(headers[0].ends_with("FINISHED"), "{screen}");
    for platform in ["[linux/amd64 ", "[linux/386 "] {
        let run = lines_with(&screen, &[platform, "RUN for i in", "DONE"]);
        assert_eq!(run.len(), 1, "{platform}:\n{screen}");
        assert!(run[0].starts_with('#'), "{screen}");
    }
    assert!(
        lines_with(&screen, &["    > "]).is_empty(),
        "output of finished steps is gone from the final display:\n{screen}"
    );
    assert_eq!(
        lines_with(&screen, &["exporting to image", "DONE"]).len(),
        1,
        "{screen}"
    );
    let layers = lines_with(&screen, &["    => exporting layers ", " done"]);
    assert_eq!(layers.len(), 1, "{screen}");
    assert_eq!(
        lines_with(
            &screen,
            &["    => exporting manifest list sha256:", " done"]
        )
        .len(),
        1,
        "{screen}"
    );
    assert!(screen.contains("built sha256:"), "{screen}");

    let screen = tty_build(root.path(), &args, 0);
    let headers = lines_with(&screen, &["[+] Building"]);
    assert_eq!(headers.len(), 1, "{screen}");
    assert!(headers[0].ends_with("FINISHED"), "{screen}");
    for platform in ["[linux/amd64 ", "[linux/386 "] {
        let run = lines_with(&screen, &[platform, "RUN for i in", "CACHED"]);
        assert_eq!(run.len(), 1, "{platform}:\n{screen}");
    }

    // A failed step keeps its last output lines in the final display.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo about to fail && exit 3\n",
    );
    let screen = tty_build(root.path(), &args, 1);
    let headers = lines_with(&screen, &["[+] Building"]);
    assert_eq!(headers.len(), 1, "{screen}");
    assert!(headers[0].ends_with("ERROR"), "{screen}");
    let failed = lines_with(&screen, &["RUN echo about to fail", "ERROR"]);
    assert!(!failed.is_empty(), "{screen}");
    assert!(
        !lines_with(&screen, &["    > about to fail"]).is_empty(),
        "{screen}"
    );
}

#[test]
fn tty_prints_the_build_checks_warnings_under_the_final_display() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test as x\nRUN echo hi\n",
    );
    let screen = tty_build(root.path(), &ctx.path().display().to_string(), 0);
    let lines: Vec<&str> = screen.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("[+] Building") && l.ends_with("FINISHED"))
        .unwrap_or_else(|| panic!("no final display:\n{screen}"));
    let warning = " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)";
    let at: Vec<usize> = (0..lines.len()).filter(|i| lines[*i] == warning).collect();
    assert_eq!(at.len(), 1, "{screen}");
    assert!(header < at[0], "{screen}");
    assert_eq!(
        lines[at[0] + 1],
        "1 warning found (use --call=check for details)",
        "{screen}"
    );
}
