//! Context sync: the client lists its context (paths, types, modes, times, content
//! digests from its persistent index); the daemon keeps a copy per client directory,
//! asks only for contents it lacks, and updates its copy in place, so a rebuild
//! after one edit sends one file.
//!
//! The daemon trusts nothing in a manifest: paths must be relative and clean, unique,
//! and never below a symlink; digests must be well formed; each file's bytes must
//! hash to its digest and be no longer than its declared size.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci::{Digest, Hasher};
use tokio::io::AsyncRead;

use crate::protocol::{ContextManifest, FileKind, FileMeta};
use crate::wire::{self, Frame};

/// Why a context could not be listed, checked or received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error("context {context}: invalid path {path:?}: {reason}")]
    BadPath {
        context: String,
        path: String,
        reason: &'static str,
    },
    #[error("context {context}: invalid digest {digest:?} for {path:?}")]
    BadDigest {
        context: String,
        path: String,
        digest: String,
    },
    #[error("context file {digest}: {reason}")]
    BadContent { digest: String, reason: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Context(#[from] worker::context::ContextError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SyncError + '_ {
    move |source| SyncError::Io {
        path: path.to_owned(),
        source,
    }
}

/// List `dir` as context `name` (client side), with `exclude` patterns applied.
/// `state` holds the client's persistent index, so unchanged files are not read.
pub fn manifest(
    name: &str,
    dir: &Path,
    exclude: Option<&ignore::Matcher>,
    state: &Path,
) -> Result<ContextManifest, SyncError> {
    let mut index = worker::context::Index::open(state, dir);
    let ctx = worker::context::scan(dir, exclude, &mut index)?;
    // A read-only state root only costs the next build a re-hash.
    let _ = index.save();
    let abs = std::path::absolute(dir).map_err(io(dir))?;
    let mut entries = Vec::with_capacity(ctx.entries.len());
    for (path, e) in &ctx.entries {
        let kind = match &e.kind {
            worker::context::Kind::File { digest, size } => FileKind::File {
                digest: digest.to_string(),
                size: *size,
            },
            worker::context::Kind::Dir => FileKind::Dir,
            worker::context::Kind::Symlink { target } => FileKind::Symlink {
                target: target.clone(),
            },
            // Sockets and devices are not sent.
            worker::context::Kind::Other => continue,
        };
        let p = dir.join(path);
        let md = fs::symlink_metadata(&p).map_err(io(&p))?;
        entries.push(FileMeta {
            path: path.clone(),
            mode: e.mode,
            mtime: (md.mtime(), md.mtime_nsec() as u32),
            kind,
        });
    }
    Ok(ContextManifest {
        name: name.to_owned(),
        id: Digest::sha256(abs.as_os_str().as_encoded_bytes())
            .hex()
            .to_owned(),
        entries,
    })
}

/// Check a manifest a client sent; returns its entries by path.
pub fn validate(m: &ContextManifest) -> Result<BTreeMap<String, FileMeta>, SyncError> {
    let bad = |path: &str, reason| SyncError::BadPath {
        context: m.name.clone(),
        path: path.to_owned(),
        reason,
    };
    if m.id.len() != 64 || !m.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(&m.id, "the context id is not 64 hex digits"));
    }
    let mut out = BTreeMap::new();
    for e in &m.entries {
        let p = e.path.as_str();
        if p.is_empty() || p.starts_with('/') || p.contains('\0') || p.contains('\\') {
            return Err(bad(p, "not a relative path"));
        }
        if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(bad(p, "not a clean path (empty, `.` or `..` component)"));
        }
        if let FileKind::File { digest, .. } = &e.kind
            && digest.parse::<Digest>().is_err()
        {
            return Err(SyncError::BadDigest {
                context: m.name.clone(),
                path: p.to_owned(),
                digest: digest.clone(),
            });
        }
        if out.insert(p.to_owned(), e.clone()).is_some() {
            return Err(bad(p, "listed twice"));
        }
    }
    for p in out.keys() {
        let mut at = String::new();
        for c in p
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, rest)| rest)
        {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(c);
            match out.get(&at).map(|e| &e.kind) {
                Some(FileKind::Dir) => {}
                Some(_) => return Err(bad(p, "below something that is not a directory")),
                None => return Err(bad(p, "its parent directory is not listed")),
            }
        }
    }
    Ok(out)
}

/// The daemon's copies of client contexts and the file contents it has.
#[derive(Debug, Clone)]
pub struct Contexts {
    root: PathBuf,
}

impl Contexts {
    pub fn new(root: PathBuf) -> Contexts {
        Contexts { root }
    }

    fn blob(&self, digest: &Digest) -> PathBuf {
        self.root.join("files").join(digest.hex())
    }

