//! In-root path resolution with chroot semantics, and fd-relative operations.
//!
//! A [`Root`] holds an `O_PATH` fd of a directory. Every path is first cleaned
//! lexically ([`CleanPath`]), then resolved from that fd with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: absolute symlinks and `..` met
//! on the way stay inside the root. Where `openat2` is unavailable an `O_PATH` walk
//! does the same one component at a time, keeping its own stack of directory fds so
//! `..` never asks the kernel for a parent.
//!
//! Operations resolve the *parent* (following symlinks, clamped) and act on the leaf
//! name relative to that pinned parent fd without following it. Metadata is changed
//! through an fd of the leaf ([`Leaf`]), never through a path resolved again. Each
//! operation resolves from the root afresh, so a directory swapped for a symlink by a
//! concurrent process only ever redirects within the root.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{
    self as rfs, AtFlags, CWD, Dir, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec,
    Timestamps,
};
use rustix::io::Errno;

use crate::error::ArchiveError;
use crate::path::CleanPath;

/// How a [`Root`] resolves paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResolveMode {
    /// `openat2` when the kernel has it, else the `O_PATH` walk.
    #[default]
    Auto,
    /// Only `openat2(RESOLVE_IN_ROOT)`; opening the root fails without it.
    Openat2,
    /// Only the userspace `O_PATH` walk (tests use it to cover the fallback).
    Walk,
}

/// Special files [`Root::mknod`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// A directory that untrusted paths are resolved inside of.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    openat2: bool,
}

/// Symlinks followed in one resolution before `ELOOP`, as the kernel allows.
const MAX_SYMLINKS: u32 = 40;
/// Deepest directory tree [`Root::remove_all`] descends into.
const MAX_REMOVE_DEPTH: usize = 4096;

impl Root {
    /// Open `path` (trusted: it is followed normally) as a root.
    pub fn open(path: &Path) -> Result<Root, ArchiveError> {
        Root::open_with(path, ResolveMode::Auto)
    }

