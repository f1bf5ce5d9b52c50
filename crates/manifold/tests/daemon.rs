//! Remote builders: `manifold daemon` nodes (each its own state root and socket, as
//! separate hosts would have), a client that routes platforms to them, context sync,
//! credentials passed per build, cancellation when the client goes away, and hostile
//! or malformed requests.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::daemon::{Daemon, Tls};
use testkit::registry::{Auth, DistRegistry};

const BASE: &str = "localhost/busybox:test";
const MANIFOLD: &str = env!("CARGO_BIN_EXE_manifold");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "manifold failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A daemon with its own state root and socket, whose store holds a busybox base
/// for `arches` named [`BASE`]; stopped on drop.
fn daemon(arches: &[&str]) -> Daemon {
    Daemon::start(Path::new(MANIFOLD), BASE, arches)
}

/// A client: its own config dir (builders, docker credentials) and state root.
struct Client {
    dir: tempfile::TempDir,
}

impl Client {
    fn new() -> Client {
        Client {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(MANIFOLD);
        c.args(args)
            .env("MANIFOLD_ROOT", self.dir.path().join("root"))
            .env("MANIFOLD_CONFIG", self.dir.path().join("config"))
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("MANIFOLD_BUILDER")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    dir
}

#[test]
fn a_remote_build_syncs_only_changed_files() {
    testkit::require_root_and_runc();
    let daemon = daemon(&["amd64"]);
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", "--use", &daemon.endpoint()]));
    ok(&client.run(&["inspect", "--bootstrap"]));
    let files: Vec<(String, String)> = (0..20)
        .map(|i| (format!("src/f{i}.txt"), format!("file {i}\n")))
        .collect();
    let mut all: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    all.push((
        "Dockerfile",
        "FROM localhost/busybox:test\nCOPY src/ /src/\nRUN cat /src/f3.txt && ls /src | wc -l\n",
    ));
    let ctx = context(&all);
    let build = || {
        let out = client.run(&["build", "--progress=plain", ctx.path().to_str().unwrap()]);
        ok(&out);
        out
    };
    let out = build();
    let err = text(&out.stderr);
    assert!(err.contains("file 3"), "{err}");
    assert!(err.contains("20"), "{err}");
    let first = daemon.received();
    assert_eq!(first, 21, "every distinct file once");

    // One edit: one file crosses the wire, and the step runs again.
    std::fs::write(ctx.path().join("src/f3.txt"), "edited\n").unwrap();
    let out = build();
    assert!(
        text(&out.stderr).contains("edited"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(daemon.received(), first + 1);

    // Nothing changed: nothing sent, everything cached.
    let out = build();
    assert_eq!(daemon.received(), first + 1);
    assert!(text(&out.stderr).contains("CACHED"));
}

#[test]
fn platforms_go_to_the_nodes_that_declare_them_and_one_index_is_pushed() {
    testkit::require_root_and_runc();
    let _binfmt = testkit::binfmt::Guard::ensure(Path::new(MANIFOLD), &["arm64"]);
    let reg = DistRegistry::start(Auth::Basic {
        user: "builder".into(),
        password: "s3cret".into(),
    });
    // The base goes to the registry; the daemons pull it with the client's login.
    let seed = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(seed.path(), "busybox", &["amd64", "arm64"]);
    let client = Client::new();
    let mut login = client
        .cmd(&["login", &reg.addr, "-u", "builder", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    login.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    ok(&login.wait_with_output().unwrap());
    let base = format!("{}/lib/busybox:1", reg.addr);
    let layout = format!("oci-layout://{}:busybox", seed.path().join("oci").display());
    ok(&client.run(&["imagetools", "copy", &layout, &base]));

    let amd = daemon(&[]);
    let arm = daemon(&[]);
    ok(&client.run(&[
        "create",
        "--name",
        "pair",
        "--platform",
        "linux/amd64",
        &amd.endpoint(),
    ]));
    ok(&client.run(&[
        "create",
        "--name",
        "pair",
        "--append",
        "--platform",
        "linux/arm64",
        &arm.endpoint(),
    ]));
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {base}\nRUN uname -m > /arch\n"),
    )]);
    let target = format!("{}/demo/pair:1", reg.addr);
    let out = client.run(&[
        "--builder",
        "pair",
        "build",
        "--progress=plain",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        &target,
        "--push",
        "--annotation",
        "index:org.example.level=index",
        "--annotation",
        "manifest-descriptor:org.example.entry=yes",
        ctx.path().to_str().unwrap(),
    ]);
    ok(&out);
    // Annotations over two nodes: the client annotates the index it combines, and
    // each node's entry keeps its descriptor's.
    let raw = client.run(&["imagetools", "inspect", "--raw", &target]);
    ok(&raw);
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["annotations"]["org.example.level"], "index",
        "{index}"
    );
    // Each node's image, and its provenance (pushed by default) after it.
    let all = index["manifests"].as_array().unwrap();
    assert_eq!(all.len(), 4, "{index}");
    for e in all.iter().filter(|e| e["platform"]["os"] != "unknown") {
        assert_eq!(e["annotations"]["org.example.entry"], "yes", "{index}");
    }
    // Each node's export and push show as steps of their own, as the client's do.
    let progress = text(&out.stderr);
    let steps = |name: &str| {
        progress
            .lines()
            .filter(|l| {
                l.starts_with('#') && l.split_once(' ').is_some_and(|(_, r)| r.starts_with(name))
            })
            .count()
    };
    assert_eq!(steps("exporting to image"), 2, "{progress}");
    assert!(
        steps(&format!("pushing {}/demo/pair@sha256:", reg.addr)) >= 2,
        "{progress}"
    );
    assert!(
        progress
            .lines()
            .any(|l| l.contains(" sha256:") && l.ends_with(" done") && l.contains(" / ")),
        "a blob's bytes: {progress}"
    );
    // One index with both platforms, under the tag.
    let out = client.run(&["imagetools", "inspect", &target]);
    ok(&out);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("linux/amd64") && shown.contains("linux/arm64"),
        "{shown}"
    );
    // Each node built only its platform (its store holds one platform's image).
    for (d, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        let log = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cat {}/oci/blobs/sha256/* 2>/dev/null | grep -ac '\"architecture\":\"{arch}\"' || true",
                d.root().display()
            ))
            .output()
            .unwrap();
        assert_ne!(text(&log.stdout).trim(), "0", "{arch} built on its node");
    }
    // The daemons kept no credentials.
    for d in [&amd, &arm] {
        let found = Command::new("grep")
            .args(["-r", "-l", "s3cret"])
            .arg(d.root())
            .output()
            .unwrap();
        assert!(
            text(&found.stdout).trim().is_empty(),
            "{}",
            text(&found.stdout)
        );
    }
}

#[test]
fn a_remote_push_streams_its_layers_while_they_are_exported() {
    testkit::require_root_and_runc();
    let reg = DistRegistry::start(Auth::Open);
    let d = daemon(&["amd64"]);
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", &d.endpoint()]));
    // Over the registry client's one-PUT limit (8 MiB), and incompressible.
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {BASE}\nCOPY big.bin /big.bin\n"),
    )]);
    std::fs::write(ctx.path().join("big.bin"), testkit::noise(12 << 20, 11)).unwrap();
    let target = format!("{}/remote/streamed:1", reg.addr);
    let out = client.run(&[
        "--builder",
        "far",
        "build",
        "--progress=rawjson",
        "-t",
        &target,
        "--push",
        ctx.path().to_str().unwrap(),
    ]);
    ok(&out);
    let err = text(&out.stderr);
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let vertex_of = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == "started" && e["name"] == name)
            .unwrap_or_else(|| panic!("no step {name:?}: {err}"))["vertex"]
            .clone()
    };
    let status = |vertex: &serde_json::Value, id: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == "status" && e["vertex"] == *vertex && e["id"] == id)
            .collect()
    };
    // The push began while the layer was exported: by the time the export's layer
    // status said done, the push had bytes of it on the connection.
    let push = vertex_of(&format!("pushing {target}"));
    let streamed = status(&push, "layers streamed during the export");
    let last = streamed
        .last()
        .unwrap_or_else(|| panic!("no streaming: {err}"));
    assert_eq!(last["done"], true, "{err}");
    assert!(last["total"].as_u64().unwrap() >= 12 << 20, "{err}");
    assert_eq!(last["current"], last["total"], "{err}");
    // The push's own uploads did not send the new layer again: only its base layer
    // and the documents go up after the build.
    let exported = status(&vertex_of("exporting to image"), "exporting layers");
    assert!(
        exported.last().unwrap()["current"].as_u64().unwrap() >= 12 << 20,
        "{err}"
    );
    let pushed = client.run(&["imagetools", "inspect", &target]);
    ok(&pushed);
}

#[test]
fn a_node_that_is_down_is_named() {
    testkit::require_root_and_runc();
    let client = Client::new();
    let gone = tempfile::tempdir().unwrap();
    let ep = format!("unix://{}", gone.path().join("nobody.sock").display());
    ok(&client.run(&[
        "create",
        "--name",
        "ghost",
        "--platform",
        "linux/amd64",
        &ep,
    ]));
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let out = client.run(&["--builder", "ghost", "build", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("ghost0") || err.contains("nobody.sock"),
        "{err}"
    );
}

#[test]
fn a_client_killed_mid_build_cancels_it_on_the_daemon() {
    testkit::require_root_and_runc();
    let daemon = daemon(&["amd64"]);
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", &daemon.endpoint()]));
    let ctx = context(&[(
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo started && sleep 100\n",
    )]);
    let mut child = client
        .cmd(&[
            "--builder",
            "far",
            "build",
            "--progress=plain",
            ctx.path().to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    while !seen.contains(" started") {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the step never started: {seen}"
        );
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "client exited early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The daemon kills the container and goes on serving.
    let ours = format!("manifold-{}-", daemon.pid());
    let t = Instant::now();
    loop {
        let list = Command::new("runc").args(["list", "-q"]).output().unwrap();
        if !text(&list.stdout).lines().any(|l| l.starts_with(&ours)) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "container still running: {}",
            text(&list.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ctx2 = context(&[(
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo again\n",
    )]);
    ok(&client.run(&["--builder", "far", "build", ctx2.path().to_str().unwrap()]));
}

/// Send raw bytes to the daemon; returns what it answered before closing.
fn raw(sock: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.push(kind);
    f.extend_from_slice(payload);
    f
}

#[test]
fn hostile_and_malformed_requests_get_errors_not_crashes() {
    testkit::require_root_and_runc();
    let daemon = daemon(&[]);
    let sock = daemon.socket();
    // Case 59: garbage, an oversized length, bad JSON, an unknown op, data first.
    for bytes in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        {
            let mut f = u32::MAX.to_be_bytes().to_vec();
            f.push(1);
            f
        },
        frame(1, b"{not json"),
        frame(1, br#"{"op":"format_disk"}"#),
        frame(2, b"data before any request"),
        vec![0, 0],
    ] {
        let answer = text(&raw(&sock, &bytes));
        assert!(answer.is_empty() || answer.contains("error"), "{answer}");
    }
    // Case 19: hostile file lists.
    let entry = |path: &str, kind: &str| format!(r#"{{"path":{path:?},"mode":420,{kind}}}"#);
    let file = r#""type":"file","digest":"sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","size":1"#;
    for entries in [
        vec![entry("../x", file)],
        vec![entry("/etc/passwd", file)],
        vec![entry("a", file), entry("a", file)],
        vec![
            entry("l", r#""type":"symlink","target":"/""#),
            entry("l/x", file),
        ],
        vec![entry("orphan/x", file)],
        vec![entry("a/../../b", file)],
    ] {
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let mut call = remote::protocol::BuildCall::new(builder::BuildRequest {
            dockerfile: "FROM scratch".into(),
            ..builder::BuildRequest::default()
        });
        call.contexts = vec![
            serde_json::from_value(serde_json::json!({
                "name": "context", "id": "a".repeat(64), "entries": []
            }))
            .unwrap(),
        ];
        let mut req =
            serde_json::to_value(remote::protocol::Request::Build(Box::new(call))).unwrap();
        // Entries as a hostile client writes them, unchecked by this side's types.
        req["contexts"][0]["entries"] = serde_json::Value::Array(entries);
        let req = req.to_string();
        let answer = text(&raw(&sock, &frame(1, req.as_bytes())));
        assert!(answer.contains("invalid path"), "{answer}");
    }
    // Still serving.
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", &daemon.endpoint()]));
    let out = client.run(&["inspect", "--bootstrap", "far"]);
    ok(&out);
    assert!(
        text(&out.stdout).contains("running"),
        "{}",
        text(&out.stdout)
    );
    assert!(!daemon.root().join("x").exists() && !Path::new("/x").exists());
}

/// A CA, a server certificate for 127.0.0.2–4 and a client certificate, made with
/// the openssl CLI; and a second CA's client certificate that must be refused.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        testkit::require_tool("openssl");
        let script = r#"
set -e
req() { openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null; }
ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null; }
sign() { openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null; }
ca ca; ca rogue-ca
req server
printf 'subjectAltName=IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
sign server ca
req client
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext
sign client ca
req rogue
cp client.ext rogue.ext
sign rogue rogue-ca
"#;
        let st = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "openssl failed");
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn opts(&self, who: &str) -> String {
        format!(
            "cacert={},cert={},key={}",
            self.path("ca.pem").display(),
            self.path(&format!("{who}.pem")).display(),
            self.path(&format!("{who}.key")).display()
        )
    }
}

#[test]
fn three_tcp_nodes_with_mutual_tls_build_where_each_platform_is_declared() {
    testkit::require_root_and_runc();
    let _binfmt = testkit::binfmt::Guard::ensure(Path::new(MANIFOLD), &["arm64", "s390x"]);
    let pki = Pki::new();
    let port = testkit::registry::free_port("127.0.0.2");
    let addrs: Vec<String> = (2..=4).map(|i| format!("127.0.0.{i}:{port}")).collect();
    let arches = ["amd64", "arm64", "s390x"];
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("server.pem"),
        pki.path("server.key"),
    );
    let tls = Tls {
        ca: &ca,
        cert: &cert,
        key: &key,
    };
    let daemons: Vec<Daemon> = addrs
        .iter()
        .map(|a| Daemon::start_at(Path::new(MANIFOLD), BASE, &arches, Some((a, tls))))
        .collect();
    let reg = DistRegistry::start(Auth::Open);
    let client = Client::new();
    for (i, (addr, platform)) in addrs
        .iter()
        .zip(["linux/amd64", "linux/arm64", "linux/s390x"])
        .enumerate()
    {
        let mut args = vec!["create", "--name", "trio", "--platform", platform];
        if i > 0 {
            args.push("--append");
        }
        let opts = pki.opts("client");
        let ep = format!("tcp://{addr}");
        args.extend(["--driver-opt", &opts, &ep]);
        ok(&client.run(&args));
    }
    let out = client.run(&["inspect", "--bootstrap", "trio"]);
    ok(&out);
    let ctx = context(&[(
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN uname -m > /arch\n",
    )]);
    let target = format!("{}/demo/trio:1", reg.addr);
    let out = client.run(&[
        "--builder",
        "trio",
        "build",
        "--platform",
        "linux/amd64,linux/s390x",
        "-t",
        &target,
        "--push",
        ctx.path().to_str().unwrap(),
    ]);
    ok(&out);
    let out = client.run(&["imagetools", "inspect", &target]);
    ok(&out);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("linux/amd64") && shown.contains("linux/s390x"),
        "{shown}"
    );
    assert!(!shown.contains("linux/arm64"), "{shown}");
    // The arm64 node was asked nothing: it holds no client file.
    assert_eq!(daemons[1].received(), 0);
    assert!(daemons[0].received() > 0 && daemons[2].received() > 0);

    // A client whose certificate another CA signed is turned away.
    let rogue = Client::new();
    let opts = format!(
        "cacert={},cert={},key={}",
        pki.path("ca.pem").display(),
        pki.path("rogue.pem").display(),
        pki.path("rogue.key").display()
    );
    let ep = format!("tcp://{}", addrs[0]);
    ok(&rogue.run(&["create", "--name", "rogue", "--driver-opt", &opts, &ep]));
    let out = rogue.run(&["--builder", "rogue", "build", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn entitlements_need_the_client_and_the_daemon() {
    testkit::require_root_and_runc();
    let daemon = daemon(&["amd64"]);
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", &daemon.endpoint()]));
    let ctx = context(&[(
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN --network=host true\n",
    )]);
    // The client asks, the daemon (started without --allow) does not grant.
    let out = client.run(&[
        "--builder",
        "far",
        "build",
        "--allow",
        "network.host",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("network.host") && err.contains("daemon"),
        "{err}"
    );
    // Without the client's --allow the step is refused too.
    let out = client.run(&["--builder", "far", "build", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("network.host"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_daemon_build_prints_the_build_checks_warnings_as_a_local_one() {
    testkit::require_root_and_runc();
    let daemon = daemon(&["amd64"]);
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", &daemon.endpoint()]));
    let build = |ctx: &Path, extra: &[&str]| {
        let mut args = vec!["--builder", "far", "build", "--progress=plain"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        client.run(&args)
    };
    let checks = |err: &str| -> Vec<String> {
        err.lines()
            .filter(|l| l.starts_with(" - ") || l.contains("found (use --call=check"))
            .map(str::to_owned)
            .collect()
    };
    let warned = context(&[(
        "Dockerfile",
        "FROM localhost/busybox:test as x\nRUN echo hi\n",
    )]);
    let out = build(warned.path(), &[]);
    ok(&out);
    let err = text(&out.stderr);
    assert_eq!(
        checks(&err),
        [
            " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)",
            "1 warning found (use --call=check for details)",
        ],
        "{err}"
    );
    let out = build(warned.path(), &["-q"]);
    ok(&out);
    assert!(
        checks(&text(&out.stderr)).is_empty(),
        "{}",
        text(&out.stderr)
    );

    // check=error=true: the daemon fails the build before any step runs.
    let failing = context(&[(
        "Dockerfile",
        "# check=error=true\nFROM localhost/busybox:test as x\nRUN echo hi\n",
    )]);
    let out = build(failing.path(), &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(
        checks(&err),
        [
            " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)",
            "1 warning found (use --call=check for details)",
        ],
        "{err}"
    );
    assert!(!err.contains("RUN echo hi"), "no step ran:\n{err}");
    assert!(
        err.contains("build checks failed with check=error=true: FromAsCasing (line 2)"),
        "{err}"
    );
}

/// Case 56: a daemon killed, its cache records and context index then damaged (as a
/// power loss can leave them), starts again, and the next build succeeds: damaged
/// records are set aside and their steps run again, the same image results, and the
/// store stays consistent.
#[test]
fn a_daemon_restarted_on_damaged_cache_state_builds_again() {
    testkit::require_root_and_runc();
    let mut daemon = daemon(&["amd64"]);
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", "--use", &daemon.endpoint()]));
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM localhost/busybox:test\nCOPY a /a\nRUN cat /a > /b\n",
        ),
        ("a", "alpha\n"),
    ]);
    let iid = client.dir.path().join("iid");
    let build = |client: &Client| {
        let out = client.run(&[
            "build",
            "--progress=plain",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            "--iidfile",
            iid.to_str().unwrap(),
            ctx.path().to_str().unwrap(),
        ]);
        ok(&out);
        (std::fs::read_to_string(&iid).unwrap(), text(&out.stderr))
    };
    let (first, _) = build(&client);

    // Killed as a power loss would: one blob of the image's own layer loses a byte
    // the daemon had "written" (a blob of the base could not be made again here).
    daemon.kill();
    let (layer, blob) = {
        let store = content::Store::open(daemon.root()).unwrap();
        let digest = oci::Digest::parse(first.trim()).unwrap();
        let m: oci::ImageManifest =
            serde_json::from_slice(&store.read_document(&digest).unwrap()).unwrap();
        let layer = m.layers.last().unwrap().digest.clone();
        let path = store.blob_path(&layer);
        (layer, path)
    };
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    daemon.start_again(Path::new(MANIFOLD));
    let log = daemon.stderr();
    assert!(
        log.contains("did not stop cleanly: re-verifying its content store")
            && log.contains(&format!(
                "blob {layer} did not match its digest; set aside as"
            ))
            && log.contains("1 damaged blob(s) set aside"),
        "{log}"
    );
    assert!(!blob.exists(), "the damaged blob is out of the store");
    // Every cache record truncated to half, every context index file emptied.
    let mut damaged = 0;
    for dir in ["cache/records", "contexts"] {
        let mut stack = vec![daemon.root().join(dir)];
        while let Some(p) = stack.pop() {
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if meta.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "no cache state was found to damage");
    let (again, stderr) = build(&client);
    assert_eq!(again, first, "{stderr}");
    let fsck = Command::new(MANIFOLD)
        .arg("fsck")
        .env("MANIFOLD_ROOT", daemon.root())
        .env("MANIFOLD_CONFIG", daemon.config())
        .output()
        .unwrap();
    ok(&fsck);
    // The layer was written again, good this time.
    assert_eq!(
        oci::Digest::sha256(&std::fs::read(&blob).unwrap()),
        layer,
        "the layer's blob is whole again"
    );
}
