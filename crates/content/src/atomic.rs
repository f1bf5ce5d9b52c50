//! The one atomic file replacement every state file of manifold goes through: a
//! temporary file, its bytes, fsync, rename over the destination, fsync of the
//! directory. A reader sees the old file or the new one, never a part; after a crash the
//! new one is there whole or not at all.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Which step of a file operation (a write, a lock) failed, and on what.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}", path.display())]
pub struct FileError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// How to replace a file: where the temporary file goes, whether to fsync, its mode.
#[derive(Debug, Clone, Copy)]
pub struct AtomicWrite<'a> {
    tmp_dir: Option<&'a Path>,
    durable: bool,
    mode: u32,
}

impl Default for AtomicWrite<'_> {
    fn default() -> Self {
        AtomicWrite {
            tmp_dir: None,
            durable: true,
            mode: 0o644,
        }
    }
}

impl<'a> AtomicWrite<'a> {
    /// Write the temporary file in `dir` (on the destination's file system) instead of
    /// beside the destination.
    pub fn tmp_in(mut self, dir: &'a Path) -> Self {
        self.tmp_dir = Some(dir);
        self
    }

    /// Skip both fsyncs: for files whose loss after a crash costs nothing (a torn one
    /// is still never seen: the rename stays atomic).
    pub fn not_durable(mut self) -> Self {
        self.durable = false;
        self
    }

    /// The new file's permission bits (0644 by default).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Replace `path` with the concatenation of `parts`.
    pub fn write(&self, path: &Path, parts: &[&[u8]]) -> Result<(), FileError> {
        let dir = path.parent().ok_or_else(|| FileError {
            op: "replace",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"),
        })?;
        let tmp_dir = self.tmp_dir.unwrap_or(dir);
        let err = |op, path: &Path| {
            let path = path.to_owned();
            move |source| FileError { op, path, source }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(fs::Permissions::from_mode(self.mode))
            .tempfile_in(tmp_dir)
            .map_err(err("create a temporary file in", tmp_dir))?;
        let tmp_path = tmp.path().to_owned();
        parts
            .iter()
            .try_for_each(|p| tmp.write_all(p))
            .and_then(|()| {
                if self.durable {
                    tmp.as_file().sync_all()
                } else {
                    Ok(())
                }
            })
            .map_err(err("write", &tmp_path))?;
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            crate::crash::point(&format!("write:{name}"));
        }
        tmp.persist(path)
            .map_err(|e| err("rename into place", path)(e.error))?;
        if self.durable {
            sync_dir(dir).map_err(err("fsync directory", dir))?;
        }
        Ok(())
    }
}

/// Replace `path` with `bytes`, durably, through a temporary file beside it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    AtomicWrite::default().write(path, &[bytes])
}

/// fsync a directory, so that the names created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_with_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        AtomicWrite::default()
            .mode(0o600)
            .write(&path, &[b"two ", b"parts"])
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two parts");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_separate_temporary_directory_and_errors_name_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let path = dir.path().join("f");
        AtomicWrite::default()
            .tmp_in(&tmp)
            .not_durable()
            .write(&path, &[b"x"])
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        let missing = dir.path().join("no/such/dir/f");
        let e = write_atomic(&missing, b"x").unwrap_err();
        assert_eq!(e.op, "create a temporary file in");
        assert!(
            e.to_string()
                .starts_with("cannot create a temporary file in "),
            "{e}"
        );
    }
}
