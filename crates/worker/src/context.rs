//! The build context, read in place: every included path with its type, mode and
//! content digest, and one digest for the whole context.
//!
//! A persistent index per context directory maps (size, mtime, ctime, inode) to the
//! file's sha256, so an unchanged context is re-checked without reading a byte; a
//! file whose ctime moved (any write, even one that restores size and mtime) is
//! hashed again. Symlinks are recorded as symlinks with their target and never
//! followed. `.dockerignore` patterns decide what is included.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ignore::Matcher;
use oci::{Digest, Hasher};
use serde::{Deserialize, Serialize};

/// Why the context could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    #[error("cannot read build context path {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("build context path {path} is not valid UTF-8")]
    NotUtf8 { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a context path is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    File {
        digest: Digest,
        size: u64,
    },
    Dir,
    Symlink {
        target: String,
    },
    /// Sockets, FIFOs, devices: recorded, never opened.
    Other,
}

/// One included path (relative, `/`-separated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
}

/// The scanned context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub entries: BTreeMap<String, Entry>,
    /// Digest of every path, type, mode and content (not of times or owners).
    pub digest: Digest,
    /// Files read and hashed in this scan (the rest came from the index).
    pub hashed: usize,
}

impl Context {
    /// Paths added, removed or changed between `self` and `newer`, sorted.
    pub fn changed(&self, newer: &Context) -> Vec<String> {
        let mut out: Vec<String> = newer
            .entries
            .iter()
            .filter(|(p, e)| self.entries.get(*p) != Some(e))
            .map(|(p, _)| p.clone())
            .collect();
        out.extend(
            self.entries
                .keys()
                .filter(|p| !newer.entries.contains_key(*p))
                .cloned(),
        );
        out.sort();
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    digest: Digest,
}

/// The persistent path → stamp index of one context directory.
#[derive(Debug)]
pub struct Index {
    file: PathBuf,
    stamps: HashMap<String, Stamp>,
}

impl Index {
    /// The index of `context` kept under `state_dir`; a missing or unreadable index
    /// (e.g. after a power loss) starts empty.
    pub fn open(state_dir: &Path, context: &Path) -> Index {
        let abs = std::path::absolute(context).unwrap_or_else(|_| context.to_owned());
        let name = Digest::sha256(abs.as_os_str().as_encoded_bytes());
        let file = state_dir.join(format!("{}.json", name.hex()));
        let stamps = fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Index { file, stamps }
    }

    /// The content digest of every file the index knows, by relative path.
    pub fn files(&self) -> BTreeMap<String, Digest> {
        self.stamps
            .iter()
            .map(|(p, s)| (p.clone(), s.digest.clone()))
            .collect()
    }

