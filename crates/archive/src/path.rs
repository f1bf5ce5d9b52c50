//! Lexical cleaning of untrusted paths into in-root component lists.
//!
//! A path is split on `/`; empty and `.` components vanish and `..` pops the previous
//! component, stopping at the root (chroot semantics: `../../etc/x` is `etc/x`). The
//! result never holds `.`, `..`, empty components, NUL bytes or components longer than
//! `NAME_MAX`. Symlinks met later during resolution are clamped by the resolver.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{ArchiveError, show};

/// Longest component Linux filesystems accept.
pub const NAME_MAX: usize = 255;

/// A path relative to a root, lexically cleaned. Empty means the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CleanPath {
    comps: Vec<Vec<u8>>,
}

impl CleanPath {
    /// Clean `raw` (bytes as found in a tar header or given by a caller).
    pub fn new(raw: &[u8]) -> Result<CleanPath, ArchiveError> {
        if raw.contains(&0) {
            return Err(invalid(raw, "contains a NUL byte"));
        }
        let mut comps: Vec<Vec<u8>> = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    comps.pop();
                }
                c if c.len() > NAME_MAX => {
                    return Err(invalid(raw, "a component is longer than 255 bytes"));
                }
                c => comps.push(c.to_vec()),
            }
        }
        Ok(CleanPath { comps })
    }

    /// Clean a `Path` given by a caller.
    pub fn from_path(p: &Path) -> Result<CleanPath, ArchiveError> {
        CleanPath::new(p.as_os_str().as_bytes())
    }

    pub fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    pub fn depth(&self) -> usize {
        self.comps.len()
    }

    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.comps.iter().map(Vec::as_slice)
    }

    /// The last component, `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        self.comps.last().map(Vec::as_slice)
    }

    /// The parent path; the root's parent is the root.
    pub fn parent(&self) -> CleanPath {
        let mut comps = self.comps.clone();
        comps.pop();
        CleanPath { comps }
    }

    /// The first `n` components.
    pub fn prefix(&self, n: usize) -> CleanPath {
        CleanPath {
            comps: self.comps[..n.min(self.comps.len())].to_vec(),
        }
    }

    /// This path with one more component (which must be a plain name).
    pub fn join(&self, name: &[u8]) -> CleanPath {
        let mut comps = self.comps.clone();
        comps.push(name.to_vec());
        CleanPath { comps }
    }

    /// `a/b/c`, or `.` for the root: the form passed to `openat2`.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.comps.is_empty() {
            return b".".to_vec();
        }
        self.comps.join(&b'/')
    }

    /// The relative path (`.` for the root).
    pub fn to_path_buf(&self) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(&self.to_bytes()))
    }

    /// Display form for messages.
    pub fn display(&self) -> String {
        show(&self.to_bytes())
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &CleanPath) -> bool {
        self.comps.starts_with(&other.comps)
    }
}

fn invalid(raw: &[u8], reason: &'static str) -> ArchiveError {
    ArchiveError::InvalidPath {
        path: show(raw),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        CleanPath::new(s.as_bytes()).unwrap().display()
    }

    #[test]
    fn dotdot_is_clamped_at_the_root() {
        assert_eq!(clean("../../etc/x"), "etc/x");
        assert_eq!(clean("/etc/x"), "etc/x");
        assert_eq!(clean("a/../../x"), "x");
        assert_eq!(clean("./a//b/./c/"), "a/b/c");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("/"), ".");
        assert!(CleanPath::new(b"..").unwrap().is_root());
    }

    #[test]
    fn nul_and_long_components_are_refused() {
        let err = CleanPath::new(b"a\0b").unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        let long = format!("d/{}", "x".repeat(256));
        let err = CleanPath::new(long.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("255"), "{err}");
        assert!(CleanPath::new("x".repeat(255).as_bytes()).is_ok());
    }
}