    /// Open `path` as a root with an explicit resolver.
    pub fn open_with(path: &Path, mode: ResolveMode) -> Result<Root, ArchiveError> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ArchiveError::io("open root", path, e.into()))?;
        let openat2 = match mode {
            ResolveMode::Walk => false,
            ResolveMode::Auto => probe_openat2(&fd),
            ResolveMode::Openat2 => {
                if !probe_openat2(&fd) {
                    let e = io::Error::other("openat2(RESOLVE_IN_ROOT) is unavailable");
                    return Err(ArchiveError::io("open root", path, e));
                }
                true
            }
        };
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            openat2,
        })
    }

    /// The path the root was opened at (for messages only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether resolution uses `openat2` (else the `O_PATH` walk).
    pub fn uses_openat2(&self) -> bool {
        self.openat2
    }

    fn err(&self, op: &'static str, p: &CleanPath, e: impl Into<io::Error>) -> ArchiveError {
        ArchiveError::io(op, self.path.join(p.to_path_buf()), e.into())
    }

    /// Resolve `p` in-root and open it with `flags` (plus `O_CLOEXEC`).
    fn resolve(&self, p: &CleanPath, flags: OFlags, follow_last: bool) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        if self.openat2 {
            let flags = if follow_last {
                flags
            } else {
                flags | OFlags::NOFOLLOW
            };
            let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
            let bytes = p.to_bytes();
            // EAGAIN: a concurrent rename raced the `..` checks; retrying is what the
            // man page asks for.
            for _ in 0..64 {
                match rfs::openat2(
                    &self.fd,
                    OsStr::from_bytes(&bytes),
                    flags,
                    Mode::empty(),
                    how,
                ) {
                    Err(Errno::AGAIN) => continue,
                    r => return r.map_err(Into::into),
                }
            }
            return Err(Errno::AGAIN.into());
        }
        self.resolve_walk(p, flags, follow_last)
    }

    fn resolve_walk(&self, p: &CleanPath, flags: OFlags, follow_last: bool) -> io::Result<OwnedFd> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = p.components().map(<[u8]>::to_vec).collect();
        let mut links = 0;
        while let Some(comp) = queue.pop_front() {
            if comp.is_empty() || comp == b"." {
                continue;
            }
            if comp == b".." {
                stack.pop();
                continue;
            }
            let last = queue.is_empty();
            let cur = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
            let name = OsStr::from_bytes(&comp);
            let fd = rfs::openat(
                cur,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let ty = FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode);
            if ty == FileType::Symlink && (!last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP.into());
                }
                let target = rfs::readlinkat(&fd, c"", Vec::new())?;
                let target = target.as_bytes();
                if target.starts_with(b"/") {
                    stack.clear();
                }
                for c in target.split(|b| *b == b'/').rev() {
                    queue.push_front(c.to_vec());
                }
                continue;
            }
            if last {
                if flags.contains(OFlags::PATH) {
                    if flags.contains(OFlags::DIRECTORY) && ty != FileType::Directory {
                        return Err(Errno::NOTDIR.into());
                    }
                    return Ok(fd);
                }
                return Ok(rfs::openat(
                    cur,
                    name,
                    flags | OFlags::NOFOLLOW,
                    Mode::empty(),
                )?);
            }
            if ty != FileType::Directory {
                return Err(Errno::NOTDIR.into());
            }
            stack.push(fd);
        }
        let cur = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
        Ok(rfs::openat(cur, c".", flags, Mode::empty())?)
    }

    fn resolve_dir(&self, p: &CleanPath) -> io::Result<OwnedFd> {
        self.resolve(p, OFlags::PATH | OFlags::DIRECTORY, true)
    }

    /// The resolved parent directory of `p` (which must not be the root) and the
    /// leaf name. `Ok(None)` when the parent does not exist.
    fn parent(&self, p: &CleanPath) -> Result<Option<(OwnedFd, Vec<u8>)>, ArchiveError> {
        let name = p.file_name().expect("callers exclude the root").to_vec();
        match self.resolve_dir(&p.parent()) {
            Ok(fd) => Ok(Some((fd, name))),
            Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::NOENT)) => Ok(None),
            Err(e) => Err(self.err("resolve parent of", p, e)),
        }
    }

    /// `mkdir -p` inside the root; returns an `O_PATH` fd of the directory.
    ///
    /// Each created component is resolved again from the root before the next one is
    /// created below it.
    ///
    /// A component that is a dangling symlink gets its target created (in-root), as
    /// docker does for `var/run -> /run` followed by `var/run/x`.
    pub fn mkdir_all(&self, p: &CleanPath) -> Result<OwnedFd, ArchiveError> {
        self.mkdir_all_inner(p, 0)
    }

    fn mkdir_all_inner(&self, p: &CleanPath, links: u32) -> Result<OwnedFd, ArchiveError> {
        match self.resolve_dir(p) {
            Ok(fd) => return Ok(fd),
            Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::NOENT)) => {}
            Err(e) => return Err(self.err("resolve directory", p, e)),
        }
        let mut cur = self
            .resolve_dir(&CleanPath::default())
            .map_err(|e| self.err("open", &CleanPath::default(), e))?;
        for i in 1..=p.depth() {
            let pre = p.prefix(i);
            match self.resolve_dir(&pre) {
                Ok(fd) => cur = fd,
                Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::NOENT)) => {
                    let name = OsStr::from_bytes(pre.file_name().expect("i >= 1"));
                    match rfs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.err("create directory", &pre, e)),
                    }
                    cur = match self.resolve_dir(&pre) {
                        Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::NOENT)) => {
                            self.create_link_target(&cur, &pre, links)?
                        }
                        r => r.map_err(|e| self.err("create directory", &pre, e))?,
                    };
                }
                Err(e) => return Err(self.err("resolve directory", &pre, e)),
            }
        }
        Ok(cur)
    }

    /// `pre` (in `parent`) is a dangling symlink: create its target directory inside
    /// the root. The target is taken lexically relative to `pre`'s parent path.
    fn create_link_target(
        &self,
        parent: &OwnedFd,
        pre: &CleanPath,
        links: u32,
    ) -> Result<OwnedFd, ArchiveError> {
        let name = OsStr::from_bytes(pre.file_name().expect("not the root"));
        let target = match rfs::readlinkat(parent, name, Vec::new()) {
            Ok(t) => t.into_bytes(),
            Err(e) => return Err(self.err("create directory", pre, e)),
        };
        if links >= MAX_SYMLINKS {
            return Err(self.err("create directory", pre, Errno::LOOP));
        }
        let mut joined = if target.starts_with(b"/") {
            Vec::new()
        } else {
            pre.parent().to_bytes()
        };
        joined.push(b'/');
        joined.extend_from_slice(&target);
        let dest = CleanPath::new(&joined)?;
        self.mkdir_all_inner(&dest, links + 1)?;
        self.resolve_dir(pre)
            .map_err(|e| self.err("create directory", pre, e))
    }

    /// Parent fd (created if missing) and leaf name for a new entry at `p`.
    fn create_parent(&self, p: &CleanPath) -> Result<(OwnedFd, Vec<u8>), ArchiveError> {
        let name = p.file_name().expect("callers exclude the root").to_vec();
        Ok((self.mkdir_all(&p.parent())?, name))
    }

    /// Make room for a new entry `name` in `parent`: a directory is kept when
    /// `keep_dir` (returns true), anything else is removed without being followed.
    fn clear_leaf(
        &self,
        parent: &OwnedFd,
        name: &[u8],
        keep_dir: bool,
        p: &CleanPath,
    ) -> Result<bool, ArchiveError> {
        let os = OsStr::from_bytes(name);
        match rfs::statat(parent, os, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.err("stat", p, e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                if keep_dir {
                    return Ok(true);
                }
                remove_at(parent.as_fd(), os, 0).map_err(|e| self.err("remove", p, e))?;
                Ok(false)
            }
            Ok(_) => {
                rfs::unlinkat(parent, os, AtFlags::empty())
                    .map_err(|e| self.err("remove", p, e))?;
                Ok(false)
            }
        }
    }

    /// Create a regular file at `p`, replacing whatever is there (a symlink is
    /// removed, never followed): `O_CREAT|O_EXCL|O_NOFOLLOW`.
    pub fn create_file(&self, p: &CleanPath) -> Result<(File, Leaf), ArchiveError> {
        let (parent, name) = self.create_parent(p)?;
        self.clear_leaf(&parent, &name, false, p)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(
            &parent,
            OsStr::from_bytes(&name),
            flags,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.err("create file", p, e))?;
        let file = File::from(fd);
        let leaf = Leaf::new(
            file.try_clone()
                .map_err(|e| self.err("dup fd of", p, e))?
                .into(),
            Some((parent, name)),
            p,
            self,
        )?;
        Ok((file, leaf))
    }

    /// Create (or keep) a directory at `p`; a non-directory there is replaced.
    pub fn mkdir(&self, p: &CleanPath) -> Result<Leaf, ArchiveError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if p.is_root() {
            let fd = rfs::openat(&self.fd, c".", flags, Mode::empty())
                .map_err(|e| self.err("open", p, e))?;
            return Leaf::new(fd, None, p, self);
        }
        let (parent, name) = self.create_parent(p)?;
        let os = OsStr::from_bytes(&name);
        if !self.clear_leaf(&parent, &name, true, p)? {
            match rfs::mkdirat(&parent, os, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(self.err("create directory", p, e)),
            }
        }
        let fd = rfs::openat(&parent, os, flags, Mode::empty())
            .map_err(|e| self.err("open directory", p, e))?;
        Leaf::new(fd, Some((parent, name)), p, self)
    }

    /// Create a symlink `p -> target`, replacing whatever is at `p`.
    pub fn symlink(&self, target: &[u8], p: &CleanPath) -> Result<Leaf, ArchiveError> {
        let (parent, name) = self.create_parent(p)?;
        self.clear_leaf(&parent, &name, false, p)?;
        rfs::symlinkat(OsStr::from_bytes(target), &parent, OsStr::from_bytes(&name))
            .map_err(|e| self.err("create symlink", p, e))?;
        self.leaf_in(parent, name, p)
    }

    /// Create a device node or FIFO at `p` (never opened), replacing what is there.
    pub fn mknod(
        &self,
        p: &CleanPath,
        kind: NodeKind,
        mode: u32,
        dev: (u32, u32),
    ) -> Result<Leaf, ArchiveError> {
        let (parent, name) = self.create_parent(p)?;
        self.clear_leaf(&parent, &name, false, p)?;
        let ty = match kind {
            NodeKind::Char => FileType::CharacterDevice,
            NodeKind::Block => FileType::BlockDevice,
            NodeKind::Fifo => FileType::Fifo,
        };
        let dev = rfs::makedev(dev.0, dev.1);
        rfs::mknodat(
            &parent,
            OsStr::from_bytes(&name),
            ty,
            Mode::from_raw_mode(mode & 0o777),
            dev,
        )
        .map_err(|e| self.err("create special file", p, e))?;
        self.leaf_in(parent, name, p)
    }

    /// Hardlink `p` to the existing in-root `target` (not followed if a symlink).
    ///
    /// The target is checked before anything at `p` is removed.
    pub fn hardlink(&self, target: &CleanPath, p: &CleanPath) -> Result<(), ArchiveError> {
        let bad = |reason: &str| ArchiveError::Hardlink {
            path: p.display(),
            target: target.display(),
            reason: reason.to_owned(),
        };
        if target.is_root() {
            return Err(bad("the target is the root directory"));
        }
        if target == p {
            return Err(bad("a file cannot be linked to itself"));
        }
        let Some((tparent, tname)) = self.parent(target)? else {
            return Err(bad("the target does not exist in the root"));
        };
        let tos = OsStr::from_bytes(&tname);
        match rfs::statat(&tparent, tos, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Err(bad("the target does not exist in the root")),
            Err(e) => return Err(self.err("stat", target, e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(bad("the target is a directory"));
            }
            Ok(_) => {}
        }
        let (parent, name) = self.create_parent(p)?;
        self.clear_leaf(&parent, &name, false, p)?;
        rfs::linkat(
            &tparent,
            tos,
            &parent,
            OsStr::from_bytes(&name),
            AtFlags::empty(),
        )
        .map_err(|e| bad(&format!("cannot link: {e}")))
    }

    /// Remove `p` and everything below it, following no symlink. Returns whether
    /// something was there. Removing the root empties it.
    pub fn remove_all(&self, p: &CleanPath) -> Result<bool, ArchiveError> {
        if p.is_root() {
            for name in self.read_dir(p)? {
                self.remove_all(&p.join(&name))?;
            }
            return Ok(true);
        }
        let Some((parent, name)) = self.parent(p)? else {
            return Ok(false);
        };
        let os = OsStr::from_bytes(&name);
        match rfs::statat(&parent, os, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(self.err("stat", p, e)),
            Ok(_) => {}
        }
        remove_at(parent.as_fd(), os, 0).map_err(|e| self.err("remove", p, e))?;
        Ok(true)
    }

    /// Names in directory `p` (resolved in-root), sorted bytewise.
    pub fn read_dir(&self, p: &CleanPath) -> Result<Vec<Vec<u8>>, ArchiveError> {
        let fd = self
            .resolve(p, OFlags::RDONLY | OFlags::DIRECTORY, true)
            .map_err(|e| self.err("open directory", p, e))?;
        list_dir(fd).map_err(|e| self.err("read directory", p, e))
    }

    /// `lstat` of `p` (parents followed in-root, the leaf not); `None` if absent.
    pub fn lstat(&self, p: &CleanPath) -> Result<Option<Stat>, ArchiveError> {
        if p.is_root() {
            return rfs::fstat(&self.fd)
                .map(Some)
                .map_err(|e| self.err("stat", p, e));
        }
        let Some((parent, name)) = self.parent(p)? else {
            return Ok(None);
        };
        match rfs::statat(&parent, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.err("stat", p, e)),
        }
    }

    /// The target of symlink `p`.
    pub fn read_link(&self, p: &CleanPath) -> Result<Vec<u8>, ArchiveError> {
        let leaf = self
            .open_leaf(p)?
            .ok_or_else(|| self.err("read link", p, Errno::NOENT))?;
        rfs::readlinkat(&leaf.fd, c"", Vec::new())
            .map(|t| t.into_bytes())
            .map_err(|e| self.err("read link", p, e))
    }

    /// A readable handle of directory `p`, every symlink on the way followed in-root.
    pub fn open_dir(&self, p: &CleanPath) -> Result<Leaf, ArchiveError> {
        let fd = self
            .resolve(p, OFlags::RDONLY | OFlags::DIRECTORY, true)
            .map_err(|e| self.err("open directory", p, e))?;
        Leaf::new(fd, None, p, self)
    }

    /// An `O_PATH|O_NOFOLLOW` handle of `p` for metadata reads and changes.
    pub fn open_leaf(&self, p: &CleanPath) -> Result<Option<Leaf>, ArchiveError> {
        if p.is_root() {
            let fd = self.resolve_dir(p).map_err(|e| self.err("open", p, e))?;
            return Leaf::new(fd, None, p, self).map(Some);
        }
        let Some((parent, name)) = self.parent(p)? else {
            return Ok(None);
        };
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rfs::openat(&parent, OsStr::from_bytes(&name), flags, Mode::empty()) {
            Ok(fd) => Leaf::new(fd, Some((parent, name)), p, self).map(Some),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.err("open", p, e)),
        }
    }

    fn leaf_in(&self, parent: OwnedFd, name: Vec<u8>, p: &CleanPath) -> Result<Leaf, ArchiveError> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&parent, OsStr::from_bytes(&name), flags, Mode::empty())
            .map_err(|e| self.err("open", p, e))?;
        Leaf::new(fd, Some((parent, name)), p, self)
    }

    /// Open regular file `p` for reading. Anything else (a FIFO, a device) is
    /// refused before it could be opened: the checked `O_PATH` handle is reopened
    /// through `/proc/self/fd`, so the inode opened is the inode checked.
    pub fn open_regular(&self, p: &CleanPath) -> Result<File, ArchiveError> {
        let leaf = self
            .open_leaf(p)?
            .ok_or_else(|| self.err("open", p, Errno::NOENT))?;
        if leaf.file_type() != FileType::RegularFile {
            return Err(self.err("open", p, io::Error::other("not a regular file")));
        }
        let proc = proc_fd(&leaf.fd).map_err(|e| self.err("open", p, e))?;
        let fd = rfs::openat(CWD, proc, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| self.err("open", p, e))?;
        Ok(File::from(fd))
    }
}

