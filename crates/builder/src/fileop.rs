//! File ops (`COPY`, `ADD`, `WORKDIR`'s mkdir, heredoc files): actions applied to a
//! writable root filesystem, reading from the trees of the op's inputs.
//!
//! Every path, in the destination and in the sources, is resolved in-root
//! ([`archive::Root`]): a symlink never leads outside the tree it is in. The semantics
//! are BuildKit's file backend (`solver/llbsolver/file`) over fsutil's `copy`:
//!
//! - `Copy`: wildcards per path component (Go `filepath.Match`), `dest/` or several
//!   sources make `dest` a directory, a file copied onto an existing directory goes
//!   inside it, `dir_contents_only` copies what is inside a source directory. Copied
//!   entries keep mode and times (times become `created` when set) and are owned by
//!   `chown`, else by `0:0`. Missing destination parents are created `0755`, owned
//!   like the copied files.
//! - `unpack`: a regular source file that is a tar archive (plain, gzip, bzip2, xz,
//!   zstd; told by its bytes, not its name) is extracted into `dest`, with the tar's
//!   owners and times, as `chrootarchive.Untar` does.
//! - `Mkdir`, `Mkfile`, `Rm`: as BuildKit's `mkdir`, `mkfile` and `rm`.
//!
//! **Invariant**: nothing here resolves a path of a tree outside that tree's
//! [`archive::Root`].

mod copy;
mod glob;
mod ids;
mod unpack;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive::{ArchiveError, CleanPath, Root};
use graph::op::{FileAction, Mkdir, Mkfile, Rm};
use ignore::Matcher;
use rustix::fs::{FileType, Stat};

use ids::Owner;

/// A tree a `COPY` reads from: a snapshot's mounted root, or the build context
/// read in place (with its `.dockerignore` patterns).
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub root: PathBuf,
    /// Paths (relative to `root`) that are not part of the tree.
    pub exclude: Option<Arc<Matcher>>,
    /// Copies keep the entries' uid and gid when no `--chown` is given (a
    /// stage's filesystem, as BuildKit does); else they become 0:0 (the build
    /// context, whose owners are the client's).
    pub keep_owner: bool,
}

/// Why a file action failed. Each names the action (`copy "/a" to "/b/"`, `mkdir
/// "/app"`, …) and the path at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileOpError {
    #[error("input {index} of the file op is not a file tree")]
    NoSource { index: usize },
    /// A source path that does not exist in its tree, or that `.dockerignore` hides.
    #[error(
        "{action}: file not found in the source or excluded by .dockerignore: stat {path}: no such file or directory"
    )]
    NotFound { action: String, path: String },
    /// A wildcard source that matched nothing, without `allow_empty_wildcard`.
    #[error("{action}: no source files were specified: {pattern} matches no file")]
    NoMatch { action: String, pattern: String },
    /// A parent directory that must exist (no `create_dest_path`, `make_parents`).
    #[error("{action}: parent directory of {path} does not exist")]
    NoParent { action: String, path: String },
    /// The path to remove does not exist (without `allow_not_found`).
    #[error("{action}: {path}: no such file or directory")]
    RmNotFound { action: String, path: String },
    /// What is at `path` cannot take what the action puts there.
    #[error("{action}: {path}: {reason}")]
    Conflict {
        action: String,
        path: String,
        reason: &'static str,
    },
    /// `chown`'s user or group is not in the destination's `/etc/passwd` or
    /// `/etc/group`, or is malformed.
    #[error("{action}: unable to find {what} {name}: no matching entries in {file}")]
    UnknownId {
        action: String,
        what: &'static str,
        name: String,
        file: &'static str,
    },
    /// The destination's `/etc/passwd` or `/etc/group` could not be read.
    #[error("{action}: cannot read {file} to resolve {spec}")]
    IdFile {
        action: String,
        spec: String,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A symbolic `chmod` that does not parse.
    #[error("{action}: invalid chmod {mode:?}: {reason}")]
    BadChmod {
        action: String,
        mode: String,
        reason: &'static str,
    },
    /// A wildcard pattern that does not parse (Go's `filepath.ErrBadPattern`).
    #[error("{action}: syntax error in pattern {pattern:?}")]
    BadPattern { action: String, pattern: String },
    /// A source tree deeper than the copier descends.
    #[error("{action}: {path}: directory tree deeper than {limit} levels")]
    TooDeep {
        action: String,
        path: String,
        limit: usize,
    },
    /// A filesystem operation in the source or destination failed.
    #[error("{action}")]
    Fs {
        action: String,
        #[source]
        source: Box<ArchiveError>,
    },
    /// Reading a source file or writing its copy failed.
    #[error("{action}: copy {path}")]
    Io {
        action: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A source archive could not be extracted.
    #[error("{action}: unpack {path}")]
    Unpack {
        action: String,
        path: String,
        #[source]
        source: Box<ArchiveError>,
    },
}

/// Apply `actions` in order to the tree at `dest_root`. `inputs[i]` is the tree of
/// the vertex's input `i` (`None` for inputs that are not read).
pub fn apply(
    dest_root: &Path,
    actions: &[FileAction],
    inputs: &[Option<SourceTree>],
) -> Result<(), FileOpError> {
    let dest = Root::open(dest_root).map_err(|source| FileOpError::Fs {
        action: "open the destination".to_owned(),
        source: Box::new(source),
    })?;
    for action in actions {
        match action {
            FileAction::Copy(c) => {
                let src = inputs
                    .get(c.src)
                    .and_then(Option::as_ref)
                    .ok_or(FileOpError::NoSource { index: c.src })?;
                copy::copy(&dest, src, c)?;
            }
            FileAction::Mkdir(m) => mkdir(&dest, m)?,
            FileAction::Mkfile(m) => mkfile(&dest, m)?,
            FileAction::Rm(r) => rm(&dest, r)?,
            _ => {
                return Err(FileOpError::Conflict {
                    action: "apply the file op".to_owned(),
                    path: String::new(),
                    reason: "unsupported file action",
                });
            }
        }
    }
    Ok(())
}

/// One action's name for messages, and its destination root.
struct Ctx<'a> {
    action: String,
    root: &'a Root,
}

