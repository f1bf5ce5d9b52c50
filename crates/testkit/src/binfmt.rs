//! Emulators registered for one test, and the host's binfmt_misc state put back
//! afterwards (tests that use it run one at a time: see `.config/nextest.toml`).

use std::path::Path;
use std::process::Command;

const DIR: &str = "/proc/sys/fs/binfmt_misc";

/// The names of the registered entries (none when binfmt_misc is not mounted).
fn entry_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(DIR) else {
        return Vec::new();
    };
    dir.filter_map(|d| d.ok())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "register" && n != "status")
        .collect()
}

/// Registered emulators; dropping it removes the entries it added. Entries that were
/// there before (the distribution's, a CI system's, an earlier test's) serve the tests
/// as they are and stay.
#[derive(Debug)]
pub struct Guard {
    /// A state root for the manifold commands (binfmt keeps no state there).
    _root: tempfile::TempDir,
    added: Vec<String>,
    mounted_before: bool,
}

impl Guard {
    /// Make the emulators of `archs` (manifold's names: `arm64`, `arm`, …) available
    /// with `manifold binfmt install`, which leaves working entries as they are.
    pub fn ensure(manifold: &Path, archs: &[&str]) -> Guard {
        let root = tempfile::tempdir().expect("temp dir");
        let mounted_before = Path::new(DIR).join("register").exists();
        let before = entry_names();
        let out = Command::new(manifold)
            .args(["binfmt", "install"])
            .args(archs)
            .env("MANIFOLD_ROOT", root.path())
            .output()
            .expect("run manifold binfmt install");
        let added = entry_names()
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        let guard = Guard {
            _root: root,
            added,
            mounted_before,
        };
        assert!(
            out.status.success(),
            "manifold binfmt install {archs:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for name in &self.added {
            let _ = std::fs::write(Path::new(DIR).join(name), "-1");
        }
        if !self.mounted_before {
            let _ = Command::new("umount").arg(DIR).status();
        }
    }
}
