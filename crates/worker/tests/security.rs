//! SECURITY-CASES.md section C cases for the executor (25, 31, 33), with real runc.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;

use common::fixture;
use worker::exec::{ReadError, UserError};
use worker::{CancelToken, ExecError, ExecSpec};

fn sh(script: &str) -> ExecSpec {
    ExecSpec::new(["/bin/sh", "-c", script])
}

/// Case 25 (CVE-2024-21626): `WORKDIR /proc/self/fd/N` is refused before anything
/// runs, and the step sees no host file descriptor even when this process has an
/// inheritable one open.
#[test]
fn case25_workdir_proc_self_fd_and_no_inherited_fds() {
    let f = fixture();
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    for n in 3..=32 {
        let mut spec = sh("pwd");
        spec.cwd = format!("/proc/self/fd/{n}");
        let (res, out) = f.run_with(&spec, rootfs.path(), &[], &CancelToken::new());
        assert!(
            matches!(res, Err(ExecError::CwdInKernelFs(_))),
            "fd {n}: {res:?}"
        );
        assert!(out.stdout.is_empty());
    }
    // The refused steps created nothing in the root filesystem.
    assert_eq!(
        std::fs::read_dir(rootfs.path().join("proc"))
            .unwrap()
            .count(),
        0
    );

    // An fd without CLOEXEC (as a careless parent could leave): runc gets it, the
    // step must not.
    let host_file = tempfile::NamedTempFile::new().unwrap();
    let leaked = rustix::io::dup(host_file.as_file()).unwrap();
    let (status, out) = f.sh(
        &ExecSpec::new(["/bin/sh"]),
        rootfs.path(),
        "for f in /proc/self/fd/*; do echo ${f##*/}; done",
    );
    assert!(status.success());
    let fds: Vec<i32> = out.stdout().lines().map(|l| l.parse().unwrap()).collect();
    assert!(
        fds.iter().all(|fd| *fd <= 3),
        "fds in the step: {fds:?} (leaked host fd {})",
        leaked.as_raw_fd()
    );
    drop(leaked);
}

/// Case 31: `/proc`, `/sys`, `/dev` that are symlinks or files are refused; device
/// files inside the image's `/dev` are hidden by the runtime's own `/dev`.
#[test]
fn case31_kernel_dirs_as_symlinks_or_files() {
    let f = fixture();
    let sentinel = tempfile::tempdir().unwrap();
    std::fs::write(sentinel.path().join("keep"), "host").unwrap();
    type Make<'a> = &'a dyn Fn(&std::path::Path);
    let cases: [(&str, Make); 4] = [
        ("/proc", &|p| symlink("/", p.join("proc")).unwrap()),
        ("/sys", &|p| {
            symlink(sentinel.path(), p.join("sys")).unwrap()
        }),
        ("/dev", &|p| std::fs::write(p.join("dev"), "").unwrap()),
        ("/proc", &|p| std::fs::write(p.join("proc"), "").unwrap()),
    ];
    for (path, make) in cases {
        let rootfs = testkit::base::busybox_rootfs_copy("amd64");
        let _ = std::fs::remove_dir(rootfs.path().join(&path[1..]));
        make(rootfs.path());
        let (res, _) = f.run_with(&sh("true"), rootfs.path(), &[], &CancelToken::new());
        let err = res.unwrap_err();
        assert!(
            matches!(&err, ExecError::UnsafeRootfs { path: p, .. } if p == path),
            "{path}: {err:?}"
        );
        assert!(err.to_string().contains(path), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(sentinel.path().join("keep")).unwrap(),
        "host"
    );
    assert_eq!(std::fs::read_dir(sentinel.path()).unwrap().count(), 1);

    // /dev/null and /dev/console as regular files or symlinks in the image: the
    // step sees the runtime's devices; the image's files are untouched.
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    std::fs::write(rootfs.path().join("dev/null"), "not a device").unwrap();
    symlink("/etc/passwd", rootfs.path().join("dev/console")).unwrap();
    let (status, out) = f.sh(
        &ExecSpec::new(["/bin/sh"]),
        rootfs.path(),
        "test -c /dev/null && echo chr; echo x > /dev/null; test -L /dev/console || echo nolink",
    );
    assert!(status.success(), "{}", out.stderr());
    assert_eq!(out.stdout(), "chr\nnolink\n");
    assert_eq!(
        std::fs::read_to_string(rootfs.path().join("dev/null")).unwrap(),
        "not a device"
    );
}

fn user_err(res: Result<worker::ExitStatus, ExecError>) -> UserError {
    match res {
        Err(ExecError::User(e)) => e,
        other => panic!("expected a user error, got {other:?}"),
    }
}

/// Case 33: hostile passwd/group files; numeric USER is a uid.
#[test]
fn case33_passwd_and_group() {
    let f = fixture();
    let cancel = CancelToken::new();
    let mut spec = sh("id -u");
    spec.user = "app".into();

    // /etc/passwd -> /dev/zero resolves in the root: the host's /dev/zero is not read.
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    let passwd = rootfs.path().join("etc/passwd");
    std::fs::remove_file(&passwd).unwrap();
    symlink("/dev/zero", &passwd).unwrap();
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &cancel);
    assert!(matches!(user_err(res), UserError::UnknownUser { .. }));
    // Even when the image has a /dev/zero of its own, a device is never read.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        rootfs.path().join("dev/zero"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 5),
    )
    .unwrap();
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &cancel);
    let e = user_err(res);
    assert!(
        matches!(&e, UserError::IdFile { source: ReadError::NotRegular { what, .. }, .. } if *what == "a character device"),
        "{e:?}"
    );

    // A FIFO is refused at once (reading it would block forever).
    std::fs::remove_file(&passwd).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &passwd,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let start = std::time::Instant::now();
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &cancel);
    let e = user_err(res);
    assert!(
        std::error::Error::source(&e)
            .unwrap()
            .to_string()
            .contains("/etc/passwd is not a regular file (a FIFO)"),
        "{e:?}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));

    // A huge /etc/group is refused at the cap, not read whole.
    std::fs::remove_file(&passwd).unwrap();
    std::fs::write(&passwd, testkit::base::PASSWD).unwrap();
    let big = "g:x:1:app\n".repeat((2 << 20) / 10);
    std::fs::write(rootfs.path().join("etc/group"), big).unwrap();
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &cancel);
    let e = user_err(res);
    assert!(
        matches!(&e, UserError::IdFile { source: ReadError::TooLarge { limit, .. }, .. } if *limit == worker::exec::MAX_ID_FILE_BYTES),
        "{e:?}"
    );

    // USER 1000 is uid 1000 even when a user is named "1000".
    let rootfs = testkit::base::busybox_rootfs_copy("amd64");
    std::fs::write(
        rootfs.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\n1000:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
    )
    .unwrap();
    spec.user = "1000".into();
    spec.args = vec!["/bin/sh".into(), "-c".into(), "id -u; id -g".into()];
    let (status, out) = f.sh(&spec, rootfs.path(), "id -u; id -g");
    assert!(status.success());
    assert_eq!(out.stdout(), "1000\n1000\n");
    f.assert_no_bundles();
}
