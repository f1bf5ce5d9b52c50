//! Change lists from two trees (copying snapshotter) or from an overlay upper dir.
//!
//! Trees are read through [`Root`], so a symlink swapped in by a concurrent process
//! is read as a symlink and never followed. Overlay's own xattrs are never copied
//! into a change.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{FileType, Stat, major, minor};

use crate::error::ArchiveError;
use crate::path::CleanPath;
use crate::root::Root;
use crate::write::{Change, ContentSource, Entry, EntryKind, Metadata};

/// Changes that turn `lower` into `upper`. A path only in `upper` is an `Add`
/// (with everything below it), one that differs is a `Modify`, one only in `lower`
/// is a `Delete` (its subtree is not listed). Parent directories of every change are
/// included so an overlay applier keeps their metadata.
pub fn diff_dirs(lower: &Path, upper: &Path) -> Result<Vec<Change>, ArchiveError> {
    let lower = Root::open(lower)?;
    let upper = Arc::new(Root::open(upper)?);
    let mut d = Differ {
        upper: upper.clone(),
        out: Vec::new(),
    };
    d.compare_dir(&lower, &CleanPath::default())?;
    let mut changes = d.out;
    add_parents(&upper, &mut changes)?;
    Ok(changes)
}

/// Changes recorded in an overlay upper dir: 0/0 character devices are deletions,
/// directories with an `overlay.opaque` xattr (trusted or user) are opaque, the
/// rest are additions. fuse-overlayfs's upper dirs are read the same way: its opaque
/// directories carry `user.fuseoverlayfs.opaque` and hold two markers of its own
/// (`.wh..wh..opq`, `.wh..opq`), which are not content. `overlay.redirect` and `overlay.metacopy` are refused: a
/// layer cannot express them.
pub fn diff_overlay_upper(upper: &Path) -> Result<Vec<Change>, ArchiveError> {
    let upper = Arc::new(Root::open(upper)?);
    let mut out = Vec::new();
    let mut stack = vec![CleanPath::default()];
    while let Some(dir) = stack.pop() {
        for name in upper.read_dir(&dir)? {
            if FUSE_OVERLAY_MARKERS.contains(&name.as_slice()) {
                continue;
            }
            let p = dir.join(&name);
            let Some((kind, meta, raw)) = read_node(&upper, &p)? else {
                continue;
            };
            if let Some(x) = raw
                .keys()
                .find(|k| k.contains("overlay.redirect") || k.contains("overlay.metacopy"))
            {
                return Err(ArchiveError::OverlayFeature {
                    path: p.display(),
                    xattr: x.clone(),
                });
            }
            if matches!(kind, EntryKind::CharDevice { major: 0, minor: 0 }) {
                out.push(Change::Delete(p.to_path_buf()));
                continue;
            }
            let is_dir = matches!(kind, EntryKind::Dir);
            let opaque = [
                "trusted.overlay.opaque",
                "user.overlay.opaque",
                "user.fuseoverlayfs.opaque",
            ]
            .iter()
            .any(|k| raw.get(*k).is_some_and(|v| v == b"y"));
            out.push(Change::Add(entry(&upper, &p, kind, meta)));
            if opaque {
                out.push(Change::OpaqueDir(p.to_path_buf()));
            }
            if is_dir {
                stack.push(p);
            }
        }
    }
    Ok(out)
}

/// The entries fuse-overlayfs adds to an opaque directory of its upper dir.
const FUSE_OVERLAY_MARKERS: [&[u8]; 2] = [b".wh..wh..opq", b".wh..opq"];

struct Differ {
    upper: Arc<Root>,
    out: Vec<Change>,
}

