//! Applying an uncompressed layer tar onto a [`Root`].
//!
//! Entries are parsed with the `tar` crate (never `unpack`) and every filesystem
//! change goes through [`Root`], so nothing lands outside the root. On error the
//! partially applied tree is the caller's to discard; [`apply_into_new_dir`] does that
//! for a fresh directory.

use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::FileType;
use rustix::io::Errno;

use crate::budget::Budget;
use crate::entry::{self, Kind, Limits, Parsed};
use crate::error::ArchiveError;
use crate::guard::HeaderGuard;
use crate::path::CleanPath;
use crate::root::{Leaf, NodeKind, Root};

/// Which xattr namespace overlay-mode markers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayXattr {
    /// `trusted.overlay.opaque` (overlay mounted by root).
    Trusted,
    /// `user.overlay.opaque` (overlay mounted with `userxattr`).
    User,
}

impl OverlayXattr {
    pub fn opaque_name(self) -> &'static str {
        match self {
            OverlayXattr::Trusted => "trusted.overlay.opaque",
            OverlayXattr::User => "user.overlay.opaque",
        }
    }
}

/// How whiteout entries are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Onto a merged (flat) rootfs: delete the target, empty opaque directories.
    Flat,
    /// Into an overlay upper dir: whiteouts become 0/0 character devices, opaque
    /// directories get the opaque xattr.
    Overlay(OverlayXattr),
}

/// What to do with device nodes or FIFOs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialFiles {
    Create,
    Skip,
    Refuse,
}

/// How a layer is applied.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
    /// Set owners from the headers and keep `trusted.*` xattrs. Off: files belong to
    /// the caller, `trusted.*` is skipped and xattrs refused by the kernel are skipped.
    pub privileged: bool,
    /// Keep `trusted.*` xattrs (only the host's root may set them).
    pub trusted_xattrs: bool,
    pub devices: SpecialFiles,
    pub fifos: SpecialFiles,
    pub limits: Limits,
    /// Checked by [`apply_blob`](crate::apply_blob), which sees the compressed bytes.
    pub budget: Budget,
}

impl ApplyOptions {
    /// As root: owners, devices and all xattrs kept, flat whiteouts.
    pub fn privileged() -> Self {
        ApplyOptions {
            whiteouts: WhiteoutMode::Flat,
            privileged: true,
            trusted_xattrs: true,
            devices: SpecialFiles::Create,
            fifos: SpecialFiles::Create,
            limits: Limits::default(),
            budget: Budget::default(),
        }
    }

    /// Without privileges: owners ignored, devices skipped, `trusted.*` skipped.
    pub fn rootless() -> Self {
        ApplyOptions {
            whiteouts: WhiteoutMode::Flat,
            privileged: false,
            trusted_xattrs: false,
            devices: SpecialFiles::Skip,
            fifos: SpecialFiles::Create,
            limits: Limits::default(),
            budget: Budget::default(),
        }
    }
}

impl ApplyOptions {
    /// As root of a user namespace (rootless): owners kept (they must be mapped),
    /// device nodes skipped (the kernel refuses them), `trusted.*` skipped.
    pub fn namespaced() -> Self {
        ApplyOptions {
            trusted_xattrs: false,
            devices: SpecialFiles::Skip,
            ..ApplyOptions::privileged()
        }
    }
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions::privileged()
    }
}

/// Counts of what a layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyStats {
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub specials_created: u64,
    pub specials_skipped: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// Entries naming a path an earlier entry of the layer named (the last wins).
    pub duplicates: u64,
    pub xattrs_skipped: u64,
    /// PAX global headers and AUFS `.wh..wh.` metadata, ignored.
    pub entries_skipped: u64,
    /// File content bytes written.
    pub content_bytes: u64,
    /// Bytes of the uncompressed stream read, trailing bytes included.
    pub tar_bytes: u64,
    /// Bytes after the end-of-archive marker (read so digests cover them).
    pub trailing_bytes: u64,
}

/// Counts bytes and fails once past the limit, remembering that it did.
struct Counted<R> {
    inner: R,
    count: u64,
    limit: u64,
    tripped: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.tripped.set(true);
            return Err(io::Error::other("layer exceeds byte limit"));
        }
        Ok(n)
    }
}

