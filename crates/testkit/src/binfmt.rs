//! Emulators registered for one test, and the host's binfmt_misc state put back
//! afterwards (tests that use it run one at a time: see `.config/nextest.toml`).

use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = "/proc/sys/fs/binfmt_misc";

/// `(cli name, binfmt entry)` of the architectures tests emulate.
const ENTRIES: [(&str, &str); 5] = [
    ("arm64", "qemu-aarch64"),
    ("arm", "qemu-arm"),
    ("ppc64le", "qemu-ppc64le"),
    ("s390x", "qemu-s390x"),
    ("386", "qemu-i386"),
];

/// Registered emulators; dropping it removes what it added.
#[derive(Debug)]
pub struct Guard {
    manifold: PathBuf,
    /// A state root for the manifold commands (binfmt keeps no state there).
    root: tempfile::TempDir,
    added: Vec<&'static str>,
    mounted_before: bool,
}

impl Guard {
    /// Register the emulators of `archs` (manifold's names: `arm64`, `arm`, …) with
    /// `manifold binfmt install`.
    pub fn ensure(manifold: &Path, archs: &[&str]) -> Guard {
        let root = tempfile::tempdir().expect("temp dir");
        let mounted_before = Path::new(DIR).join("register").exists();
        let added: Vec<&'static str> = ENTRIES
            .iter()
            .filter(|(cli, entry)| archs.contains(cli) && !Path::new(DIR).join(entry).exists())
            .map(|(cli, _)| *cli)
            .collect();
        let out = Command::new(manifold)
            .args(["binfmt", "install"])
            .args(archs)
            .env("MANIFOLD_ROOT", root.path())
            .output()
            .expect("run manifold binfmt install");
        assert!(
            out.status.success(),
            "manifold binfmt install {archs:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Guard {
            manifold: manifold.to_owned(),
            root,
            added,
            mounted_before,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.added.is_empty() {
            let _ = Command::new(&self.manifold)
                .args(["binfmt", "uninstall"])
                .args(&self.added)
                .env("MANIFOLD_ROOT", self.root.path())
                .status();
        }
        if !self.mounted_before {
            let _ = Command::new("umount").arg(DIR).status();
        }
    }
}
