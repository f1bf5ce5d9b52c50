//! Remote builds' results on the client: `-o` outputs, `--load`, `-t` into the
//! client's store, the reports, multi-node builds combined without a registry, a
//! daemon sending a blob that does not match its digest, `oci-layout://` contexts
//! sent to the daemon, and the daemon taking the build-state lock that `prune --all`
//! respects. Real daemons as processes; skopeo, umoci and podman check the outputs.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use content::Store;
use oci::{Descriptor, ImageIndex, RawDocument};
use testkit::daemon::Daemon;

const BASE: &str = "localhost/busybox:test";
const MANIFOLD: &str = env!("CARGO_BIN_EXE_manifold");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    ok(&out);
    out
}

/// A daemon with its own state root and socket, whose store holds a busybox base
/// for `arches` named [`BASE`]; stopped on drop.
fn daemon(arches: &[&str]) -> Daemon {
    Daemon::start(Path::new(MANIFOLD), BASE, arches)
}

/// A client: its own config dir, docker config and state root.
struct Client {
    dir: tempfile::TempDir,
    path: Option<String>,
}

impl Client {
    fn new() -> Client {
        Client {
            dir: tempfile::tempdir().unwrap(),
            path: None,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(MANIFOLD);
        c.args(args)
            .env("MANIFOLD_ROOT", self.root())
            .env("MANIFOLD_CONFIG", self.dir.path().join("config"))
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("MANIFOLD_BUILDER")
            .stdin(Stdio::null());
        if let Some(p) = &self.path {
            c.env("PATH", p);
        }
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

/// podman on a private root and storage (vfs), behind a `podman` wrapper in `bin`,
/// for `--load` (nothing is run in it).
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let podman = testkit::require_tool("podman");
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let wrapper = bin.join("podman");
        let d = dir.path();
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} --root={} --runroot={} --tmpdir={} --storage-driver=vfs \
                 --cgroup-manager=cgroupfs --events-backend=file \"$@\"\n",
                podman.display(),
                d.join("root").display(),
                d.join("run").display(),
                d.join("tmp").display(),
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        Podman { dir }
    }

