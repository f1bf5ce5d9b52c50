//! The runc executor against real runc, as root, on the busybox test image.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{fixture, mountinfo_mentions, runc_has};
use worker::exec::{DEFAULT_NOFILE, Rlimit};
use worker::{
    CancelToken, Entitlements, ExecError, ExecSpec, MountKind, MountSpec, NetworkMode,
    SecurityMode, Stream,
};

fn sh_spec() -> ExecSpec {
    ExecSpec::new(["/bin/sh"])
}

#[test]
fn output_is_streamed_live_and_exit_code_reported() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let start = Instant::now();
    let (status, out) = f.sh(
        &sh_spec(),
        rootfs.path(),
        "echo hi; echo oops >&2; sleep 2; echo bye; exit 3",
    );
    let total = start.elapsed();
    assert_eq!(status.code, 3);
    assert_eq!(status.signal, None);
    assert!(!status.success());
    assert_eq!(out.stdout(), "hi\nbye\n");
    assert_eq!(out.stderr(), "oops\n");
    // "hi" arrived while the step was still sleeping: streamed, not collected at exit.
    let first = out
        .chunks
        .iter()
        .find(|(s, _, d)| *s == Stream::Stdout && d.starts_with(b"hi"))
        .expect("a chunk with hi");
    assert!(
        first.1.duration_since(start) + Duration::from_millis(1500) < total,
        "first output came {:?} after start, step took {total:?}",
        first.1.duration_since(start)
    );
    f.assert_no_bundles();
}

#[test]
fn killed_by_signal_is_reported() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    // The step's process is PID 1 of its namespace, which ignores signals it has no
    // handler for, even SIGKILL from inside; kill it from outside, as the OOM killer
    // or an operator would.
    let prefix = format!("manifold-{}-", std::process::id());
    std::thread::spawn(move || {
        let id = common::wait_for(Duration::from_secs(10), || {
            let out = std::process::Command::new("runc")
                .args(["list", "-q"])
                .output()
                .ok()?;
            let list = String::from_utf8_lossy(&out.stdout).into_owned();
            list.lines()
                .find(|l| l.starts_with(&prefix))
                .map(str::to_owned)
        })
        .expect("the container shows up in runc list");
        std::thread::sleep(Duration::from_millis(200));
        std::process::Command::new("runc")
            .args(["kill", &id, "KILL"])
            .status()
            .unwrap();
    });
    let (status, _) = f.sh(&sh_spec(), rootfs.path(), "sleep 30");
    assert_eq!((status.code, status.signal), (137, Some(9)));
    let msg = status.check().unwrap_err().to_string();
    assert!(msg.contains("exit code 137 (killed by SIGKILL)"), "{msg}");
    assert!(!msg.contains("QEMU"), "{msg}");
    f.assert_no_bundles();
}

#[test]
fn env_cwd_and_user() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let mut spec = sh_spec();
    spec.env = vec!["FOO=bar baz".into()];
    spec.cwd = "/work/sub".into();
    spec.user = "app".into();
    let (status, out) = f.sh(
        &spec,
        rootfs.path(),
        "echo \"$FOO\"; echo $PATH; pwd; id -u; id -g; id -G; stat -c %u:%g /work /work/sub",
    );
    assert!(status.success(), "{}", out.stderr());
    assert_eq!(
        out.stdout(),
        format!(
            "bar baz\n{}\n/work/sub\n1000\n1000\n1000 100\n1000:1000\n1000:1000\n",
            worker::exec::DEFAULT_PATH
        )
    );

    // Numeric USER is a uid; no passwd entry needed, gid 0.
    spec.user = "4321".into();
    let (_, out) = f.sh(&spec, rootfs.path(), "id -u; id -g");
    assert_eq!(out.stdout(), "4321\n0\n");
    spec.user = "1000:100".into();
    let (_, out) = f.sh(&spec, rootfs.path(), "id -u; id -g");
    assert_eq!(out.stdout(), "1000\n100\n");

    spec.user = "ghost".into();
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &CancelToken::new());
    let err = res.unwrap_err();
    assert!(
        err.to_string().starts_with("unable to find user ghost"),
        "{err}"
    );
    f.assert_no_bundles();
}

/// Serve one HTTP response per connection on 127.0.0.1 (a free port).
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { break };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n",
            );
        }
    });
    port
}

#[test]
fn network_default_reaches_the_host_and_none_does_not() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let port = http_server();
    // (busybox 1.35's static wget crashes with -T.)
    let script = format!("wget -q -O - http://127.0.0.1:{port}/");

    let mut spec = sh_spec();
    let (status, out) = f.sh(&spec, rootfs.path(), &script);
    assert!(status.success(), "{}", out.stderr());
    assert_eq!(out.stdout(), "hello\n");

    spec.network = NetworkMode::None;
    let (status, _) = f.sh(&spec, rootfs.path(), &script);
    assert!(!status.success());
    let (_, out) = f.sh(&spec, rootfs.path(), "ls /sys/class/net");
    assert_eq!(out.stdout(), "lo\n");

    // No loopback nameserver: it would not answer from another network namespace.
    let (_, out) = f.sh(&spec, rootfs.path(), "cat /etc/resolv.conf");
    assert!(out.stdout().contains("nameserver "), "{}", out.stdout());
    assert!(
        !out.stdout().contains("nameserver 127."),
        "{}",
        out.stdout()
    );

    spec.network = NetworkMode::Host;
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &CancelToken::new());
    assert!(matches!(res, Err(ExecError::NetworkHostNotAllowed)));
    spec.allow.network_host = true;
    let (status, out) = f.sh(&spec, rootfs.path(), &script);
    assert!(status.success(), "{}", out.stderr());
}