    /// Write the index atomically.
    pub fn save(&self) -> Result<(), ContextError> {
        let dir = self.file.parent().expect("index files live in a directory");
        fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = self.file.with_extension("tmp");
        let bytes = serde_json::to_vec(&self.stamps).expect("stamps serialise");
        fs::write(&tmp, bytes).map_err(io(&tmp))?;
        fs::rename(&tmp, &self.file).map_err(io(&self.file))
    }
}

fn nanos(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

/// Scan `dir` with the ignore `matcher`, reusing and updating `index`.
pub fn scan(
    dir: &Path,
    matcher: Option<&Matcher>,
    index: &mut Index,
) -> Result<Context, ContextError> {
    let mut entries = BTreeMap::new();
    let mut to_hash: Vec<(String, PathBuf)> = Vec::new();
    let mut stack = vec![(dir.to_owned(), String::new())];
    let mut seen = HashMap::new();
    while let Some((abs, rel)) = stack.pop() {
        let mut children: Vec<_> = fs::read_dir(&abs)
            .map_err(io(&abs))?
            .collect::<Result<_, _>>()
            .map_err(io(&abs))?;
        children.sort_by_key(fs::DirEntry::file_name);
        for child in children {
            let path = child.path();
            let name = child
                .file_name()
                .into_string()
                .map_err(|_| ContextError::NotUtf8 { path: path.clone() })?;
            let rel_child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
            let excluded = matcher.is_some_and(|m| m.is_excluded(&rel_child));
            if meta.is_dir() {
                if !excluded || matcher.is_some_and(|m| m.may_reinclude_under(&rel_child)) {
                    stack.push((path.clone(), rel_child.clone()));
                }
                if excluded {
                    continue;
                }
            } else if excluded {
                continue;
            }
            let mode = meta.permissions().mode() & 0o7777;
            let kind = if meta.is_dir() {
                Kind::Dir
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(io(&path))?;
                Kind::Symlink {
                    target: target.to_string_lossy().into_owned(),
                }
            } else if meta.is_file() {
                let stamp = Stamp {
                    size: meta.len(),
                    mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
                    ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
                    ino: meta.ino(),
                    dev: meta.dev(),
                    digest: Digest::sha256(b""),
                };
                let digest = match index.stamps.get(&rel_child) {
                    Some(old)
                        if Stamp {
                            digest: old.digest.clone(),
                            ..stamp.clone()
                        } == *old =>
                    {
                        old.digest.clone()
                    }
                    _ => {
                        // Hashed below, in parallel; the empty digest holds its place.
                        to_hash.push((rel_child.clone(), path.clone()));
                        Digest::sha256(b"")
                    }
                };
                seen.insert(
                    rel_child.clone(),
                    Stamp {
                        digest: digest.clone(),
                        ..stamp
                    },
                );
                Kind::File {
                    digest,
                    size: meta.len(),
                }
            } else {
                Kind::Other
            };
            entries.insert(rel_child, Entry { kind, mode });
        }
    }
    let hashed = to_hash.len();
    for ((rel, _), digest) in to_hash.iter().zip(hash_files(&to_hash)?) {
        if let Some(Entry {
            kind: Kind::File { digest: d, .. },
            ..
        }) = entries.get_mut(rel)
        {
            *d = digest.clone();
        }
        if let Some(stamp) = seen.get_mut(rel) {
            stamp.digest = digest;
        }
    }
    index.stamps = seen;
    let digest = context_digest(&entries);
    Ok(Context {
        entries,
        digest,
        hashed,
    })
}

/// The digests of `files`, in order, hashed on up to four threads (each with one
/// read buffer for all its files). The first failure in `files` order is returned.
fn hash_files(files: &[(String, PathBuf)]) -> Result<Vec<Digest>, ContextError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 4)
        .min(files.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Digest, ContextError>>> = Vec::new();
    results.resize_with(files.len(), || None);
    let done: Vec<Vec<(usize, Result<Digest, ContextError>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut buf = vec![0u8; 1 << 20];
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((_, path)) = files.get(i) else {
                            return out;
                        };
                        out.push((i, hash_file(path, &mut buf)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for (i, r) in done.into_iter().flatten() {
        results[i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.expect("every file was hashed"))
        .collect()
}

fn hash_file(path: &Path, buf: &mut [u8]) -> Result<Digest, ContextError> {
    let mut f = fs::File::open(path).map_err(io(path))?;
    let mut h = Hasher::new(oci::Algorithm::Sha256);
    loop {
        let n = f.read(buf).map_err(io(path))?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

fn context_digest(entries: &BTreeMap<String, Entry>) -> Digest {
    let mut h = Hasher::new(oci::Algorithm::Sha256);
    for (path, e) in entries {
        let what = match &e.kind {
            Kind::File { digest, .. } => format!("file {digest}"),
            Kind::Dir => "dir".to_owned(),
            Kind::Symlink { target } => format!("symlink {target}"),
            Kind::Other => "other".to_owned(),
        };
        h.update(format!("{path}\0{:o}\0{what}\n", e.mode).as_bytes());
    }
    h.finish()
}