/// A directory whose mode and mtime are set after all entries (children change a
/// directory's mtime, and a read-only mode would block them).
struct DeferredDir {
    path: CleanPath,
    ino: (u64, u64),
    mode: u32,
    mtime: (i64, u32),
}

struct State<'a> {
    root: &'a Root,
    opts: &'a ApplyOptions,
    stats: ApplyStats,
    seen: HashSet<CleanPath>,
    opaque_done: HashSet<CleanPath>,
    dirs: Vec<DeferredDir>,
    last: String,
    tripped: Rc<Cell<bool>>,
}

/// Apply the uncompressed tar read from `reader` onto `root`, then read `reader` to
/// its end. On error, the tree may be partly changed; discard it.
pub fn apply_layer<R: Read>(
    root: &Root,
    reader: R,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ArchiveError> {
    let tripped = Rc::new(Cell::new(false));
    let mut counted = Counted {
        inner: HeaderGuard::new(reader, &opts.limits),
        count: 0,
        limit: opts.limits.max_bytes,
        tripped: tripped.clone(),
    };
    let mut st = State {
        root,
        opts,
        stats: ApplyStats::default(),
        seen: HashSet::new(),
        opaque_done: HashSet::new(),
        dirs: Vec::new(),
        last: String::new(),
        tripped,
    };
    let mut archive = tar::Archive::new(&mut counted);
    let entries = archive.entries().map_err(|e| st.stream_error(e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| st.stream_error(e))?;
        st.entry(&mut entry)?;
    }
    st.finish_dirs()?;
    let inner = archive.into_inner();
    // The tar crate stops after the first zero block; the second belongs to the
    // end-of-archive marker, anything after it is trailing data.
    let mut second = Vec::with_capacity(512);
    (&mut *inner)
        .take(512)
        .read_to_end(&mut second)
        .map_err(|e| st.stream_error(e))?;
    let before = inner.count
        - if second.iter().all(|b| *b == 0) {
            0
        } else {
            second.len() as u64
        };
    io::copy(inner, &mut io::sink()).map_err(|e| st.stream_error(e))?;
    st.stats.trailing_bytes = counted.count - before;
    st.stats.tar_bytes = counted.count;
    Ok(st.stats)
}

/// Create `dir` (which must not exist), run `apply` on it as a root, and remove it
/// again if `apply` fails.
pub fn apply_into_new_dir<T>(
    dir: &Path,
    apply: impl FnOnce(&Root) -> Result<T, ArchiveError>,
) -> Result<T, ArchiveError> {
    std::fs::create_dir(dir).map_err(|e| ArchiveError::io("create directory", dir, e))?;
    let result = Root::open(dir).and_then(|root| apply(&root));
    if result.is_err() {
        let cleanup = Root::open(dir).and_then(|r| r.remove_all(&CleanPath::default()));
        if let Err(e) = cleanup.and_then(|_| {
            std::fs::remove_dir(dir).map_err(|e| ArchiveError::io("remove directory", dir, e))
        }) {
            // The apply error is the one to report; the leftover is named in it.
            return Err(ArchiveError::io(
                "clean up after failed apply in",
                dir,
                io::Error::other(e.to_string()),
            ));
        }
    }
    result
}

/// What a `.wh.` entry means.
enum Whiteout {
    Remove(CleanPath),
    Opaque(CleanPath),
    AufsMeta,
}

fn classify_whiteout(p: &Parsed) -> Result<Option<Whiteout>, ArchiveError> {
    let Some(name) = p.path.file_name() else {
        return Ok(None);
    };
    let Some(rest) = name.strip_prefix(b".wh.") else {
        return Ok(None);
    };
    let invalid = |reason| ArchiveError::InvalidWhiteout {
        path: crate::error::show(&p.raw_path),
        reason,
    };
    if rest == b".wh..opq" {
        return Ok(Some(Whiteout::Opaque(p.path.parent())));
    }
    if rest.starts_with(b".wh.") {
        return Ok(Some(Whiteout::AufsMeta));
    }
    match rest {
        b"" => Err(invalid("it names no file")),
        b"." | b".." => Err(invalid("it names `.` or `..`")),
        _ => Ok(Some(Whiteout::Remove(p.path.parent().join(rest)))),
    }
}

fn keep_xattr(name: &str, trusted: bool) -> bool {
    // Overlay's own xattrs would forge whiteouts, redirects or metacopy in an upper dir.
    if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
        return false;
    }
    trusted || !name.starts_with("trusted.")
}

