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
    binfmt::uninstall(&named(&["arm64"])).unwrap();
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

    // Someone else's entry of the same name is reported, never replaced silently.
    binfmt::remove("qemu-aarch64").unwrap();
    let mut theirs = e.clone();
    theirs.flags = "OCF".into();
    binfmt::register(&theirs).unwrap();
    let done = binfmt::install(&named(&["arm64"]), InstallOptions::default()).unwrap();
    assert!(
        matches!(&done[0], Installed::Conflict { existing, .. } if existing.flags == "OCF"),
        "{done:?}"
    );
    assert_eq!(
        binfmt::entries()
            .unwrap()
            .iter()
            .find(|e| e.name == "qemu-aarch64")
            .unwrap()
            .flags,
        "OCF"
    );
    // Case 34: a C-flag entry is refused by the default policy, with a reason.
    let err = not_runnable(uname(&f, "arm64").0);
    assert!(err.to_string().contains("C (credentials) flag"), "{err}");
    let policy = binfmt::BinfmtPolicy {
        allow_credentials_flag: true,
    };
    assert!(binfmt::check_platform_with(&arm64, &policy).is_ok());

    // Without F the interpreter would be looked up in the container: refused.
    binfmt::remove("qemu-aarch64").unwrap();
    theirs.flags = String::new();
    binfmt::register(&theirs).unwrap();
    let err = binfmt::check_platform(&arm64).unwrap_err();
    assert!(err.to_string().contains("without F (fix-binary)"), "{err}");

    // Uninstall removes ours by name.
    binfmt::remove("qemu-aarch64").unwrap();
    binfmt::install(&named(&["arm64"]), InstallOptions::default()).unwrap();
    let removed = binfmt::uninstall(&named(&["arm64"])).unwrap();
    assert!(
        matches!(&removed[0], binfmt::Uninstalled::Removed { .. }),
        "{removed:?}"
    );
    assert!(binfmt::check_platform(&arm64).is_err());
    f.assert_no_bundles();
}