    /// PATH with this podman and the system's directories without /usr/local/bin
    /// (docker's client), so `--load` finds podman.
    fn path(&self) -> String {
        format!(
            "{}:/usr/sbin:/usr/bin:/sbin:/bin",
            self.dir.path().join("bin").display()
        )
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.dir.path().join("bin/podman"));
        c.args(args).stdin(Stdio::null());
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["system", "reset", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn skopeo(args: &[&str]) -> Output {
    run(Command::new(testkit::require_tool("skopeo")).args(args))
}

fn read_index(store: &Store, desc: &Descriptor) -> ImageIndex {
    RawDocument::<ImageIndex>::parse(store.read_document(&desc.digest).unwrap())
        .unwrap()
        .value()
        .clone()
}

/// The one image of the OCI layout `dir`, checked by `export::validate`.
fn layout_image(dir: &Path) -> (Store, Descriptor) {
    let store = Store::read_layout(dir).unwrap();
    let top = store.index().unwrap();
    assert_eq!(top.manifests.len(), 1, "{}", dir.display());
    let desc = top.manifests[0].clone();
    let problems = export::validate(&store, &desc);
    assert!(problems.is_empty(), "{}: {problems:?}", dir.display());
    (store, desc)
}

#[test]
fn a_remote_build_writes_every_output_on_the_client() {
    testkit::require_root_and_runc();
    testkit::require_tool("umoci");
    let daemon = daemon(&["amd64"]);
    let podman = Podman::new();
    let mut client = Client::new();
    client.path = Some(podman.path());
    ok(&client.run(&["create", "--name", "far", "--use", &daemon.endpoint()]));
    let ctx = context(&[(
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN uname -m > /arch && echo hello > /hello\n",
    )]);
    let out_dir = tempfile::tempdir().unwrap();
    let s = |p: &str| out_dir.path().join(p).to_str().unwrap().to_owned();
    let out = client.run(&[
        "build",
        "-q",
        "--build-arg",
        "SOURCE_DATE_EPOCH=0",
        "-t",
        "localhost/remote:one",
        "--platform=linux/amd64",
        "-o",
        &format!("type=oci,dest={}", s("image.tar")),
        "-o",
        &format!("type=oci,dest={},tar=false", s("layout")),
        "-o",
        &format!("type=docker,dest={}", s("docker.tar")),
        "-o",
        &s("rootfs"),
        "-o",
        &format!("type=tar,dest={}", s("rootfs.tar")),
        "-o",
        "type=image,name=localhost/remote:two",
        "--iidfile",
        &s("iid"),
        "--metadata-file",
        &s("meta.json"),
        "--load",
        ctx.path().to_str().unwrap(),
    ]);
    ok(&out);
    let digest = std::fs::read_to_string(s("iid")).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(
        text(&out.stdout),
        format!("{digest}\n"),
        "-q prints the digest"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["containerimage.digest"], digest.as_str());
    assert_eq!(
        meta["image.name"],
        "localhost/remote:one,localhost/remote:two"
    );

    // The image came back into the client's store, named, complete and verified.
    let store = Store::open(client.root()).unwrap();
    for name in ["localhost/remote:one", "localhost/remote:two"] {
        assert_eq!(store.resolve(name).unwrap().digest.to_string(), digest);
    }
    assert!(store.fsck().unwrap().is_clean());
    let named = store.resolve("localhost/remote:one").unwrap();
    assert!(export::validate(&store, &named).is_empty());

    // type=oci: skopeo reads the tar, umoci and skopeo the directory.
    skopeo(&["inspect", &format!("oci-archive:{}", s("image.tar"))]);
    let (_, desc) = layout_image(&out_dir.path().join("layout"));
    assert_eq!(desc.digest.to_string(), digest);
    let umoci = run(Command::new("umoci").args(["ls", "--layout", &s("layout")]));
    assert_eq!(text(&umoci.stdout).trim(), "one");
    // type=docker: a docker archive skopeo reads.
    skopeo(&["inspect", &format!("docker-archive:{}", s("docker.tar"))]);
    // -o DIR and type=tar: the built filesystem.
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("rootfs/hello")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("rootfs/arch")).unwrap(),
        "x86_64\n"
    );
    let listed = run(Command::new("tar").arg("-tf").arg(s("rootfs.tar")));
    assert!(
        text(&listed.stdout)
            .lines()
            .any(|l| l.trim_start_matches("./") == "hello"),
        "{}",
        text(&listed.stdout)
    );
    // --load: into the (private) podman.
    assert!(
        text(&out.stderr).contains("into podman"),
        "{}",
        text(&out.stderr)
    );
    let images = run(&mut podman.cmd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(
        text(&images.stdout).contains("localhost/remote:one"),
        "{}",
        text(&images.stdout)
    );

    // Again, with everything cached: the blobs the client has do not cross again
    // (the store is unchanged) and the outputs are written the same.
    let before = std::fs::read_dir(client.root().join("oci/blobs/sha256"))
        .unwrap()
        .count();
    let again = client.run(&[
        "build",
        "--build-arg",
        "SOURCE_DATE_EPOCH=0",
        "-t",
        "localhost/remote:one",
        "--platform=linux/amd64",
        "-o",
        &format!("type=oci,dest={}", s("again.tar")),
        ctx.path().to_str().unwrap(),
    ]);
    ok(&again);
    assert!(
        text(&again.stderr).contains(&digest),
        "{}",
        text(&again.stderr)
    );
    let after = std::fs::read_dir(client.root().join("oci/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(before, after);
}

#[test]
fn two_nodes_without_a_registry_combine_one_index_on_the_client() {
    testkit::require_root_and_runc();
    // No RUN step: each node builds its platform without emulation.
    let amd = daemon(&["amd64"]);
    let arm = daemon(&["arm64"]);
    let client = Client::new();
    for (d, p, extra) in [
        (&amd, "linux/amd64", None),
        (&arm, "linux/arm64", Some("--append")),
    ] {
        let mut args = vec!["create", "--name", "pair", "--platform", p];
        args.extend(extra);
        let ep = d.endpoint();
        args.push(&ep);
        ok(&client.run(&args));
    }
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM localhost/busybox:test\nCOPY hello /hello\n",
        ),
        ("hello", "hi\n"),
    ]);
    let out_dir = tempfile::tempdir().unwrap();
    let layout = out_dir.path().join("layout");
    let out = client.run(&[
        "--builder",
        "pair",
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "localhost/pair:1",
        "-o",
        &format!("type=oci,tar=false,dest={}", layout.display()),
        "--iidfile",
        out_dir.path().join("iid").to_str().unwrap(),
        ctx.path().to_str().unwrap(),
    ]);
    ok(&out);
    let (store, desc) = layout_image(&layout);
    let index = read_index(&store, &desc);
    let platforms: Vec<String> = index
        .manifests
        .iter()
        .map(|m| m.platform.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(platforms.len(), 2, "{platforms:?}");
    assert_eq!(platforms[0], "linux/amd64");
    assert!(platforms[1].starts_with("linux/arm64"), "{platforms:?}");
    let iid = std::fs::read_to_string(out_dir.path().join("iid")).unwrap();
    assert_eq!(iid, desc.digest.to_string());
    let local = Store::open(client.root()).unwrap();
    assert_eq!(
        local.resolve("localhost/pair:1").unwrap().digest,
        desc.digest
    );
    skopeo(&[
        "inspect",
        "--override-arch",
        "arm64",
        &format!("oci:{}", layout.display()),
    ]);
}

/// One frame of the daemon protocol (`crates/remote/src/wire.rs`).
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.push(kind);
    f.extend_from_slice(payload);
    f
}

