//! `manifold build` end to end: real runc, real QEMU, base images made from
//! Debian's busybox-static. Needs root and the binfmt entries of
//! `scripts/setup.sh` (these tests only read binfmt state).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use content::Store;
use oci::{Descriptor, ImageConfig, ImageIndex, ImageManifest, RawDocument, media};

// Its own file, and still this test binary (which nextest runs in the `binfmt` group).
#[path = "build/cache.rs"]
mod cache;
#[path = "build/host_binfmt.rs"]
mod host_binfmt;

const BASE: &str = "localhost/busybox:test";

/// Register QEMU for `archs` while the test runs.
fn emulators(archs: &[&str]) -> testkit::binfmt::Guard {
    testkit::binfmt::Guard::ensure(Path::new(env!("CARGO_BIN_EXE_manifold")), archs)
}

fn manifold_cmd(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_manifold"));
    c.args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("DOCKER_CONFIG", root.join("docker"))
        .env_remove("MANIFOLD_RUNTIME")
        .stdin(Stdio::null());
    c
}

fn manifold(root: &Path, args: &[&str]) -> Output {
    manifold_cmd(root, args).output().unwrap()
}

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

/// A state root whose store holds a busybox index for `arches` named [`BASE`].
fn root_with_base(arches: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(dir.path(), BASE, arches);
    dir
}

/// Each platform's manifest of the image named `name`.
fn manifests(root: &Path, name: &str) -> Vec<(Descriptor, ImageManifest, ImageConfig)> {
    let store = Store::open(root).unwrap();
    let top = store.resolve(name).unwrap();
    let listed = match top.media_type.as_str() {
        media::OCI_INDEX => {
            RawDocument::<ImageIndex>::parse(store.read_document(&top.digest).unwrap())
                .unwrap()
                .value()
                .manifests
                .clone()
        }
        // One platform: the manifest itself, as BuildKit makes it.
        _ => vec![top],
    };
    listed
        .iter()
        .map(|d| {
            let m = RawDocument::<ImageManifest>::parse(store.read_document(&d.digest).unwrap())
                .unwrap()
                .value()
                .clone();
            let c =
                RawDocument::<ImageConfig>::parse(store.read_document(&m.config.digest).unwrap())
                    .unwrap()
                    .value()
                    .clone();
            (d.clone(), m, c)
        })
        .collect()
}

/// Unpack every layer of `m` into a fresh directory (with GNU tar).
fn unpack(root: &Path, m: &ImageManifest) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let store = Store::open(root).unwrap();
    for l in &m.layers {
        let path = store.blob_path(&l.digest);
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&path)
            .arg("-C")
            .arg(out.path())
            .status()
            .unwrap();
        assert!(st.success(), "tar -xf {}", path.display());
    }
    out
}

fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

const MULTI_STAGE: &str = r#"
ARG BASE=localhost/busybox:test
FROM $BASE AS build
ARG TARGETPLATFORM
WORKDIR /work
COPY greeting.txt ./
RUN echo "$TARGETPLATFORM" > platform && uname -m > arch && sha256sum /bin/busybox | cut -d' ' -f1 > sum && cat greeting.txt > copy && wc -l < copy > lines
FROM $BASE
LABEL org.example.demo=yes
ENV APP=demo
WORKDIR /app
COPY --from=build /work/ /app/
USER 1000
RUN echo "$APP from $(id -u) in $(pwd)" > /tmp/whoami
"#;

fn uname_for(arch: &str) -> &'static str {
    match arch {
        "amd64" | "i386" => "x86_64",
        "arm64" => "aarch64",
        "armhf" => "armv7l",
        "ppc64el" => "ppc64le",
        "s390x" => "s390x",
        other => panic!("no uname for {other}"),
    }
}

#[test]
fn multi_stage_build_for_six_platforms() {
    testkit::require_root_and_runc();
    let _binfmt = emulators(&["arm64", "arm", "ppc64le", "s390x"]);
    six_platform_build();
}

