//! manifold as an unprivileged user (`manifold-rootless`, with a subordinate id range;
//! `manifold-nosub`, without), started from a world-readable copy of the binary with
//! `setpriv` and no `XDG_RUNTIME_DIR` (see `testkit::rootless`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use testkit::rootless::{User, WITH_SUBUIDS, WITHOUT_SUBUIDS};

const BASE: &str = "localhost/busybox:test";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn all(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[track_caller]
fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", all(&out));
    out
}

/// The user, its state root holding the busybox base for `arches`, and a context
/// directory with `dockerfile`, all the user's.
fn user_with_base(name: &str, arches: &[&str], dockerfile: &str) -> (User, std::path::PathBuf) {
    testkit::require_tool("runc");
    let user = User::new(name, Path::new(env!("CARGO_BIN_EXE_manifold")));
    testkit::base::busybox_index(&user.root(), BASE, arches);
    user.give(&user.root());
    let ctx = user.home().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    user.give(&ctx);
    (user, ctx)
}

const CHOWN: &str = "FROM localhost/busybox:test
RUN mkdir -p /var/d/keep /owned && echo a > /owned/a && echo b > /owned/b && echo c > /owned/c \
 && chown 1000:1000 /owned/a && chown 2000:2001 /owned/b && chown 65534:65534 /owned/c