    /// Contents of `entries` the daemon lacks, each once, in path order.
    pub fn missing(&self, entries: &BTreeMap<String, FileMeta>) -> Vec<(Digest, u64)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for e in entries.values() {
            if let FileKind::File { digest, size } = &e.kind {
                let d: Digest = digest.parse().expect("validated");
                if !self.blob(&d).is_file() && seen.insert(d.clone()) {
                    out.push((d, *size));
                }
            }
        }
        out
    }

    /// Receive `wanted` contents from `r` (data frames, one end frame per file).
    pub async fn receive<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        wanted: &[(Digest, u64)],
    ) -> Result<(), SyncError> {
        let dir = self.root.join("files");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        for (digest, size) in wanted {
            let bad = |reason: String| SyncError::BadContent {
                digest: digest.to_string(),
                reason,
            };
            let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io(&dir))?;
            let mut h = Hasher::new(digest.algorithm());
            let mut got = 0u64;
            loop {
                match wire::read_frame(r).await.map_err(|e| bad(e.to_string()))? {
                    Some(Frame::Data(d)) => {
                        got += d.len() as u64;
                        if got > *size {
                            return Err(bad(format!("more than the {size} bytes declared")));
                        }
                        h.update(&d);
                        tmp.write_all(&d).map_err(io(tmp.path()))?;
                    }
                    Some(Frame::End) => break,
                    Some(Frame::Json(_)) => return Err(bad("a message inside file data".into())),
                    None => return Err(bad("the client closed the connection".into())),
                }
            }
            let actual = h.finish();
            if &actual != digest || got != *size {
                return Err(bad(format!("received {got} bytes hashing to {actual}")));
            }
            tmp.persist(self.blob(digest)).map_err(|e| SyncError::Io {
                path: self.blob(digest),
                source: e.error,
            })?;
        }
        Ok(())
    }

    /// Bring the daemon's copy of context `m` up to date; returns its directory.
    /// Entries unchanged since the last build are left alone.
    pub fn materialize(
        &self,
        m: &ContextManifest,
        entries: &BTreeMap<String, FileMeta>,
    ) -> Result<PathBuf, SyncError> {
        let dir = self.root.join("contexts").join(&m.id);
        let state = self.root.join("contexts").join(format!("{}.json", m.id));
        let old: BTreeMap<String, FileMeta> = fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|_| dir.is_dir())
            .unwrap_or_default();
        if old.is_empty() {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        // Removed or changed entries go first, deepest first.
        for (p, o) in old.iter().rev() {
            let keep = entries.get(p).is_some_and(|n| same_kind(n, o));
            if !keep {
                remove(&dir.join(p))?;
            }
        }
        for (p, e) in entries {
            let path = dir.join(p);
            let unchanged = old.get(p).is_some_and(|o| same_kind(o, e));
            if !unchanged {
                match &e.kind {
                    FileKind::Dir => fs::create_dir(&path).map_err(io(&path))?,
                    FileKind::Symlink { target } => {
                        std::os::unix::fs::symlink(target, &path).map_err(io(&path))?;
                    }
                    FileKind::File { digest, .. } => {
                        let d: Digest = digest.parse().expect("validated");
                        fs::copy(self.blob(&d), &path).map_err(io(&path))?;
                    }
                }
            }
            if !matches!(e.kind, FileKind::Symlink { .. }) {
                fs::set_permissions(&path, fs::Permissions::from_mode(e.mode & 0o7777))
                    .map_err(io(&path))?;
            }
        }
        // Times last, deepest first, so creating children does not move them.
        for (p, e) in entries.iter().rev() {
            let path = dir.join(p);
            let t = std::time::UNIX_EPOCH
                + std::time::Duration::new(e.mtime.0.max(0) as u64, e.mtime.1.min(999_999_999));
            let times = fs::FileTimes::new().set_modified(t).set_accessed(t);
            if !matches!(e.kind, FileKind::Symlink { .. }) {
                let f = fs::File::open(&path).map_err(io(&path))?;
                f.set_times(times).map_err(io(&path))?;
            }
        }
        let tmp = state.with_extension("tmp");
        fs::write(
            &tmp,
            serde_json::to_vec(entries).expect("entries serialise"),
        )
        .map_err(io(&tmp))?;
        fs::rename(&tmp, &state).map_err(io(&state))?;
        Ok(dir)
    }
}

/// Whether `a` can stay in place for `b` (same type and content; mode and time are
/// set again anyway).
fn same_kind(a: &FileMeta, b: &FileMeta) -> bool {
    a.kind == b.kind
}

fn remove(path: &Path) -> Result<(), SyncError> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path).map_err(io(path)),
        Ok(_) => fs::remove_file(path).map_err(io(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str, kind: FileKind) -> FileMeta {
        FileMeta {
            path: path.into(),
            mode: 0o644,
            mtime: (0, 0),
            kind,
        }
    }

    fn m(entries: Vec<FileMeta>) -> ContextManifest {
        ContextManifest {
            name: "context".into(),
            id: "a".repeat(64),
            entries,
        }
    }

    fn file(path: &str) -> FileMeta {
        meta(
            path,
            FileKind::File {
                digest: Digest::sha256(b"x").to_string(),
                size: 1,
            },
        )
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let dir = || meta("d", FileKind::Dir);
        let link = || meta("l", FileKind::Symlink { target: "/".into() });
        for bad in [
            vec![file("..")],
            vec![file("../x")],
            vec![file("/abs")],
            vec![file("a//b")],
            vec![file("./a")],
            vec![file("a\0b")],
            vec![file("x"), file("x")],
            vec![link(), file("l/child")],
            vec![file("nodir/child")],
            vec![file("f"), file("f/child")],
            vec![meta(
                "bad",
                FileKind::File {
                    digest: "sha256:zz".into(),
                    size: 1,
                },
            )],
        ] {
            let name = format!("{bad:?}");
            assert!(validate(&m(bad)).is_err(), "{name}");
        }
        assert!(validate(&m(vec![dir(), file("d/f"), link()])).is_ok());
        let mut bad_id = m(vec![]);
        bad_id.id = "../../etc".into();
        assert!(validate(&bad_id).is_err());
    }
}