/// The multi-stage Dockerfile built for every test architecture, each image checked,
/// and the arm64 one run (emulators must be registered).
fn six_platform_build() {
    let arches = testkit::base::ARCHES;
    let root = root_with_base(&arches);
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", MULTI_STAGE);
    write(ctx.path(), "greeting.txt", "hello\n");
    let platforms: Vec<String> = arches
        .iter()
        .map(|a| testkit::base::platform(a).to_string())
        .collect();
    let out = manifold(
        root.path(),
        &[
            "build",
            "--progress=plain",
            "--platform",
            &platforms.join(","),
            "-t",
            "localhost/demo:multi",
            ctx.path().to_str().unwrap(),
        ],
    );
    ok(&out);
    let images = manifests(root.path(), "localhost/demo:multi");
    assert_eq!(images.len(), arches.len());
    for ((desc, m, config), arch) in images.iter().zip(arches) {
        let platform = testkit::base::platform(arch);
        assert_eq!(desc.platform.as_ref(), Some(&platform), "{arch}");
        assert_eq!(config.platform(), platform, "{arch}");
        let c = config.config.clone().unwrap();
        assert_eq!(c.user.as_deref(), Some("1000"));
        assert_eq!(c.working_dir.as_deref(), Some("/app"));
        let env = c.env.unwrap();
        assert!(env.contains(&"APP=demo".to_owned()), "{env:?}");
        assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
        assert_eq!(
            c.labels
                .unwrap()
                .get("org.example.demo")
                .map(String::as_str),
            Some("yes")
        );
        assert_eq!(
            c.cmd,
            Some(vec!["sh".to_owned()]),
            "the base's command is inherited"
        );
        assert_eq!(m.layers.len(), config.rootfs.diff_ids.len());
        let fs = unpack(root.path(), m);
        let read = |p: &str| {
            std::fs::read_to_string(fs.path().join(p))
                .unwrap_or_else(|e| panic!("{arch}: {p}: {e}"))
        };
        assert_eq!(read("app/platform"), format!("{platform}\n"), "{arch}");
        assert_eq!(read("app/arch"), format!("{}\n", uname_for(arch)), "{arch}");
        assert_eq!(read("app/greeting.txt"), "hello\n");
        // Applets run by name under QEMU too (binfmt's P flag keeps argv[0]).
        assert_eq!(read("app/copy"), "hello\n", "{arch}");
        assert_eq!(read("app/lines").trim(), "1", "{arch}");
        let busybox =
            std::fs::read(testkit::base::busybox_rootfs(arch).join("bin/busybox")).unwrap();
        assert_eq!(
            read("app/sum"),
            format!("{}\n", oci::Digest::sha256(&busybox).hex()),
            "{arch}"
        );
        assert_eq!(read("tmp/whoami"), "demo from 1000 in /app\n", "{arch}");
    }
    // The image runs (foreign platforms under QEMU).
    let out = manifold(
        root.path(),
        &[
            "run",
            "--platform",
            "linux/arm64",
            "localhost/demo:multi",
            "cat",
            "/app/arch",
        ],
    );
    ok(&out);
    assert_eq!(text(&out.stdout), "aarch64\n");
}

fn mounts_under(root: &Path) -> Vec<String> {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(str::to_owned)
        .collect()
}

#[test]
fn sigint_during_a_step_stops_within_seconds_and_cleans_up() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo started && sleep 100\n",
    );
    let mut child = manifold_cmd(
        root.path(),
        &["build", "--progress=plain", ctx.path().to_str().unwrap()],
    )
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.ends_with(" started") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the step starts");
    std::thread::sleep(Duration::from_millis(300));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "manifold build did not exit within 5 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = reader.join().unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("cancel"), "{err}");
    let list = Command::new("runc").args(["list", "-q"]).output().unwrap();
    let ours = format!("manifold-{pid}-");
    assert!(
        !text(&list.stdout).lines().any(|l| l.starts_with(&ours)),
        "runc list: {}",
        text(&list.stdout)
    );
    assert!(
        mounts_under(root.path()).is_empty(),
        "{:?}",
        mounts_under(root.path())
    );
    for dir in ["bundles", "tmp"] {
        let p = root.path().join(dir);
        let left: Vec<_> = std::fs::read_dir(&p)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{} holds {left:?}", p.display());
    }
}

/// A one-shot HTTP server on 127.0.0.1; returns its port.
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nreached\n",
            );
        }
    });
    port
}