COPY --chown=3000:3001 Dockerfile /owned/copied
RUN rm /bin/true && rm -rf /var/d && mkdir /var/d && echo new > /var/d/only
RUN [ \"$(stat -c %u:%g /owned/a /owned/b /owned/c /owned/copied | tr '\\n' ' ')\" = \
 '1000:1000 2000:2001 65534:65534 3000:3001 ' ]
";

/// The owners of `/owned/*` in the image of the OCI archive `tar`, as skopeo and umoci
/// (as root) read it, after checking the deletions of the Dockerfile.
fn owners_in_image(tar: &Path) -> Vec<(String, u32, u32)> {
    let skopeo = testkit::require_tool("skopeo");
    let umoci = testkit::require_tool("umoci");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ok(Command::new(skopeo)
        .arg("copy")
        .arg(format!("oci-archive:{}", tar.display()))
        .arg(format!("oci:{}:img", layout.display()))
        .output()
        .unwrap());
    let bundle = dir.path().join("bundle");
    ok(Command::new(umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap());
    // A deleted file and a directory made again (a whiteout and an opaque directory).
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("bin/busybox").exists());
    assert!(rootfs.join("bin/true").symlink_metadata().is_err());
    let listed: Vec<_> = std::fs::read_dir(rootfs.join("var/d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, ["only"]);
    let mut owners: Vec<_> = std::fs::read_dir(rootfs.join("owned"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.uid(),
                m.gid(),
            )
        })
        .collect();
    owners.sort();
    owners
}

fn chown_build(snapshotter: &str) {
    let (user, ctx) = user_with_base(WITH_SUBUIDS, &["amd64"], CHOWN);
    let tar = user.home().join("image.tar");
    let out = ok(user
        .manifold()
        .env("MANIFOLD_SNAPSHOTTER", snapshotter)
        .args(["build", "--progress=plain", "-o"])
        .arg(format!("type=oci,dest={}", tar.display()))
        .arg(&ctx)
        .output()
        .unwrap());
    assert!(
        !text(&out.stderr).contains("warning: no subordinate id range"),
        "{}",
        all(&out)
    );
    assert_eq!(
        owners_in_image(&tar),
        [
            ("a".to_owned(), 1000, 1000),
            ("b".to_owned(), 2000, 2001),
            ("c".to_owned(), 65534, 65534),
            ("copied".to_owned(), 3000, 3001),
        ]
    );
    // The state root is the user's (it is what `prune` works on), and the sub-ids'
    // files in it are removed by prune, inside the namespace.
    assert_eq!(std::fs::metadata(user.root()).unwrap().uid(), user.uid);
    let with_driver = |args: &[&str]| {
        user.manifold()
            .env("MANIFOLD_SNAPSHOTTER", snapshotter)
            .args(args)
            .output()
            .unwrap()
    };
    let inspect = ok(with_driver(&["inspect", "--bootstrap"]));
    assert!(
        text(&inspect.stdout).contains(&format!("Snapshotter:   {snapshotter}")),
        "{}",
        all(&inspect)
    );
    ok(with_driver(&["prune", "--all", "--force"]));
    let left = Command::new("find")
        .arg(user.root())
        .args(["-uid", "+100000", "-print", "-quit"])
        .output()
        .unwrap();
    assert_eq!(text(&left.stdout), "", "prune left sub-id files behind");
}

#[test]
fn chown_to_three_users_with_overlay() {
    chown_build("overlay");
}

#[test]
fn chown_to_three_users_with_the_copying_snapshotter() {
    chown_build("copy");
}

#[test]
fn without_subordinate_ids_a_single_id_build_works_and_chown_names_the_fix() {
    let (user, ctx) = user_with_base(
        WITHOUT_SUBUIDS,
        &["amd64"],
        "FROM localhost/busybox:test\nRUN echo single > /f && [ \"$(id -u)\" = 0 ]\n",
    );
    let out = ok(user
        .manifold()
        .args(["build", "--progress=plain"])
        .arg(&ctx)
        .output()
        .unwrap());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: no subordinate id range for manifold-nosub")
            && stderr.contains("usermod --add-subuids"),
        "{stderr}"
    );

    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox:test\nRUN touch /f && chown 1000 /f\n",
    )
    .unwrap();
    let out = user
        .manifold()
        .args(["build", "--progress=plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", all(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("this rootless build maps a single id")
            && stderr.contains("sudo usermod --add-subuids 100000-165535"),
        "{stderr}"
    );

    // A step as another user is refused before it runs, with the same fix.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox:test\nUSER 1000\nRUN true\n",
    )
    .unwrap();
    let out = user
        .manifold()
        .args(["build", "--progress=plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", all(&out));
    assert!(
        text(&out.stderr).contains("the step runs as uid 1000 gid 1000, but this rootless build"),
        "{}",
        all(&out)
    );
}

#[test]
fn a_rootless_daemon_serves_only_its_own_user() {
    testkit::require_tool("runc");
    let user = User::new(WITH_SUBUIDS, Path::new(env!("CARGO_BIN_EXE_manifold")));
    let sock = user.home().join("run/manifold.sock");
    let mut daemon = user
        .manifold()
        .args(["daemon", "--addr"])
        .arg(format!("unix://{}", sock.display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mode = std::fs::metadata(&sock).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let dir_mode = std::fs::metadata(sock.parent().unwrap()).unwrap().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "socket directory mode {dir_mode:o}");

    // The user itself: a builder instance on the socket bootstraps.
    let addr = format!("unix://{}", sock.display());
    ok(user.run(&["create", "--name", "mine", "--driver", "remote", &addr]));
    let inspect = ok(user.run(&["inspect", "--bootstrap", "mine"]));
    assert!(
        text(&inspect.stdout).contains("running"),
        "{}",
        all(&inspect)
    );

    // Another user: the socket's mode refuses the connection.
    let other = User::new(WITHOUT_SUBUIDS, Path::new(env!("CARGO_BIN_EXE_manifold")));
    ok(other.run(&["create", "--name", "theirs", "--driver", "remote", &addr]));
    let refused = other.run(&["inspect", "--bootstrap", "theirs"]);
    assert!(!refused.status.success(), "{}", all(&refused));
    // The host's root passes the socket's mode, but not the peer check: the daemon
    // hangs up without a word.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    use std::io::Read;
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "the daemon answered root");
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// A one-line HTTP server on 127.0.0.1 (a free port), answering every request.
fn host_loopback_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            use std::io::{Read, Write};
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\nhello-from-host\n");
        }
    });
    port
}

#[test]
fn steps_reach_the_network_through_slirp4netns_and_the_host_loopback_only_when_asked() {
    testkit::require_tool("slirp4netns");
    let port = host_loopback_server();
    let dockerfile = format!(
        "FROM localhost/busybox:test\n\
         RUN ip addr show tap0 | grep -q 'inet 10.0.2.100' && grep -qx 'nameserver 10.0.2.3' /etc/resolv.conf \
          && (wget -q -O /got http://10.0.2.2:{port}/ || echo unreachable > /got)\n\
         RUN --network=none ! ip link show tap0 && echo isolated > /none\n\
         RUN --network=host wget -q -O /host http://127.0.0.1:{port}/\n"
    );
    let (user, ctx) = user_with_base(WITH_SUBUIDS, &["amd64"], &dockerfile);
    let build = |loopback: &str| {
        let dest = user.home().join(format!("out-{loopback}"));
        let out = user
            .manifold()
            .env("MANIFOLD_ROOTLESS_HOST_LOOPBACK", loopback)
            .args([
                "build",
                "--progress=plain",
                "--no-cache",
                "--allow",
                "network.host",
                "-o",
            ])
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(&ctx)
            .output()
            .unwrap();
        (ok(out), dest)
    };
    // By default the host's loopback is out of reach; the user's own network is not.
    let (_, dest) = build("0");
    assert_eq!(
        std::fs::read_to_string(dest.join("got")).unwrap(),
        "unreachable\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("none")).unwrap(),
        "isolated\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("host")).unwrap(),
        "hello-from-host\n"
    );
    // Asked for, 10.0.2.2 is the host's 127.0.0.1.
    let (_, dest) = build("1");
    assert_eq!(
        std::fs::read_to_string(dest.join("got")).unwrap(),
        "hello-from-host\n"
    );
}