impl Differ {
    fn compare_dir(&mut self, lower: &Root, dir: &CleanPath) -> Result<(), ArchiveError> {
        let lnames: BTreeSet<Vec<u8>> = lower.read_dir(dir)?.into_iter().collect();
        let unames: BTreeSet<Vec<u8>> = self.upper.read_dir(dir)?.into_iter().collect();
        for name in lnames.difference(&unames) {
            self.out.push(Change::Delete(dir.join(name).to_path_buf()));
        }
        for name in &unames {
            let p = dir.join(name);
            let Some((ukind, umeta, _)) = read_node(&self.upper, &p)? else {
                continue;
            };
            let udir = matches!(ukind, EntryKind::Dir);
            let lnode = if lnames.contains(name) {
                read_node(lower, &p)?
            } else {
                None
            };
            match lnode {
                None => {
                    self.out
                        .push(Change::Add(entry(&self.upper, &p, ukind, umeta)));
                    if udir {
                        self.add_subtree(&p)?;
                    }
                }
                Some((lkind, lmeta, _)) => {
                    let ldir = matches!(lkind, EntryKind::Dir);
                    if !same(lower, &self.upper, &p, (&lkind, &lmeta), (&ukind, &umeta))? {
                        self.out
                            .push(Change::Modify(entry(&self.upper, &p, ukind, umeta)));
                    }
                    match (ldir, udir) {
                        (true, true) => self.compare_dir(lower, &p)?,
                        (false, true) => self.add_subtree(&p)?,
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn add_subtree(&mut self, dir: &CleanPath) -> Result<(), ArchiveError> {
        for name in self.upper.read_dir(dir)? {
            let p = dir.join(&name);
            let Some((kind, meta, _)) = read_node(&self.upper, &p)? else {
                continue;
            };
            let is_dir = matches!(kind, EntryKind::Dir);
            self.out
                .push(Change::Add(entry(&self.upper, &p, kind, meta)));
            if is_dir {
                self.add_subtree(&p)?;
            }
        }
        Ok(())
    }
}

/// Emit every missing ancestor directory of a change, with its `upper` metadata.
fn add_parents(upper: &Arc<Root>, changes: &mut Vec<Change>) -> Result<(), ArchiveError> {
    let mut have: BTreeSet<CleanPath> = BTreeSet::new();
    for c in changes.iter() {
        if let Change::Add(e) | Change::Modify(e) = c {
            have.insert(CleanPath::from_path(&e.path)?);
        }
    }
    let mut extra = Vec::new();
    for c in changes.iter() {
        let p = match c {
            Change::Add(e) | Change::Modify(e) => CleanPath::from_path(&e.path)?,
            Change::Delete(p) | Change::OpaqueDir(p) => CleanPath::from_path(p)?,
        };
        let mut parent = p.parent();
        while !parent.is_root() && have.insert(parent.clone()) {
            if let Some((kind @ EntryKind::Dir, meta, _)) = read_node(upper, &parent)? {
                extra.push(Change::Modify(entry(upper, &parent, kind, meta)));
            }
            parent = parent.parent();
        }
    }
    changes.extend(extra);
    Ok(())
}

fn entry(root: &Arc<Root>, p: &CleanPath, kind: EntryKind, meta: Metadata) -> Entry {
    let kind = match kind {
        EntryKind::File { size, .. } => EntryKind::File {
            size,
            content: ContentSource::InRoot(root.clone(), p.to_path_buf()),
        },
        k => k,
    };
    Entry {
        path: p.to_path_buf(),
        kind,
        meta,
    }
}

/// Type, metadata (overlay xattrs dropped) and the raw xattrs of `p`; `None` for a
/// socket, which a layer cannot hold, or a vanished path.
type Node = (EntryKind, Metadata, BTreeMap<String, Vec<u8>>);

fn read_node(root: &Root, p: &CleanPath) -> Result<Option<Node>, ArchiveError> {
    let Some(leaf) = root.open_leaf(p)? else {
        return Ok(None);
    };
    let st: Stat = *leaf.stat();
    let kind = match leaf.file_type() {
        FileType::Directory => EntryKind::Dir,
        FileType::RegularFile => EntryKind::File {
            size: st.st_size as u64,
            content: ContentSource::Bytes(Arc::from(&[][..])),
        },
        FileType::Symlink => EntryKind::Symlink {
            target: root.read_link(p)?,
        },
        FileType::CharacterDevice => EntryKind::CharDevice {
            major: major(st.st_rdev),
            minor: minor(st.st_rdev),
        },
        FileType::BlockDevice => EntryKind::BlockDevice {
            major: major(st.st_rdev),
            minor: minor(st.st_rdev),
        },
        FileType::Fifo => EntryKind::Fifo,
        _ => return Ok(None),
    };
    let raw = leaf.xattrs()?;
    let xattrs = raw
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("trusted.overlay.")
                && !k.starts_with("user.overlay.")
                && !k.starts_with("user.fuseoverlayfs.")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let link_key = (matches!(kind, EntryKind::File { .. }) && st.st_nlink > 1)
        .then_some((st.st_dev, st.st_ino));
    let meta = Metadata {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
        xattrs,
        link_key,
    };
    Ok(Some((kind, meta, raw)))
}

/// Whether `p` is unchanged. Files with equal metadata and a whole-second mtime
/// (a filesystem or copy that dropped nanoseconds) have their bytes compared.
fn same(
    lower: &Root,
    upper: &Root,
    p: &CleanPath,
    l: (&EntryKind, &Metadata),
    u: (&EntryKind, &Metadata),
) -> Result<bool, ArchiveError> {
    let (lm, um) = (l.1, u.1);
    let meta_same = lm.mode == um.mode
        && lm.uid == um.uid
        && lm.gid == um.gid
        && lm.xattrs == um.xattrs
        && lm.mtime == um.mtime
        && lm.mtime_nsec == um.mtime_nsec;
    if !meta_same {
        return Ok(false);
    }
    match (l.0, u.0) {
        (EntryKind::Dir, EntryKind::Dir) | (EntryKind::Fifo, EntryKind::Fifo) => Ok(true),
        (EntryKind::Symlink { target: a }, EntryKind::Symlink { target: b }) => Ok(a == b),
        (
            EntryKind::CharDevice { major: a, minor: b },
            EntryKind::CharDevice { major: c, minor: d },
        )
        | (
            EntryKind::BlockDevice { major: a, minor: b },
            EntryKind::BlockDevice { major: c, minor: d },
        ) => Ok((a, b) == (c, d)),
        (EntryKind::File { size: a, .. }, EntryKind::File { size: b, .. }) => {
            if a != b {
                return Ok(false);
            }
            if um.mtime_nsec != 0 {
                return Ok(true);
            }
            same_bytes(lower, upper, p)
        }
        _ => Ok(false),
    }
}

fn same_bytes(lower: &Root, upper: &Root, p: &CleanPath) -> Result<bool, ArchiveError> {
    let mut a = lower.open_regular(p)?;
    let mut b = upper.open_regular(p)?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut a, &mut ba)
            .map_err(|e| ArchiveError::io("read", lower.path().join(p.to_path_buf()), e))?;
        let nb = read_full(&mut b, &mut bb)
            .map_err(|e| ArchiveError::io("read", upper.path().join(p.to_path_buf()), e))?;
        if ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
