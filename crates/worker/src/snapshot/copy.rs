//! A full copy of a snapshot's tree, for the copying driver: modes, owners, xattrs,
//! symlinks, devices, FIFOs, nanosecond mtimes and hardlinks within the tree.
//!
//! The source is a committed snapshot (immutable); nothing in it is followed: every
//! call is `l*` or on a directory this copy created.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, lchown, symlink};
use std::path::Path;

use rustix::fs::{
    AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags, lgetxattr, llistxattr,
    lsetxattr, makedev, mknodat, utimensat,
};

use super::error::SnapshotError;

type Result<T> = std::result::Result<T, SnapshotError>;

/// Copy the contents of `src` into the existing, empty directory `dst`, and the
/// metadata of `src` onto `dst`.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut links = HashMap::new();
    copy_dir(src, dst, &mut links)?;
    let md = fs::symlink_metadata(src).map_err(SnapshotError::io("stat", src))?;
    set_meta(src, dst, &md, false)
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(src)
        .map_err(SnapshotError::io("read directory", src))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(SnapshotError::io("read directory", src))?;
    names.sort();
    for name in names {
        let s = src.join(&name);
        let d = dst.join(&name);
        let md = fs::symlink_metadata(&s).map_err(SnapshotError::io("stat", &s))?;
        let ft = md.file_type();
        if ft.is_file() && md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                fs::hard_link(first, &d).map_err(SnapshotError::io("link", &d))?;
                continue;
            }
            links.insert((md.dev(), md.ino()), d.clone());
        }
        if ft.is_dir() {
            fs::create_dir(&d).map_err(SnapshotError::io("create directory", &d))?;
            copy_dir(&s, &d, links)?;
        } else if ft.is_file() {
            let mut from = File::open(&s).map_err(SnapshotError::io("open", &s))?;
            let mut to = File::options()
                .write(true)
                .create_new(true)
                .open(&d)
                .map_err(SnapshotError::io("create", &d))?;
            io::copy(&mut from, &mut to).map_err(SnapshotError::io("copy", &s))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&s).map_err(SnapshotError::io("read link", &s))?;
            symlink(&target, &d).map_err(SnapshotError::io("create symlink", &d))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = FileType::from_raw_mode(md.mode());
            let rdev = md.rdev();
            let dev = makedev(rustix::fs::major(rdev), rustix::fs::minor(rdev));
            mknodat(CWD, &d, kind, Mode::from_raw_mode(md.mode() & 0o7777), dev)
                .map_err(|e| SnapshotError::io("create node", &d)(e.into()))?;
        } else {
            // A socket cannot be part of an image.
            continue;
        }
        set_meta(&s, &d, &md, ft.is_symlink())?;
    }
    Ok(())
}

/// Owner, then mode (chown clears setuid), then xattrs, then times.
fn set_meta(src: &Path, dst: &Path, md: &fs::Metadata, symlink: bool) -> Result<()> {
    if rustix::process::geteuid().is_root() {
        lchown(dst, Some(md.uid()), Some(md.gid())).map_err(SnapshotError::io("chown", dst))?;
    }
    if !symlink {
        fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
            .map_err(SnapshotError::io("chmod", dst))?;
    }
    copy_xattrs(src, dst)?;
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
    };
    utimensat(CWD, dst, &ts, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| SnapshotError::io("set times of", dst)(e.into()))
}

fn copy_xattrs(src: &Path, dst: &Path) -> Result<()> {
    let err = |op| move |e: rustix::io::Errno| SnapshotError::io(op, src)(e.into());
    let mut names = vec![0u8; 4096];
    let n = loop {
        match llistxattr(src, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(()),
            Err(e) => return Err(err("list xattrs of")(e)),
        }
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let mut value = vec![0u8; 4096];
        let len = loop {
            match lgetxattr(src, name, &mut value[..]) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                Err(e) => return Err(err("read xattrs of")(e)),
            }
        };
        lsetxattr(dst, name, &value[..len], XattrFlags::empty())
            .map_err(|e| SnapshotError::io("set xattrs of", dst)(e.into()))?;
    }
    Ok(())
}