#[test]
fn chown_to_three_users_with_fuse_overlayfs() {
    testkit::require_tool("fuse-overlayfs");
    chown_build("fuse-overlayfs");
}

#[test]
fn the_seed_workflow_runs_rootless() {
    for tool in ["runc", "python3", "curl", "dpkg-deb"] {
        testkit::require_tool(tool);
    }
    let manifold = Path::new(env!("CARGO_BIN_EXE_manifold"));
    // Registering QEMU is root's part, once.
    let _emulators = testkit::binfmt::Guard::ensure(manifold, &["arm64"]);
    let user = User::new(WITH_SUBUIDS, manifold);
    // The script and what it reads, where the user can read them.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let copy = user.home().join("repo");
    for (from, to) in [
        ("scripts/demo.sh", "scripts/demo.sh"),
        ("bench/make-busybox.py", "bench/make-busybox.py"),
        ("examples/hello/Dockerfile", "examples/hello/Dockerfile"),
        ("examples/hello/greeting.txt", "examples/hello/greeting.txt"),
    ] {
        let dest = copy.join(to);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(from), &dest).unwrap();
    }
    user.give(&copy);
    let out = user
        .command("bash")
        .arg(copy.join("scripts/demo.sh"))
        .env("MANIFOLD", user.exe())
        .env("MANIFOLD_ROOT", user.root())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", all(&out));
    assert!(stdout.contains("rootless: QEMU for arm64"), "{stdout}");
    for arch in ["x86_64", "aarch64"] {
        assert!(
            stdout.contains(&format!("Hello, my architecture is {arch}")),
            "{stdout}"
        );
    }
}

#[test]
fn binfmt_ls_works_for_anyone_and_install_names_the_root_step() {
    let user = User::new(WITH_SUBUIDS, Path::new(env!("CARGO_BIN_EXE_manifold")));
    let ls = ok(user.run(&["binfmt", "ls"]));
    assert!(text(&ls.stdout).contains("linux/amd64"), "{}", all(&ls));
    let install = user.run(&["binfmt", "install", "s390x"]);
    assert!(!install.status.success(), "{}", all(&install));
    assert!(
        text(&install.stderr).contains("sudo manifold binfmt install s390x"),
        "{}",
        all(&install)
    );
}