#[test]
fn network_default_reaches_the_host_and_none_does_not() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let port = http_server();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test\nRUN wget -q -O /got http://127.0.0.1:{port}/ && cat /got\n"
        ),
    );
    let out = manifold(
        root.path(),
        &["build", "--progress=plain", ctx.path().to_str().unwrap()],
    );
    ok(&out);
    assert!(
        text(&out.stderr).contains("reached"),
        "{}",
        text(&out.stderr)
    );
    let out = manifold(
        root.path(),
        &[
            "build",
            "--progress=plain",
            "--no-cache",
            "--network=none",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out.stderr));
    // --network=host needs the entitlement.
    let out = manifold(
        root.path(),
        &["build", "--network=host", ctx.path().to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("network.host"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_failing_step_names_instruction_line_platform_and_exit_code() {
    testkit::require_root_and_runc();
    let _binfmt = emulators(&["arm64"]);
    let root = root_with_base(&["arm64"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\n\nRUN echo about to fail && exit 3\n",
    );
    let out = manifold(
        root.path(),
        &[
            "build",
            "--progress=plain",
            "--platform=linux/arm64",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("RUN echo about to fail && exit 3"), "{err}");
    assert!(err.contains("exit code 3"), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("linux/arm64"), "{err}");
}

#[test]
fn secrets_reach_the_step_but_not_the_image() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /count\n",
    );
    let secret = ctx.path().join("token.txt");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    std::fs::write(ctx.path().join(".dockerignore"), "token.txt\n").unwrap();
    let out = manifold(
        root.path(),
        &[
            "build",
            "--progress=plain",
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            "-t",
            "localhost/secret:1",
            ctx.path().to_str().unwrap(),
        ],
    );
    ok(&out);
    let images = manifests(root.path(), "localhost/secret:1");
    let (_, m, _) = &images[0];
    let fs = unpack(root.path(), m);
    assert_eq!(
        std::fs::read_to_string(fs.path().join("count"))
            .unwrap()
            .trim(),
        "12"
    );
    assert!(!fs.path().join("run/secrets/tok").exists());
    // The value appears in no blob of the store.
    let store = Store::open(root.path()).unwrap();
    for l in &m.layers {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "gzip -dcf {} | grep -c s3cr3t-value || true",
                store.blob_path(&l.digest).display()
            ))
            .output()
            .unwrap();
        assert_eq!(
            text(&out.stdout).trim(),
            "0",
            "the secret is in layer {}",
            l.digest
        );
    }
    // A missing required secret fails, naming it.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN --mount=type=secret,id=tok,required=true true\n",
    );
    let out = manifold(
        root.path(),
        &["build", "--no-cache", ctx.path().to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("\"tok\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn copies_keep_stage_owners_and_context_files_belong_to_root() {
    use std::os::unix::fs::MetadataExt;
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test AS build\n\
         RUN mkdir /out && echo x > /out/f && chown 1000:100 /out/f\n\
         FROM localhost/busybox:test\n\
         COPY --from=build /out/f /from-stage\n\
         COPY ctx.txt /from-context\n\
         COPY --chown=app:users --chmod=640 ctx.txt /owned\n",
    );
    write(ctx.path(), "ctx.txt", "ctx\n");
    std::os::unix::fs::chown(ctx.path().join("ctx.txt"), Some(4321), Some(4321)).unwrap();
    let out = manifold(
        root.path(),
        &[
            "build",
            "-t",
            "localhost/owners:1",
            ctx.path().to_str().unwrap(),
        ],
    );
    ok(&out);
    let (_, m, _) = &manifests(root.path(), "localhost/owners:1")[0];
    let fs = unpack(root.path(), m);
    let owner = |p: &str| {
        let md = std::fs::symlink_metadata(fs.path().join(p)).unwrap();
        (md.uid(), md.gid(), md.mode() & 0o7777)
    };
    assert_eq!(owner("from-stage").0, 1000);
    assert_eq!(owner("from-stage").1, 100);
    assert_eq!(owner("from-context").0, 0);
    assert_eq!(owner("from-context").1, 0);
    assert_eq!(
        owner("owned"),
        (1000, 100, 0o640),
        "names resolved in the image's passwd"
    );
}

#[test]
fn named_contexts_replace_images_and_add_directories() {
    testkit::require_root_and_runc();
    let root = root_with_base(&["amd64"]);
    let ctx = tempfile::tempdir().unwrap();
    let extra = tempfile::tempdir().unwrap();
    write(extra.path(), "data/extra.txt", "from the named context\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM alpine:3.20\nCOPY --from=assets data/extra.txt /extra.txt\nRUN cat /extra.txt\n",
    );
    // `alpine:3.20` is never looked up: the named context replaces it.
    let out = manifold(
        root.path(),
        &[
            "build",
            "--progress=plain",
            "--build-context",
            "alpine:3.20=docker-image://localhost/busybox:test",
            "--build-context",
            &format!("assets={}", extra.path().display()),
            "-t",
            "localhost/named:1",
            ctx.path().to_str().unwrap(),
        ],
    );
    ok(&out);
    assert!(
        text(&out.stderr).contains("from the named context"),
        "{}",
        text(&out.stderr)
    );
    // A directory that does not exist is named in the error.
    let out = manifold(
        root.path(),
        &[
            "build",
            "--build-context",
            "assets=/nonexistent/dir",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent/dir"),
        "{}",
        text(&out.stderr)
    );
}