#[test]
fn nofile_is_clamped_to_the_host_hard_limit() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let host = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    let want = DEFAULT_NOFILE.min(host);
    let mut spec = sh_spec();
    let (status, out) = f.sh(&spec, rootfs.path(), "ulimit -Sn; ulimit -Hn");
    assert!(status.success(), "{}", out.stderr());
    assert_eq!(out.stdout(), format!("{want}\n{want}\n"));

    // An explicit ulimit above the host's hard limit is clamped too, never refused by
    // the runtime.
    spec.rlimits.push(Rlimit {
        resource: "NOFILE".into(),
        soft: 512,
        hard: host.saturating_add(1000),
    });
    let (status, out) = f.sh(&spec, rootfs.path(), "ulimit -Sn; ulimit -Hn");
    assert!(status.success(), "{}", out.stderr());
    assert_eq!(out.stdout(), format!("512\n{host}\n"));
}

#[test]
fn hostname_hosts_and_readonly_etc_files() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let mut spec = sh_spec();
    spec.hostname = "step-host".into();
    let (status, out) = f.sh(
        &spec,
        rootfs.path(),
        "hostname; grep -c step-host /etc/hosts; echo x >> /etc/hosts && echo writable",
    );
    assert!(!status.success());
    assert!(
        out.stdout().starts_with("step-host\n1\n"),
        "{}",
        out.stdout()
    );
    assert!(!out.stdout().contains("writable"));
}

fn cap_line(out: &str, key: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn capabilities_default_and_insecure() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let mut spec = sh_spec();
    let (_, out) = f.sh(&spec, rootfs.path(), "cat /proc/self/status");
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE
    // NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP: Docker's and BuildKit's set.
    assert_eq!(cap_line(&out.stdout(), "CapEff:"), "00000000a80425fb");
    assert_eq!(cap_line(&out.stdout(), "CapBnd:"), "00000000a80425fb");
    // /proc/keys is masked, /proc/sys read-only.
    let (_, out) = f.sh(
        &spec,
        rootfs.path(),
        "wc -c < /proc/keys; echo 1 > /proc/sys/kernel/ns_last_pid || echo ro",
    );
    assert!(out.stdout().starts_with("0\n"), "{}", out.stdout());
    assert!(out.stdout().ends_with("ro\n"), "{}", out.stdout());

    spec.security = SecurityMode::Insecure;
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &CancelToken::new());
    assert!(matches!(res, Err(ExecError::InsecureNotAllowed)));
    spec.allow = Entitlements {
        network_host: false,
        security_insecure: true,
    };
    let (_, out) = f.sh(&spec, rootfs.path(), "cat /proc/self/status");
    let eff = u64::from_str_radix(&cap_line(&out.stdout(), "CapEff:"), 16).unwrap();
    assert_ne!(eff & (1 << 21), 0, "CAP_SYS_ADMIN missing in insecure mode");
}

#[test]
fn cancel_kills_the_container_and_cleans_up() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        c2.cancel();
    });
    let mut spec = sh_spec();
    spec.args = vec!["sleep".into(), "100".into()];
    let start = Instant::now();
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &cancel);
    let took = start.elapsed();
    let Err(ExecError::Cancelled { id }) = res else {
        panic!("expected a cancelled step, got {res:?}")
    };
    assert!(took < Duration::from_secs(10), "cancel took {took:?}");
    assert!(id.starts_with("manifold-"), "{id}");
    assert!(!runc_has(&id), "runc still lists {id}");
    assert!(!mountinfo_mentions(&id), "a mount of {id} is left");
    assert!(!mountinfo_mentions(&rootfs.path().display().to_string()));
    f.assert_no_bundles();
    // No `sleep 100` survives.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l == "sleep 100")
    );
}

#[test]
fn cancel_before_start_runs_nothing() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let cancel = CancelToken::new();
    cancel.cancel();
    let (res, _) = f.run_with(&sh_spec(), rootfs.path(), &[], &cancel);
    assert!(matches!(res, Err(ExecError::Cancelled { .. })), "{res:?}");
    f.assert_no_bundles();
}

#[test]
fn mounts_bind_and_tmpfs() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    let mounts = [
        MountSpec {
            destination: "/src".into(),
            kind: MountKind::Bind {
                source: host.path().to_owned(),
                readonly: true,
            },
        },
        MountSpec {
            destination: "/scratch".into(),
            kind: MountKind::Tmpfs { size: 1 << 20 },
        },
    ];
    let mut spec = sh_spec();
    spec.args = vec![
        "/bin/sh".into(),
        "-c".into(),
        "cat /src/in; touch /src/x || echo ro; echo t > /scratch/t && cat /scratch/t".into(),
    ];
    let (res, out) = f.run_with(&spec, rootfs.path(), &mounts, &CancelToken::new());
    assert!(res.unwrap().success(), "{}", out.stderr());
    assert_eq!(out.stdout(), "from host\nro\nt\n");
    assert!(!host.path().join("x").exists());
}

#[test]
fn missing_command_is_a_runtime_error() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let spec = ExecSpec::new(["/no/such/binary"]);
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &CancelToken::new());
    let err = res.unwrap_err();
    assert!(matches!(err, ExecError::Runtime { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    f.assert_no_bundles();
}