#[test]
fn every_output_cache_mounts_and_secrets_work_rootless() {
    testkit::require_tool("podman");
    let (user, ctx) = user_with_base(
        WITH_SUBUIDS,
        &["amd64"],
        "FROM localhost/busybox:test\n\
         RUN --mount=type=cache,target=/cache,uid=1000 \
             [ \"$(stat -c %u /cache)\" = 1000 ] && echo x >> /cache/runs && wc -l < /cache/runs > /runs\n\
         RUN --mount=type=secret,id=token,required=true \
             wc -c < /run/secrets/token > /seen\n\
         RUN echo rootless > /hello\n",
    );
    let secret = user.home().join("token");
    std::fs::write(&secret, "s3cret\n").unwrap();
    user.give(&secret);
    let o = |p: &str| user.home().join(p);
    let arg = |s: String| s;
    let build = |tag: &str, extra: &[String]| {
        let mut cmd = user.manifold();
        cmd.args(["build", "--progress=plain", "-t", tag])
            .arg("--secret")
            .arg(format!("id=token,src={}", secret.display()))
            .args(extra)
            .arg(&ctx);
        ok(cmd.output().unwrap())
    };
    let out = build(
        "localhost/rootless:outputs",
        &[
            "-o".into(),
            arg(format!("type=oci,dest={}", o("image.tar").display())),
            "-o".into(),
            arg(format!("type=oci,tar=false,dest={}", o("layout").display())),
            "-o".into(),
            arg(format!("type=docker,dest={}", o("docker.tar").display())),
            "-o".into(),
            arg(format!("type=local,dest={}", o("rootfs").display())),
            "-o".into(),
            arg(format!("type=tar,dest={}", o("rootfs.tar").display())),
            "--load".into(),
        ],
    );
    // The local output: the secret was read by the step and the cache mount served it.
    let read = |p: &str| std::fs::read_to_string(o("rootfs").join(p)).unwrap();
    assert_eq!(read("hello"), "rootless\n");
    assert_eq!(read("seen").trim(), "7");
    assert_eq!(read("runs").trim(), "1");
    // Files the user can use: the outputs belong to the user.
    for f in [
        "image.tar",
        "docker.tar",
        "rootfs.tar",
        "rootfs/hello",
        "layout/index.json",
    ] {
        assert_eq!(std::fs::metadata(o(f)).unwrap().uid(), user.uid, "{f}");
    }
    // Tools that are not manifold read the files.
    let skopeo = testkit::require_tool("skopeo");
    for src in [
        format!("oci-archive:{}", o("image.tar").display()),
        format!("oci:{}:outputs", o("layout").display()),
        format!("docker-archive:{}", o("docker.tar").display()),
    ] {
        ok(Command::new(&skopeo)
            .args(["inspect", &src])
            .output()
            .unwrap());
    }
    let listed = ok(Command::new("tar")
        .arg("-tf")
        .arg(o("rootfs.tar"))
        .output()
        .unwrap());
    assert!(text(&listed.stdout).lines().any(|l| l == "hello"));
    // --load went into the user's own podman, which runs it.
    assert!(
        text(&out.stderr).contains("loaded linux/amd64 into podman"),
        "{}",
        all(&out)
    );
    let ran = ok(user
        .command("podman")
        .args(["run", "--rm", "localhost/rootless:outputs", "cat", "/hello"])
        .output()
        .unwrap());
    assert_eq!(text(&ran.stdout), "rootless\n");
    let _ = user
        .command("podman")
        .args(["system", "reset", "--force"])
        .output();

    // Cache mounts persist across builds (a changed step, the same cache).
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox:test\n\
         RUN --mount=type=cache,target=/cache,uid=1000 echo y >> /cache/runs && wc -l < /cache/runs > /runs\n",
    )
    .unwrap();
    let dest = o("second");
    build(
        "localhost/rootless:second",
        &["-o".into(), format!("type=local,dest={}", dest.display())],
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("runs")).unwrap().trim(),
        "2"
    );
    // The secret's file never reached the state root.
    let grep = Command::new("grep")
        .args(["-r", "-l", "s3cret"])
        .arg(user.root())
        .output()
        .unwrap();
    assert_eq!(text(&grep.stdout), "", "the secret is in the state root");
}

