//! manifold on hosts where someone else registered QEMU: Debian's systemd-binfmt
//! (the lines of `/usr/lib/binfmt.d/qemu-<arch>.conf`, flags POF), and a CI system that
//! registered from a container (F entries whose interpreter is not on the host).
//! Each test puts the host's entries back as they were.

use std::path::{Path, PathBuf};

use worker::binfmt::{self, Entry};

use super::{manifests, manifold, ok, root_with_base, text, unpack, write};

const REGISTER: &str = "/proc/sys/fs/binfmt_misc/register";

/// The host's `qemu-<arch>` entries of some architectures, replaced for one test.
struct HostEntries {
    names: Vec<String>,
    before: Vec<Entry>,
    was_mounted: bool,
}

impl HostEntries {
    /// Replace the `qemu-<q>` entries of `qemus` with the registration lines `line(q)`,
    /// written to the kernel as systemd-binfmt writes them.
    fn replace(qemus: &[&str], line: impl Fn(&str) -> String) -> HostEntries {
        let was_mounted = binfmt::is_mounted();
        binfmt::ensure_mounted().expect("mount binfmt_misc");
        let guard = HostEntries {
            names: qemus.iter().map(|q| format!("qemu-{q}")).collect(),
            before: binfmt::entries().unwrap(),
            was_mounted,
        };
        for q in qemus {
            guard.remove(&format!("qemu-{q}"));
            let line = line(q);
            std::fs::write(REGISTER, line.trim_end())
                .unwrap_or_else(|e| panic!("register {line:?}: {e}"));
        }
        guard
    }

    fn remove(&self, name: &str) {
        let path = Path::new(binfmt::BINFMT_MISC).join(name);
        if path.exists() {
            std::fs::write(&path, "-1").unwrap_or_else(|e| panic!("remove {name}: {e}"));
        }
    }
}

impl Drop for HostEntries {
    fn drop(&mut self) {
        for name in &self.names {
            self.remove(name);
        }
        for old in self.before.iter().filter(|e| self.names.contains(&e.name)) {
            binfmt::register(old).expect("re-register the host's entry");
            if !old.enabled {
                let _ = std::fs::write(Path::new(binfmt::BINFMT_MISC).join(&old.name), "0");
            }
        }
        if !self.was_mounted {
            let _ = std::process::Command::new("umount")
                .arg(binfmt::BINFMT_MISC)
                .status();
        } else if !std::thread::panicking() {
            assert_eq!(
                binfmt::entries().unwrap(),
                self.before,
                "host entries restored"
            );
        }
    }
}

fn debian_conf(qemu: &str) -> String {
    std::fs::read_to_string(format!("/usr/lib/binfmt.d/qemu-{qemu}.conf"))
        .expect("Debian's qemu-user-static registration file (scripts/setup.sh installs it)")
}

fn entry(name: &str) -> Entry {
    binfmt::entries()
        .unwrap()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no binfmt_misc entry {name}"))
}

#[test]
fn demo_and_six_platforms_on_debian_registered_qemu() {
    testkit::require_root_and_runc();
    let qemus = ["aarch64", "arm", "ppc64le", "s390x"];
    let _host = HostEntries::replace(&qemus, debian_conf);
    let root = tempfile::tempdir().unwrap();

    // `binfmt install` leaves the distribution's entry and says what serves arm64.
    let out = manifold(root.path(), &["binfmt", "install", "arm64"]);
    ok(&out);
    let said = text(&out.stderr);
    assert!(
        said.contains(
            "linux/arm64: emulated by qemu-aarch64 (/usr/libexec/qemu-binfmt/aarch64-binfmt-P, \
             flags POF), left as it is"
        ),
        "{said}"
    );
    let out = manifold(root.path(), &["binfmt", "ls"]);
    ok(&out);
    let listed = text(&out.stdout);
    let arm64 = listed
        .lines()
        .find(|l| l.starts_with("linux/arm64 "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        arm64.contains("emulated")
            && arm64
                .contains("by qemu-aarch64 (/usr/libexec/qemu-binfmt/aarch64-binfmt-P, flags POF)"),
        "{listed}"
    );

    // The README's walk-through, unchanged.
    let demo = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/demo.sh"
        ))
        .env("MANIFOLD", env!("CARGO_BIN_EXE_manifold"))
        .env("MANIFOLD_ROOT", root.path().join("demo"))
        .output()
        .unwrap();
    let stdout = text(&demo.stdout);
    assert!(
        demo.status.success(),
        "demo.sh failed\nstdout:\n{stdout}\nstderr:\n{}",
        text(&demo.stderr)
    );
    assert!(
        stdout.contains("Hello, my architecture is aarch64"),
        "{stdout}"
    );

    super::six_platform_build();

    // Nothing of the host's was replaced.
    for q in qemus {
        let e = entry(&format!("qemu-{q}"));
        assert_eq!(e.flags, "POF", "{e:?}");
        assert_eq!(
            e.interpreter,
            PathBuf::from(format!("/usr/libexec/qemu-binfmt/{q}-binfmt-P")),
            "{e:?}"
        );
    }
}

#[test]
fn a_build_through_an_f_entry_whose_interpreter_is_gone() {
    testkit::require_root_and_runc();
    // As docker/setup-qemu-action registers from a container: the interpreter path is
    // the container's, the kernel keeps the file open (F), flags POCF.
    let copy = tempfile::tempdir().unwrap();
    let qemu = copy.path().join("qemu-aarch64");
    std::fs::copy("/usr/bin/qemu-aarch64-static", &qemu).unwrap();
    let conf = debian_conf("aarch64");
    let fields: Vec<&str> = conf.trim().split(':').collect();
    let line = format!(
        ":{}:{}:{}:{}:{}:{}:POCF",
        fields[1],
        fields[2],
        fields[3],
        fields[4],
        fields[5],
        qemu.display()
    );
    let _host = HostEntries::replace(&["aarch64"], |_| line.clone());
    drop(copy);
    assert!(!qemu.exists());
    assert_eq!(entry("qemu-aarch64").interpreter, qemu);

    let root = root_with_base(&["arm64"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM {}\nRUN uname -m > /arch && cat /arch > /copy\n",
            super::BASE
        ),
    );
    let out = manifold(
        root.path(),
        &[
            "build",
            "--progress=plain",
            "--platform",
            "linux/arm64",
            "-t",
            "localhost/ci:arm64",
            ctx.path().to_str().unwrap(),
        ],
    );
    ok(&out);
    let images = manifests(root.path(), "localhost/ci:arm64");
    assert_eq!(images.len(), 1);
    let fs = unpack(root.path(), &images[0].1);
    assert_eq!(
        std::fs::read_to_string(fs.path().join("arch")).unwrap(),
        "aarch64\n"
    );
    assert_eq!(
        std::fs::read_to_string(fs.path().join("copy")).unwrap(),
        "aarch64\n"
    );
    // `binfmt ls` says whose entry serves, and that its interpreter is not here.
    let out = manifold(root.path(), &["binfmt", "ls"]);
    ok(&out);
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&format!("by qemu-aarch64 ({}, flags POCF)", qemu.display()))
            && listed.contains("interpreter not on this host"),
        "{listed}"
    );
    assert_eq!(entry("qemu-aarch64").interpreter, qemu, "left as it was");
}