impl Ctx<'_> {
    fn fs(&self, source: ArchiveError) -> FileOpError {
        FileOpError::Fs {
            action: self.action.clone(),
            source: Box::new(source),
        }
    }

    fn clean(&self, raw: &str) -> Result<CleanPath, FileOpError> {
        CleanPath::new(raw.as_bytes()).map_err(|e| self.fs(e))
    }

    fn conflict(&self, p: &CleanPath, reason: &'static str) -> FileOpError {
        FileOpError::Conflict {
            action: self.action.clone(),
            path: show(p),
            reason,
        }
    }

    fn lstat(&self, p: &CleanPath) -> Result<Option<Stat>, FileOpError> {
        self.root.lstat(p).map_err(|e| self.fs(e))
    }

    /// Whether `p` is a directory, following a symlink at `p` in-root.
    fn is_dir(&self, p: &CleanPath) -> Result<bool, FileOpError> {
        match self.lstat(p)? {
            None => Ok(false),
            Some(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Ok(true),
                FileType::Symlink => Ok(self.root.open_dir(p).is_ok()),
                _ => Ok(false),
            },
        }
    }

    /// `mkdir -p p`: each missing directory is created with `mode`, owned by
    /// `owner` and given `mtime` (as fsutil's `MkdirAll`); existing ones are kept.
    fn mkdir_parents(
        &self,
        p: &CleanPath,
        mode: u32,
        owner: Owner,
        mtime: Option<i64>,
    ) -> Result<(), FileOpError> {
        let mut created = Vec::new();
        for depth in 1..=p.depth() {
            let pre = p.prefix(depth);
            if self.is_dir(&pre)? {
                continue;
            }
            match self.lstat(&pre)? {
                Some(st) if FileType::from_raw_mode(st.st_mode) != FileType::Symlink => {
                    return Err(self.conflict(&pre, "not a directory"));
                }
                _ => {}
            }
            // A dangling symlink gets its target created in-root.
            self.root.mkdir_all(&pre).map_err(|e| self.fs(e))?;
            let leaf = self.root.open_dir(&pre).map_err(|e| self.fs(e))?;
            leaf.set_owner(owner.uid, owner.gid)
                .map_err(|e| self.fs(e))?;
            leaf.set_mode(mode).map_err(|e| self.fs(e))?;
            created.push(pre);
        }
        // Children change their parent's mtime: set times deepest first.
        for pre in created.iter().rev() {
            let leaf = self.root.open_dir(pre).map_err(|e| self.fs(e))?;
            let (secs, nanos) = match mtime {
                Some(t) => (t, 0),
                None => now(),
            };
            leaf.set_mtime(secs, nanos).map_err(|e| self.fs(e))?;
        }
        Ok(())
    }
}

/// `/a/b` for messages.
fn show(p: &CleanPath) -> String {
    format!(
        "/{}",
        String::from_utf8_lossy(&p.to_bytes()).trim_start_matches('.')
    )
}

fn now() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}

/// Symlinks followed while resolving one path, as the kernel allows.
const MAX_LINKS: usize = 40;