const MULTI: &str = "FROM localhost/busybox:test AS build
ARG TARGETPLATFORM
RUN echo \"$TARGETPLATFORM\" > /platform && uname -m > /arch && chown 1000:1000 /arch
FROM localhost/busybox:test
COPY --from=build /platform /arch /out/
RUN [ \"$(stat -c %u /out/arch)\" = 1000 ]
";

#[test]
fn six_platforms_rootless_give_the_index_a_rootful_build_gives() {
    let arches = testkit::base::ARCHES;
    let manifold = Path::new(env!("CARGO_BIN_EXE_manifold"));
    let _emulators =
        testkit::binfmt::Guard::ensure(manifold, &["arm64", "arm", "ppc64le", "s390x"]);
    let (user, ctx) = user_with_base(WITH_SUBUIDS, &arches, MULTI);
    let platforms: Vec<String> = arches
        .iter()
        .map(|a| testkit::base::platform(a).to_string())
        .collect();
    let platforms = platforms.join(",");
    let rootless_meta = user.home().join("meta.json");
    let rootless_local = user.home().join("local");
    ok(user
        .manifold()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--progress=plain", "--platform", &platforms])
        .arg("--metadata-file")
        .arg(&rootless_meta)
        .arg("-o")
        .arg(format!("type=local,dest={}", rootless_local.display()))
        .arg(&ctx)
        .output()
        .unwrap());
    // Each platform's files, from its own architecture (five under QEMU).
    for arch in arches {
        let platform = testkit::base::platform(arch);
        let dir = rootless_local.join(platform.to_string().replace('/', "_"));
        assert_eq!(
            std::fs::read_to_string(dir.join("out/platform")).unwrap(),
            format!("{platform}\n")
        );
        // The local output's files are the user's, as a buildx client writes them.
        assert_eq!(
            std::fs::metadata(dir.join("out/arch")).unwrap().uid(),
            user.uid
        );
    }
    // The same inputs built by the host's root, on a root of its own.
    let root = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(root.path(), BASE, &arches);
    let rootful_meta = root.path().join("meta.json");
    ok(Command::new(manifold)
        .env("MANIFOLD_ROOT", root.path())
        .env("MANIFOLD_CONFIG", root.path().join("config"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--progress=plain", "--platform", &platforms])
        .arg("--metadata-file")
        .arg(&rootful_meta)
        .arg(&ctx)
        .output()
        .unwrap());
    let digest = |p: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v["containerimage.digest"].as_str().unwrap().to_owned()
    };
    assert_eq!(digest(&rootless_meta), digest(&rootful_meta));
}

#[test]
fn pasta_serves_as_the_step_network_too() {
    testkit::require_tool("pasta");
    let port = host_loopback_server();
    // pasta copies the host's addresses; the gateway is the host's loopback only when asked.
    let dockerfile = format!(
        "FROM localhost/busybox:test\n\
         RUN ip addr show tap0 | grep -q 'inet ' && gw=$(ip route | awk '/^default/ {{print $3}}') \
          && (timeout 5 wget -q -O /got http://$gw:{port}/ || echo unreachable > /got)\n"
    );
    let (user, ctx) = user_with_base(WITH_SUBUIDS, &["amd64"], &dockerfile);
    for (loopback, want) in [("1", "hello-from-host\n"), ("0", "unreachable\n")] {
        let dest = user.home().join(format!("out-{loopback}"));
        ok(user
            .manifold()
            .env("MANIFOLD_ROOTLESS_NET", "pasta")
            .env("MANIFOLD_ROOTLESS_HOST_LOOPBACK", loopback)
            .args(["build", "--progress=plain", "--no-cache", "-o"])
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(&ctx)
            .output()
            .unwrap());
        assert_eq!(
            std::fs::read_to_string(dest.join("got")).unwrap(),
            want,
            "host loopback {loopback}"
        );
    }
    // A tool that is not there is named.
    let out = user
        .manifold()
        .env("MANIFOLD_ROOTLESS_NET", "vde")
        .args(["build", "--progress=plain", "--no-cache"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("MANIFOLD_ROOTLESS_NET=vde names no network"),
        "{}",
        all(&out)
    );
}

#[test]
fn one_pause_process_keeps_the_namespace_and_a_dead_one_is_replaced() {
    testkit::require_tool("runc");
    let user = User::new(WITH_SUBUIDS, Path::new(env!("CARGO_BIN_EXE_manifold")));
    let run_dir = user.home().join("xdg");
    std::fs::create_dir(&run_dir).unwrap();
    user.give(&run_dir);
    let du = || {
        ok(user
            .manifold()
            .env("XDG_RUNTIME_DIR", &run_dir)
            .arg("du")
            .output()
            .unwrap())
    };
    let pause_pid = || -> u32 {
        std::fs::read_to_string(run_dir.join("manifold/pause.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let is_pause = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("__rootless-pause"))
    };
    du();
    let first = pause_pid();
    assert!(is_pause(first), "no pause process at {first}");
    // Its namespace maps the user to 0 and the subordinate range after it.
    let map = std::fs::read_to_string(format!("/proc/{first}/uid_map")).unwrap();
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", &user.uid.to_string(), "1"], "{map}");
    assert_eq!(lines.len(), 2, "{map}");
    // The runtime directory is private.
    let mode = std::fs::metadata(run_dir.join("manifold")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    du();
    assert_eq!(
        pause_pid(),
        first,
        "a second command made another namespace"
    );
    // Killed (a reboot, a `kill`): the next command makes the namespace again.
    kill_and_wait(first);
    du();
    let second = pause_pid();
    assert_ne!(second, first);
    assert!(is_pause(second));
}

/// SIGKILL `pid` with kill(1) and wait until it is gone.
fn kill_and_wait(pid: u32) {
    ok(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .output()
        .unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(std::time::Instant::now() < deadline, "{pid} did not die");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