fn read_frame(s: &mut UnixStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (head[4], payload)
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_no_output_is_left() {
    // A fake daemon: it answers `info`, takes the build, and sends back an "image"
    // whose one blob's bytes are not those its digest names.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let claimed = Descriptor::for_bytes("application/vnd.oci.image.index.v1+json", b"{}");
    let sent = claimed.clone();
    let fake = std::thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let mut s = conn.unwrap();
            let (_, req) = read_frame(&mut s);
            let req: serde_json::Value = serde_json::from_slice(&req).unwrap();
            if req["op"] == "info" {
                let info = serde_json::json!({"info": {"version": "0",
                    "protocol": remote::protocol::PROTOCOL, "native": [],
                    "emulated": [], "snapshotter": "copy", "cache_bytes": 0, "running": 0}});
                s.write_all(&frame(1, info.to_string().as_bytes())).unwrap();
                continue;
            }
            let need = serde_json::json!({"need": {"digests": []}});
            s.write_all(&frame(1, need.to_string().as_bytes())).unwrap();
            let result = serde_json::json!({"result": {"index": sent, "blobs": [sent]}});
            s.write_all(&frame(1, result.to_string().as_bytes()))
                .unwrap();
            let (_, want) = read_frame(&mut s);
            let want: serde_json::Value = serde_json::from_slice(&want).unwrap();
            assert_eq!(want["digests"][0], sent.digest.to_string());
            s.write_all(&frame(2, b"[]")).unwrap();
            s.write_all(&frame(3, b"")).unwrap();
            // Wait for the client to hang up.
            let _ = s.read(&mut [0u8; 1]);
        }
    });
    let client = Client::new();
    ok(&client.run(&[
        "create",
        "--name",
        "fake",
        "--use",
        "--platform",
        "linux/amd64",
        &format!("unix://{}", sock.display()),
    ]));
    let ctx = context(&[("Dockerfile", "FROM scratch\n")]);
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("image.tar");
    let out = client.run(&[
        "build",
        "--platform=linux/amd64",
        "-o",
        &format!("type=oci,dest={}", dest.display()),
        ctx.path().to_str().unwrap(),
    ]);
    fake.join().unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&claimed.digest.to_string()), "{stderr}");
    assert!(stderr.contains("does not match its digest"), "{stderr}");
    assert!(stderr.contains(&sock.display().to_string()), "{stderr}");
    // No output file, no temporary file beside it, nothing in the store.
    let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let store = Store::open(client.root()).unwrap();
    assert!(!store.contains(&claimed.digest));
}