impl State<'_> {
    fn stream_error(&self, e: io::Error) -> ArchiveError {
        let e = match ArchiveError::from_stream(e) {
            Ok(limit) => return limit,
            Err(e) => e,
        };
        if self.tripped.get() {
            return ArchiveError::LimitExceeded {
                what: "uncompressed bytes",
                limit: self.opts.limits.max_bytes,
            };
        }
        ArchiveError::Tar {
            after: self.last.clone(),
            source: e,
        }
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        self.stats.entries += 1;
        if self.stats.entries > self.opts.limits.max_entries {
            return Err(ArchiveError::LimitExceeded {
                what: "entries",
                limit: self.opts.limits.max_entries,
            });
        }
        let p = entry::parse(e, &self.opts.limits)?;
        self.last = crate::error::show(&p.raw_path);
        if p.kind == Kind::Global {
            self.stats.entries_skipped += 1;
            return Ok(());
        }
        if let Some(w) = classify_whiteout(&p)? {
            return self.whiteout(w);
        }
        if p.path.is_root() && p.kind != Kind::Dir {
            return Err(ArchiveError::RootEntry {
                path: self.last.clone(),
                kind: p.kind.name(),
            });
        }
        if !self.seen.insert(p.path.clone()) {
            self.stats.duplicates += 1;
        }
        match p.kind {
            Kind::File => self.file(e, &p),
            Kind::Dir => self.dir(&p),
            Kind::Symlink => {
                let target = p.link.as_deref().expect("parse sets links");
                let leaf = self.root.symlink(target, &p.path)?;
                self.stats.symlinks += 1;
                self.meta(&leaf, &p)
            }
            Kind::Hardlink => {
                let target = CleanPath::new(p.link.as_deref().expect("parse sets links"))?;
                self.root.hardlink(&target, &p.path)?;
                self.stats.hardlinks += 1;
                Ok(())
            }
            Kind::Char | Kind::Block | Kind::Fifo => self.special(&p),
            Kind::Global => Ok(()),
        }
    }

    fn file<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, p: &Parsed) -> Result<(), ArchiveError> {
        let max = self.opts.limits.max_bytes;
        if self.stats.content_bytes.saturating_add(p.size) > max {
            return Err(ArchiveError::LimitExceeded {
                what: "file content bytes",
                limit: max,
            });
        }
        let (mut file, leaf) = self.root.create_file(&p.path)?;
        let n = io::copy(&mut (&mut *e).take(p.size), &mut file).map_err(|err| {
            let err = match ArchiveError::from_stream(err) {
                Ok(limit) => return limit,
                Err(err) => err,
            };
            if self.tripped.get() {
                self.stream_error(err)
            } else {
                ArchiveError::io("write", self.root.path().join(p.path.to_path_buf()), err)
            }
        })?;
        if n != p.size {
            return Err(ArchiveError::Malformed {
                path: self.last.clone(),
                reason: format!("truncated: {n} of {} content bytes", p.size),
            });
        }
        drop(file);
        self.stats.files += 1;
        self.stats.content_bytes += n;
        self.meta(&leaf, p)
    }

    fn dir(&mut self, p: &Parsed) -> Result<(), ArchiveError> {
        let leaf = self.root.mkdir(&p.path)?;
        if self.opts.privileged {
            leaf.set_owner(p.uid, p.gid)?;
        }
        self.xattrs(&leaf, p)?;
        let st = leaf.stat();
        self.dirs.push(DeferredDir {
            path: p.path.clone(),
            ino: (st.st_dev, st.st_ino),
            mode: p.mode,
            mtime: p.mtime,
        });
        self.stats.dirs += 1;
        Ok(())
    }

    fn special(&mut self, p: &Parsed) -> Result<(), ArchiveError> {
        let (policy, kind) = match p.kind {
            Kind::Char => (self.opts.devices, NodeKind::Char),
            Kind::Block => (self.opts.devices, NodeKind::Block),
            _ => (self.opts.fifos, NodeKind::Fifo),
        };
        match policy {
            SpecialFiles::Skip => {
                self.stats.specials_skipped += 1;
                Ok(())
            }
            SpecialFiles::Refuse => Err(ArchiveError::SpecialRefused {
                path: self.last.clone(),
                kind: p.kind.name(),
            }),
            SpecialFiles::Create => {
                let leaf = self.root.mknod(&p.path, kind, p.mode, p.dev)?;
                self.stats.specials_created += 1;
                self.meta(&leaf, p)
            }
        }
    }

    /// Owner, then mode (chown clears setuid), then xattrs (a later chown would drop
    /// `security.capability`), then mtime.
    fn meta(&mut self, leaf: &Leaf, p: &Parsed) -> Result<(), ArchiveError> {
        if self.opts.privileged {
            leaf.set_owner(p.uid, p.gid)?;
        }
        leaf.set_mode(p.mode)?;
        self.xattrs(leaf, p)?;
        leaf.set_mtime(p.mtime.0, p.mtime.1)
    }

    fn xattrs(&mut self, leaf: &Leaf, p: &Parsed) -> Result<(), ArchiveError> {
        let symlink = leaf.file_type() == FileType::Symlink;
        for (name, value) in &p.xattrs {
            if !keep_xattr(name, self.opts.trusted_xattrs) || (symlink && name.starts_with("user."))
            {
                self.stats.xattrs_skipped += 1;
                continue;
            }
            match leaf.set_xattr(name, value) {
                Ok(()) => {}
                Err(ArchiveError::Io { ref source, .. })
                    if !self.opts.privileged
                        && matches!(
                            Errno::from_io_error(source),
                            Some(Errno::PERM | Errno::NOTSUP | Errno::ACCESS)
                        ) =>
                {
                    self.stats.xattrs_skipped += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, w: Whiteout) -> Result<(), ArchiveError> {
        match (w, self.opts.whiteouts) {
            (Whiteout::AufsMeta, _) => self.stats.entries_skipped += 1,
            (Whiteout::Remove(target), WhiteoutMode::Flat) => {
                self.root.remove_all(&target)?;
                self.stats.whiteouts += 1;
            }
            (Whiteout::Remove(target), WhiteoutMode::Overlay(_)) => {
                let leaf = self.root.mknod(&target, NodeKind::Char, 0, (0, 0))?;
                if self.opts.privileged {
                    leaf.set_owner(0, 0)?;
                }
                self.stats.whiteouts += 1;
            }
            (Whiteout::Opaque(dir), mode) => {
                self.root.mkdir_all(&dir)?;
                let leaf = self.root.open_dir(&dir)?;
                match mode {
                    WhiteoutMode::Overlay(x) => leaf.set_xattr(x.opaque_name(), b"y")?,
                    WhiteoutMode::Flat => {
                        // After the first marker everything left is from this layer,
                        // so a repeated marker has nothing to do (linear time).
                        if self.opaque_done.insert(dir.clone()) {
                            self.empty_except_seen(&dir)?;
                        }
                    }
                }
                self.stats.opaque_dirs += 1;
            }
        }
        Ok(())
    }

    /// Remove what lower layers left in `dir`, keeping entries of this layer.
    fn empty_except_seen(&mut self, dir: &CleanPath) -> Result<(), ArchiveError> {
        for name in self.root.read_dir(dir)? {
            let child = dir.join(&name);
            if !self.seen.contains(&child) {
                self.root.remove_all(&child)?;
                continue;
            }
            let is_dir = self
                .root
                .lstat(&child)?
                .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
            if is_dir {
                self.empty_except_seen(&child)?;
            }
        }
        Ok(())
    }

    /// Set directory modes and mtimes, skipping any directory that was replaced since.
    fn finish_dirs(&mut self) -> Result<(), ArchiveError> {
        for d in std::mem::take(&mut self.dirs) {
            let Some(leaf) = self.root.open_leaf(&d.path)? else {
                continue;
            };
            let st = leaf.stat();
            if leaf.file_type() != FileType::Directory || (st.st_dev, st.st_ino) != d.ino {
                continue;
            }
            leaf.set_mode(d.mode)?;
            leaf.set_mtime(d.mtime.0, d.mtime.1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_and_trusted_xattrs_are_filtered() {
        assert!(!keep_xattr("trusted.overlay.opaque", true));
        assert!(!keep_xattr("user.overlay.redirect", true));
        assert!(keep_xattr("trusted.foo", true));
        assert!(!keep_xattr("trusted.foo", false));
        assert!(keep_xattr("security.capability", false));
        assert!(keep_xattr("user.mime", false));
    }
}