/// `p` with every symlink on the way resolved in-root (the last component only when
/// `follow_last`), as a lexical path that names the same inode from `root`. A
/// missing component ends resolution: the rest is appended as is.
fn canonical(root: &Root, p: &CleanPath, follow_last: bool) -> Result<CleanPath, ArchiveError> {
    let mut pending: Vec<Vec<u8>> = p.components().map(<[u8]>::to_vec).collect();
    pending.reverse();
    let mut done = CleanPath::default();
    let mut links = 0;
    while let Some(comp) = pending.pop() {
        let next = done.join(&comp);
        let last = pending.is_empty();
        let Some(st) = root.lstat(&next)? else {
            // Missing: nothing below can be a symlink either.
            done = next;
            while let Some(c) = pending.pop() {
                done = done.join(&c);
            }
            break;
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink || (last && !follow_last) {
            done = next;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(ArchiveError::Io {
                op: "resolve",
                path: root.path().join(next.to_path_buf()),
                source: rustix::io::Errno::LOOP.into(),
            });
        }
        let target = root.read_link(&next)?;
        if target.starts_with(b"/") {
            done = CleanPath::default();
        }
        for c in target.split(|b| *b == b'/').rev() {
            match c {
                b"" | b"." => {}
                c => pending.push(c.to_vec()),
            }
        }
        // `..` is taken lexically against the resolved prefix, which holds no
        // symlink, so it names the real parent.
        while pending.last().is_some_and(|c| c == b"..") {
            pending.pop();
            done = done.parent();
        }
    }
    Ok(done)
}

/// Resolve a destination path given by an action: parents followed in-root, and the
/// leaf too when `follow_last` (as BuildKit's `fs.RootPath`).
fn resolve_dest(ctx: &Ctx<'_>, raw: &str, follow_last: bool) -> Result<CleanPath, FileOpError> {
    let p = ctx.clean(raw)?;
    canonical(ctx.root, &p, follow_last).map_err(|e| ctx.fs(e))
}

fn mkdir(root: &Root, m: &Mkdir) -> Result<(), FileOpError> {
    let ctx = Ctx {
        action: format!("mkdir {:?}", m.path),
        root,
    };
    let owner = ids::owner(&ctx, m.chown.as_deref())?;
    let p = resolve_dest(&ctx, &m.path, true)?;
    if m.make_parents {
        return ctx.mkdir_parents(&p, m.mode & 0o7777, owner, m.created);
    }
    if p.is_root() || ctx.lstat(&p)?.is_some() {
        return Ok(());
    }
    if !ctx.is_dir(&p.parent())? {
        return Err(FileOpError::NoParent {
            action: ctx.action.clone(),
            path: show(&p),
        });
    }
    ctx.mkdir_parents(&p, m.mode & 0o7777, owner, m.created)
}

fn mkfile(root: &Root, m: &Mkfile) -> Result<(), FileOpError> {
    let ctx = Ctx {
        action: format!("mkfile {:?}", m.path),
        root,
    };
    let owner = ids::owner(&ctx, m.chown.as_deref())?;
    let p = resolve_dest(&ctx, &m.path, true)?;
    if p.is_root() || ctx.is_dir(&p)? {
        return Err(ctx.conflict(&p, "is a directory"));
    }
    if !ctx.is_dir(&p.parent())? {
        return Err(FileOpError::NoParent {
            action: ctx.action.clone(),
            path: show(&p),
        });
    }
    let (file, leaf) = root.create_file(&p).map_err(|e| ctx.fs(e))?;
    write_all(&ctx, &p, file, m.data.as_bytes())?;
    leaf.set_owner(owner.uid, owner.gid)
        .map_err(|e| ctx.fs(e))?;
    leaf.set_mode(m.mode & 0o7777).map_err(|e| ctx.fs(e))?;
    if let Some(t) = m.created {
        leaf.set_mtime(t, 0).map_err(|e| ctx.fs(e))?;
    }
    Ok(())
}

fn write_all(ctx: &Ctx<'_>, p: &CleanPath, mut file: File, data: &[u8]) -> Result<(), FileOpError> {
    file.write_all(data).map_err(|source| FileOpError::Io {
        action: ctx.action.clone(),
        path: show(p),
        source,
    })
}

fn rm(root: &Root, r: &Rm) -> Result<(), FileOpError> {
    let ctx = Ctx {
        action: format!("rm {:?}", r.path),
        root,
    };
    let p = ctx.clean(&r.path)?;
    let targets = if r.allow_wildcard {
        glob::resolve(&ctx, root, &p, None)?
    } else {
        vec![p]
    };
    if targets.is_empty() && !r.allow_not_found {
        return Err(FileOpError::RmNotFound {
            action: ctx.action.clone(),
            path: r.path.clone(),
        });
    }
    for t in targets {
        if t.is_root() {
            return Err(ctx.conflict(&t, "the root directory cannot be removed"));
        }
        // Parents are followed in-root; the leaf itself is removed, not followed.
        let t = canonical(root, &t.parent(), true)
            .map_err(|e| ctx.fs(e))?
            .join(t.file_name().expect("not the root"));
        let removed = root.remove_all(&t).map_err(|e| ctx.fs(e))?;
        if !removed && !r.allow_not_found {
            return Err(FileOpError::RmNotFound {
                action: ctx.action.clone(),
                path: show(&t),
            });
        }
    }
    Ok(())
}