fn probe_openat2(fd: &OwnedFd) -> bool {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    rfs::openat2(fd, c".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), how).is_ok()
}

/// Remove `name` in `dir` recursively, without following symlinks.
fn remove_at(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    if depth > MAX_REMOVE_DEPTH {
        return Err(io::Error::other("directory tree too deep to remove"));
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let sub = rfs::openat(dir, name, flags, Mode::empty())?;
    for child in list_dir(sub.try_clone()?)? {
        remove_at(sub.as_fd(), OsStr::from_bytes(&child), depth + 1)?;
    }
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sorted names of an opened (readable) directory.
fn list_dir(fd: OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut dir = Dir::new(fd)?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// `/proc/self/fd/N` for `fd`, after checking once that `/proc` is a real procfs.
fn proc_fd(fd: &impl AsRawFd) -> io::Result<String> {
    static PROC_OK: OnceLock<bool> = OnceLock::new();
    let ok = *PROC_OK.get_or_init(|| {
        rfs::statfs("/proc/self/fd").is_ok_and(|s| s.f_type == rfs::PROC_SUPER_MAGIC)
    });
    if !ok {
        return Err(io::Error::other("/proc is not a procfs mount"));
    }
    Ok(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A handle of one inode inside a root: an fd (often `O_PATH`), its parent directory
/// fd and name, and its type. All metadata changes go through it.
#[derive(Debug)]
pub struct Leaf {
    fd: OwnedFd,
    parent: Option<(OwnedFd, Vec<u8>)>,
    stat: Stat,
    path: PathBuf,
}

impl Leaf {
    fn new(
        fd: OwnedFd,
        parent: Option<(OwnedFd, Vec<u8>)>,
        p: &CleanPath,
        root: &Root,
    ) -> Result<Leaf, ArchiveError> {
        let stat = rfs::fstat(&fd).map_err(|e| root.err("stat", p, e))?;
        Ok(Leaf {
            fd,
            parent,
            stat,
            path: root.path.join(p.to_path_buf()),
        })
    }

    fn err(&self, op: &'static str, e: impl Into<io::Error>) -> ArchiveError {
        ArchiveError::io(op, &self.path, e.into())
    }

    /// The `stat` taken when the handle was opened.
    pub fn stat(&self) -> &Stat {
        &self.stat
    }

    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.stat.st_mode)
    }

    fn is_symlink(&self) -> bool {
        self.file_type() == FileType::Symlink
    }

    /// `lchown` through the fd.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<(), ArchiveError> {
        let (u, g) = (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)));
        rfs::chownat(
            &self.fd,
            c"",
            u,
            g,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err("change owner of", e))
    }

    /// `chmod` through the fd, including setuid/setgid/sticky; no-op for symlinks.
    pub fn set_mode(&self, mode: u32) -> Result<(), ArchiveError> {
        if self.is_symlink() {
            return Ok(());
        }
        let mode = Mode::from_raw_mode(mode & 0o7777);
        match rfs::fchmod(&self.fd, mode) {
            Err(Errno::BADF) => {
                let p = proc_fd(&self.fd).map_err(|e| self.err("change mode of", e))?;
                rfs::chmodat(CWD, p, mode, AtFlags::empty())
            }
            r => r,
        }
        .map_err(|e| self.err("change mode of", e))
    }

    /// Set atime and mtime through the fd (or the pinned parent for `O_PATH` handles
    /// on kernels without `AT_EMPTY_PATH` for `utimensat`).
    pub fn set_mtime(&self, secs: i64, nanos: u32) -> Result<(), ArchiveError> {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: i64::from(nanos),
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        let r = match rfs::futimens(&self.fd, &times) {
            Err(Errno::BADF) => {
                match rfs::utimensat(
                    &self.fd,
                    c"",
                    &times,
                    AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
                ) {
                    Err(Errno::INVAL | Errno::BADF | Errno::NOENT) if self.parent.is_some() => {
                        let (parent, name) = self.parent.as_ref().expect("checked");
                        rfs::utimensat(
                            parent,
                            OsStr::from_bytes(name),
                            &times,
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                    }
                    r => r,
                }
            }
            r => r,
        };
        r.map_err(|e| self.err("set times of", e))
    }

    /// Path through which the l*xattr calls reach this inode without following it.
    fn xattr_path(&self) -> io::Result<(String, bool)> {
        match (&self.parent, self.is_symlink()) {
            (Some((parent, name)), true) => {
                let mut p = proc_fd(parent)?;
                p.push('/');
                p.push_str(std::str::from_utf8(name).map_err(io::Error::other)?);
                Ok((p, true))
            }
            _ => Ok((proc_fd(&self.fd)?, false)),
        }
    }

    /// Set extended attribute `name` to `value`.
    pub fn set_xattr(&self, name: &str, value: &[u8]) -> Result<(), ArchiveError> {
        let flags = rfs::XattrFlags::empty();
        let r = match rfs::fsetxattr(&self.fd, name, value, flags) {
            Err(Errno::BADF) => match self.xattr_path() {
                Ok((p, true)) => rfs::lsetxattr(p, name, value, flags).map_err(Into::into),
                Ok((p, false)) => rfs::setxattr(p, name, value, flags).map_err(Into::into),
                Err(e) => Err(e),
            },
            r => r.map_err(Into::into),
        };
        r.map_err(|e: io::Error| self.err("set extended attribute on", e))
    }

    /// All extended attributes, by name.
    pub fn xattrs(&self) -> Result<BTreeMap<String, Vec<u8>>, ArchiveError> {
        let mut list = vec![0u8; 65536];
        let n = match rfs::flistxattr(&self.fd, &mut list[..]) {
            Err(Errno::BADF) => {
                let (p, nofollow) = self
                    .xattr_path()
                    .map_err(|e| self.err("list xattrs of", e))?;
                if nofollow {
                    rfs::llistxattr(p, &mut list[..])
                } else {
                    rfs::listxattr(p, &mut list[..])
                }
            }
            r => r,
        }
        .map_err(|e| self.err("list xattrs of", e))?;
        let mut out = BTreeMap::new();
        for name in list[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8_lossy(name).into_owned();
            let value = self.xattr(&name)?;
            out.insert(name, value);
        }
        Ok(out)
    }

    fn xattr(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let mut buf = vec![0u8; 65536];
        let n = match rfs::fgetxattr(&self.fd, name, &mut buf[..]) {
            Err(Errno::BADF) => {
                let (p, nofollow) = self
                    .xattr_path()
                    .map_err(|e| self.err("read xattr of", e))?;
                if nofollow {
                    rfs::lgetxattr(p, name, &mut buf[..])
                } else {
                    rfs::getxattr(p, name, &mut buf[..])
                }
            }
            r => r,
        }
        .map_err(|e| self.err("read xattr of", e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The fd of the handle.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
