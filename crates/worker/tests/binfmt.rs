//! binfmt_misc registration and emulated steps with real QEMU and runc.
//!
//! Everything is in one test function, and the binary is in a nextest test group with
//! one thread (`.config/nextest.toml`): registrations are global to the machine. What
//! was registered before is restored exactly at the end, even when an assertion fails.

mod common;

use std::path::Path;

use common::fixture;
use worker::binfmt::{
    self, Archs, BINFMT_MISC, BinfmtError, Entry, InstallOptions, Installed, RunsHow,
};
use worker::{CancelToken, ExecError, ExecSpec};

/// Puts binfmt_misc back as it was: same entries, mounted or not.
struct Restore {
    was_mounted: bool,
    before: Vec<Entry>,
}

impl Restore {
    fn take() -> Restore {
        Restore {
            was_mounted: binfmt::is_mounted(),
            before: binfmt::entries().expect("read binfmt entries"),
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if !binfmt::is_mounted() {
            return;
        }
        for now in binfmt::entries().unwrap_or_default() {
            if !self.before.contains(&now) {
                let _ = binfmt::remove(&now.name);
            }
        }
        let now = binfmt::entries().unwrap_or_default();
        for old in &self.before {
            if !now.iter().any(|e| e.name == old.name) {
                binfmt::register(old).expect("re-register an entry that was there before");
                if !old.enabled {
                    let _ = std::fs::write(Path::new(BINFMT_MISC).join(&old.name), "0");
                }
            }
        }
        if !self.was_mounted {
            let _ = rustix::mount::unmount(BINFMT_MISC, rustix::mount::UnmountFlags::empty());
        }
        if !std::thread::panicking() {
            assert_eq!(binfmt::entries().unwrap_or_default(), self.before);
        }
    }
}

fn named(names: &[&str]) -> Archs {
    Archs::Named(names.iter().map(|s| s.to_string()).collect())
}

fn uname(f: &common::Fixture, arch: &str) -> (Result<worker::ExitStatus, ExecError>, String) {
    let rootfs = testkit::base::busybox_rootfs_copy(arch);
    let mut spec = ExecSpec::new(["uname", "-m"]);
    spec.platform = testkit::base::platform(arch);
    let (res, out) = f.run_with(&spec, rootfs.path(), &[], &CancelToken::new());
    (res, out.stdout())
}

fn not_runnable(res: Result<impl std::fmt::Debug, ExecError>) -> BinfmtError {
    match res {
        Err(ExecError::Platform(e @ BinfmtError::NotRunnable { .. })) => e,
        other => panic!("expected a platform error, got {other:?}"),
    }
}

#[test]
fn binfmt_install_run_and_policies() {
    let f = fixture();
    testkit::require_tool("qemu-aarch64-static");
    let _restore = Restore::take();
    let arm64 = testkit::base::platform("arm64");

    // Case 34: no handler → an error naming the platform, with the command that fixes it.
    // Whatever served these before (the distribution's entries, say) is put back by
    // `Restore`; meanwhile manifold's own registrations are tested.
    binfmt::uninstall(&named(&["arm64", "armhf", "ppc64el", "s390x"]), force()).unwrap();
    let err = binfmt::check_platform(&arm64).unwrap_err();
    assert_eq!(err.hint(), Some("manifold binfmt install arm64"));
    let err = not_runnable(uname(&f, "arm64").0);
    assert!(
        err.to_string()
            .starts_with("cannot run linux/arm64 binaries"),
        "{err}"
    );

    // Install: registered with P and F (never C), then idempotent.
    let done = binfmt::install(
        &named(&["arm64", "armhf", "ppc64el", "s390x", "386"]),
        InstallOptions::default(),
    )
    .unwrap();
    let Installed::Registered { entry, .. } = &done[0] else {
        panic!("{done:?}")
    };
    assert_eq!(entry.name, "qemu-aarch64");
    assert_eq!(entry.flags, "PF");
    assert_eq!(entry.interpreter, Path::new("/usr/bin/qemu-aarch64-static"));
    assert!(
        matches!(
            &done[4],
            Installed::NotNeeded {
                runs: RunsHow::Compatible,
                ..
            }
        ),
        "{done:?}"
    );
    let again = binfmt::install(&named(&["arm64"]), InstallOptions::default()).unwrap();
    assert!(
        matches!(&again[0], Installed::AlreadyRegistered { .. }),
        "{again:?}"
    );
    let kernel = binfmt::entries().unwrap();
    let e = kernel.iter().find(|e| e.name == "qemu-aarch64").unwrap();
    assert!(e.enabled && e.flags == "PF", "{e:?}");

    let listed = binfmt::list();
    let arm = listed.iter().find(|s| s.platform == arm64).unwrap();
    assert!(
        matches!(&arm.runs, Ok(RunsHow::Emulated { flags, .. }) if flags == "PF"),
        "{arm:?}"
    );
    let i386 = listed
        .iter()
        .find(|s| s.platform.architecture == "386")
        .unwrap();
    assert!(matches!(i386.runs, Ok(RunsHow::Compatible)));

    // Emulated steps report the emulated machine.
    for (arch, machine) in [
        ("arm64", "aarch64"),
        ("armhf", "armv7l"),
        ("ppc64el", "ppc64le"),
        ("s390x", "s390x"),
    ] {
        let (res, out) = uname(&f, arch);
        let status = res.unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert!(status.success(), "{arch}");
        assert_eq!(out, format!("{machine}\n"), "{arch}");
        assert!(matches!(status.runs, RunsHow::Emulated { .. }), "{arch}");
    }
    // 386 on amd64 is compatible: no emulator, and uname says x86_64 as docker does.
    let (res, out) = uname(&f, "i386");
    assert_eq!(res.unwrap().runs, RunsHow::Compatible);
    assert_eq!(out, "x86_64\n");

    // Case 34: an emulated step killed by a signal names QEMU and the platform.
    let rootfs = testkit::base::busybox_rootfs_copy("arm64");
    let mut spec = ExecSpec::new(["/bin/sh", "-c", "sh -c 'kill -SEGV $$'; exit $?"]);
    spec.platform = arm64.clone();
    let (res, _) = f.run_with(&spec, rootfs.path(), &[], &CancelToken::new());
    let msg = res.unwrap().check().unwrap_err().to_string();
    assert!(msg.contains("SIGSEGV"), "{msg}");
    assert!(msg.contains("QEMU emulation of linux/arm64"), "{msg}");
    assert!(msg.contains("/usr/bin/qemu-aarch64-static"), "{msg}");

    // Someone else's working entry is left as it is, and used: as Debian's
    // systemd-binfmt registers it (interpreter elsewhere, flags POF) …
    binfmt::remove("qemu-aarch64").unwrap();
    let debian = debian_entry("aarch64");
    binfmt::register(&debian).unwrap();
    let done = binfmt::install(&named(&["arm64"]), InstallOptions::default()).unwrap();
    assert!(
        matches!(&done[0], Installed::Served { entry, .. } if entry.flags == "POF"),
        "{done:?}"
    );
    assert_eq!(kernel_entry("qemu-aarch64").flags, "POF");
    let (res, out) = uname(&f, "arm64");
    assert!(
        matches!(res.unwrap().runs, RunsHow::Emulated { ref interpreter, .. }
            if interpreter == Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")),
    );
    assert_eq!(out, "aarch64\n");
    // … and uninstall leaves it unless forced.
    let kept = binfmt::uninstall(&named(&["arm64"]), InstallOptions::default()).unwrap();
    assert!(
        matches!(&kept[0], binfmt::Uninstalled::NotOurs { .. }),
        "{kept:?}"
    );
    assert_eq!(kernel_entry("qemu-aarch64").flags, "POF");

    // … as a CI system registers it from a container: F opens the interpreter at
    // registration, so the entry works after its file is gone (flags POCF).
    binfmt::remove("qemu-aarch64").unwrap();
    let copy = tempfile::tempdir().unwrap();
    let qemu = copy.path().join("qemu-aarch64");
    std::fs::copy("/usr/bin/qemu-aarch64-static", &qemu).unwrap();
    let mut ci = debian.clone();
    ci.interpreter = qemu.clone();
    ci.flags = "POCF".into();
    binfmt::register(&ci).unwrap();
    drop(copy);
    assert!(!qemu.exists());
    let done = binfmt::install(&named(&["arm64"]), InstallOptions::default()).unwrap();
    assert!(
        matches!(&done[0], Installed::Served { entry, .. } if entry.interpreter == qemu),
        "{done:?}"
    );
    let (res, out) = uname(&f, "arm64");
    assert!(res.unwrap().success());
    assert_eq!(out, "aarch64\n");
    // Case 34: the C flag is accepted by default (CI systems set it), refused by the
    // strict policy with a reason.
    let policy = binfmt::BinfmtPolicy {
        refuse_credentials_flag: true,
    };
    let err = binfmt::check_platform_with(&arm64, &policy).unwrap_err();
    assert!(err.to_string().contains("C (credentials) flag"), "{err}");
    assert_eq!(
        err.hint(),
        Some("manifold binfmt install --force arm64"),
        "{err}"
    );

    // An entry whose program does not run (here: no F, so the interpreter would be
    // looked up inside the container) is the error, with the fix …
    binfmt::remove("qemu-aarch64").unwrap();
    let mut no_f = debian.clone();
    no_f.interpreter = "/usr/bin/qemu-aarch64-static".into();
    no_f.flags = "P".into();
    binfmt::register(&no_f).unwrap();
    let err = binfmt::check_platform(&arm64).unwrap_err();
    assert!(err.to_string().contains("without F (fix-binary)"), "{err}");
    assert_eq!(err.hint(), Some("manifold binfmt install --force arm64"));
    let err = not_runnable(uname(&f, "arm64").0);
    assert!(err.to_string().contains("without F"), "{err}");
    let done = binfmt::install(&named(&["arm64"]), InstallOptions::default()).unwrap();
    assert!(
        matches!(&done[0], Installed::Conflict { existing, .. } if existing.flags == "P"),
        "{done:?}"
    );
    assert_eq!(kernel_entry("qemu-aarch64").flags, "P");
    // … and --force replaces it with manifold's own.
    let done = binfmt::install(&named(&["arm64"]), force()).unwrap();
    assert!(
        matches!(&done[0], Installed::Registered { entry, replaced: Some(old), .. }
            if entry.flags == "PF" && old.flags == "P"),
        "{done:?}"
    );
    let (res, out) = uname(&f, "arm64");
    assert!(res.unwrap().success());
    assert_eq!(out, "aarch64\n");

    // Uninstall removes ours by name.
    let removed = binfmt::uninstall(&named(&["arm64"]), InstallOptions::default()).unwrap();
    assert!(
        matches!(&removed[0], binfmt::Uninstalled::Removed { .. }),
        "{removed:?}"
    );
    assert!(binfmt::check_platform(&arm64).is_err());
    f.assert_no_bundles();
}

/// Each architecture's probe program exits with the probe's status under its QEMU
/// (run directly, no binfmt_misc involved), and natively on this host.
#[test]
fn probe_programs_run_under_their_emulators() {
    let host = oci::Platform::host();
    let mut ran = 0;
    let dir = tempfile::tempdir().unwrap();
    for name in binfmt::known_arches() {
        let (qemu, program) = binfmt::probe_program(name).unwrap();
        let path = dir.path().join(qemu);
        std::fs::write(&path, &program).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let status = if host.architecture == name {
            std::process::Command::new(&path).status().unwrap()
        } else {
            let emulator = format!("qemu-{qemu}-static");
            testkit::require_tool(&emulator);
            std::process::Command::new(emulator)
                .arg(&path)
                .status()
                .unwrap()
        };
        assert_eq!(status.code(), Some(binfmt::PROBE_EXIT), "{name} ({qemu})");
        ran += 1;
    }
    assert_eq!(ran, binfmt::known_arches().count());
    assert!(ran >= 10);
}

fn force() -> InstallOptions {
    InstallOptions {
        force: true,
        ..InstallOptions::default()
    }
}

/// The entry Debian's systemd-binfmt registers from `/usr/lib/binfmt.d/qemu-<arch>.conf`.
fn debian_entry(qemu: &str) -> Entry {
    let line = std::fs::read_to_string(format!("/usr/lib/binfmt.d/qemu-{qemu}.conf"))
        .expect("Debian's qemu-user-static registration file");
    let f: Vec<&str> = line.trim().trim_start_matches(':').split(':').collect();
    let unescape = |s: &str| -> Vec<u8> {
        s.split("\\x")
            .filter(|h| !h.is_empty())
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    };
    assert_eq!(f[1], "M", "{line}");
    Entry {
        name: f[0].to_owned(),
        enabled: true,
        interpreter: f[5].into(),
        // The kernel shows flags in the order P, O, C, F.
        flags: ["P", "O", "C", "F"]
            .into_iter()
            .filter(|c| f[6].contains(c))
            .collect(),
        offset: 0,
        magic: unescape(f[3]),
        mask: unescape(f[4]),
        extension: None,
    }
}

fn kernel_entry(name: &str) -> Entry {
    binfmt::entries()
        .unwrap()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no binfmt_misc entry {name}"))
}