#[test]
fn a_daemon_of_another_protocol_is_named_with_both_versions() {
    // A daemon from before versions were sent: its `info` carries none.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("old.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let old = std::thread::spawn(move || {
        let mut s = listener.incoming().next().unwrap().unwrap();
        let (_, req) = read_frame(&mut s);
        let req: serde_json::Value = serde_json::from_slice(&req).unwrap();
        assert_eq!(req["op"], "info");
        let info = serde_json::json!({"info": {"version": "0.0.9", "native": ["linux/amd64"],
            "emulated": [], "snapshotter": "copy", "cache_bytes": 0, "running": 0}});
        s.write_all(&frame(1, info.to_string().as_bytes())).unwrap();
    });
    let client = Client::new();
    ok(&client.run(&[
        "create",
        "--name",
        "old",
        "--use",
        &format!("unix://{}", sock.display()),
    ]));
    let ctx = context(&[("Dockerfile", "FROM scratch\n")]);
    let out = client.run(&["build", "-t", "x", ctx.path().to_str().unwrap()]);
    old.join().unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the daemon protocol 1 (manifold 0.0.9)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the client speaks protocol {} (manifold {})",
            remote::protocol::PROTOCOL,
            env!("CARGO_PKG_VERSION")
        )),
        "{stderr}"
    );
}

#[test]
fn an_oci_layout_context_is_sent_to_the_daemon() {
    testkit::require_root_and_runc();
    // The daemon has no base: the build's base comes from the client's layout.
    let daemon = daemon(&[]);
    let seed = tempfile::tempdir().unwrap();
    let index = testkit::base::busybox_index(seed.path(), "busybox", &["amd64"]);
    let layout = seed.path().join("oci");
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", "--use", &daemon.endpoint()]));
    let ctx = context(&[("Dockerfile", "FROM base\nRUN echo from-layout > /made\n")]);
    let out_dir = tempfile::tempdir().unwrap();
    for (n, spec) in [
        ("tag", format!("oci-layout://{}:busybox", layout.display())),
        (
            "digest",
            format!("oci-layout://{}@{}", layout.display(), index.digest),
        ),
    ] {
        let dest = out_dir.path().join(n);
        let out = client.run(&[
            "build",
            "--platform=linux/amd64",
            "--build-context",
            &format!("base={spec}"),
            "-o",
            dest.to_str().unwrap(),
            ctx.path().to_str().unwrap(),
        ]);
        ok(&out);
        assert_eq!(
            std::fs::read_to_string(dest.join("made")).unwrap(),
            "from-layout\n"
        );
    }
    // The daemon holds the layout's image, named as a local build names it.
    let store = Store::open(daemon.root()).unwrap();
    assert!(store.contains(&index.digest));
    let names: Vec<String> = store.names().unwrap().into_iter().map(|(n, _)| n).collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("manifold.local/build-context/base:")),
        "{names:?}"
    );

    // A layout without the named image is refused on the client, naming it.
    let out = client.run(&[
        "build",
        "--build-context",
        &format!("base=oci-layout://{}:nope", layout.display()),
        ctx.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no image named \"nope\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_daemon_build_takes_the_build_state_lock_that_prune_respects() {
    testkit::require_root_and_runc();
    let daemon = daemon(&["amd64"]);
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", "--use", &daemon.endpoint()]));
    let ctx = context(&[(
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN sleep 3 && echo done > /done\n",
    )]);
    let lock_path = daemon.root().join("locks/builds.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let build = || {
        client
            .cmd(&["build", "--no-cache", ctx.path().to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // While a prune holds the lock, the daemon's build waits.
    let prune = std::fs::File::create(&lock_path).unwrap();
    prune.lock().unwrap();
    let mut waiting = build();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "the build did not wait"
    );
    assert!(
        !daemon.root().join("bundles").exists()
            || std::fs::read_dir(daemon.root().join("bundles"))
                .unwrap()
                .next()
                .is_none(),
        "a step ran while prune held the lock"
    );
    drop(prune);
    ok(&waiting.wait_with_output().unwrap());

    // While the daemon's build runs a step, `prune --all` on its root keeps the
    // build state.
    let running = build();
    let t = Instant::now();
    let bundles = daemon.root().join("bundles");
    while std::fs::read_dir(&bundles)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
    {
        assert!(t.elapsed() < Duration::from_secs(30), "no step started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pruned = Command::new(MANIFOLD)
        .args(["prune", "--all", "--force"])
        .env("MANIFOLD_ROOT", daemon.root())
        .env("MANIFOLD_CONFIG", daemon.config())
        .output()
        .unwrap();
    ok(&pruned);
    assert!(
        text(&pruned.stderr).contains("a build is running"),
        "{}",
        text(&pruned.stderr)
    );
    let out = running.wait_with_output().unwrap();
    ok(&out);
    assert!(daemon.root().join("cache").is_dir());
}

#[test]
fn a_layout_blob_that_does_not_match_its_digest_is_refused_by_the_daemon() {
    testkit::require_root_and_runc();
    let daemon = daemon(&[]);
    let claimed = Descriptor::for_bytes(oci::media::OCI_MANIFEST, br#"{"x":1}"#);
    let mut call = remote::protocol::BuildCall::new(builder::BuildRequest {
        dockerfile: "FROM base\n".into(),
        ..builder::BuildRequest::default()
    });
    call.layouts = vec![remote::protocol::LayoutContext {
        name: "base".into(),
        root: claimed.clone(),
        blobs: vec![claimed.clone()],
    }];
    let request = serde_json::to_value(remote::protocol::Request::Build(Box::new(call))).unwrap();
    let mut s = UnixStream::connect(daemon.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&frame(1, request.to_string().as_bytes()))
        .unwrap();
    let (_, need) = read_frame(&mut s);
    let need: serde_json::Value = serde_json::from_slice(&need).unwrap();
    assert_eq!(need["need"]["digests"][0], claimed.digest.to_string());
    // The same size, other bytes.
    s.write_all(&frame(2, br#"{"x":2}"#)).unwrap();
    s.write_all(&frame(3, b"")).unwrap();
    let (_, reply) = read_frame(&mut s);
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&claimed.digest.to_string()), "{reply}");
    assert!(message.contains("does not match its digest"), "{reply}");
    assert!(
        !Store::open(daemon.root())
            .unwrap()
            .contains(&claimed.digest)
    );
}

#[test]
fn push_with_a_file_output_pushes_from_the_client_the_image_it_wrote() {
    testkit::require_root_and_runc();
    let reg = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let daemon = daemon(&["amd64"]);
    let client = Client::new();
    ok(&client.run(&["create", "--name", "far", "--use", &daemon.endpoint()]));
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM localhost/busybox:test\nCOPY hello /hello\n",
        ),
        ("hello", "hi\n"),
    ]);
    let out_dir = tempfile::tempdir().unwrap();
    let layout = out_dir.path().join("layout");
    let name = format!("{}/remote/pushed:1", reg.addr);
    ok(&client.run(&[
        "build",
        "-t",
        &name,
        "--push",
        "-o",
        &format!("type=oci,tar=false,dest={}", layout.display()),
        ctx.path().to_str().unwrap(),
    ]));
    let (_, desc) = layout_image(&layout);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    assert_eq!(oci::Digest::sha256(&raw.stdout), desc.digest);
    let local = Store::open(client.root()).unwrap();
    assert_eq!(local.resolve(&name).unwrap().digest, desc.digest);
}
