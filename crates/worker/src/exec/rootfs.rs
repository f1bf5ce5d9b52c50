//! In-root file access for the step's root filesystem: every path is resolved with
//! `openat2(RESOLVE_IN_ROOT)`, so symlinks in an image never lead out of it.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid};

use super::ExecError;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Open the root filesystem directory itself; a symlink there is refused.
pub(crate) fn open_root(rootfs: &Path) -> Result<OwnedFd, ExecError> {
    rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ExecError::Rootfs {
        path: rootfs.to_owned(),
        source: e.into(),
    })
}

/// The runtime mounts `/proc`, `/sys` and `/dev` over the image's. Each must be a real
/// directory (created when missing): a symlink or a file there is how runtimes were
/// tricked into mounting over host paths (CVE-2023-28642, CVE-2025-31133).
pub(crate) fn check_kernel_dirs(root: &OwnedFd, rootfs: &Path) -> Result<(), ExecError> {
    for name in ["proc", "sys", "dev"] {
        match rustix::fs::statat(root, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let what = match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => continue,
                    FileType::Symlink => "a symbolic link (must be a directory)",
                    FileType::RegularFile => "a regular file (must be a directory)",
                    _ => "a special file (must be a directory)",
                };
                return Err(ExecError::UnsafeRootfs {
                    rootfs: rootfs.to_owned(),
                    path: format!("/{name}"),
                    what,
                });
            }
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::mkdirat(root, name, Mode::from_raw_mode(0o755)).map_err(|e| {
                    ExecError::Rootfs {
                        path: rootfs.join(name),
                        source: e.into(),
                    }
                })?;
            }
            Err(e) => {
                return Err(ExecError::Rootfs {
                    path: rootfs.join(name),
                    source: e.into(),
                });
            }
        }
    }
    Ok(())
}

/// Why a file of the root filesystem could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error("{path} is not a regular file ({what})")]
    NotRegular { path: String, what: &'static str },
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Read `path` (absolute in the root) if it exists, at most `limit` bytes. Only regular
/// files are read: a FIFO, a device (`/etc/passwd -> /dev/zero`) or a directory is an
/// error, and nothing is opened for reading before that check.
pub(crate) fn read_capped(
    root: &OwnedFd,
    path: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, ReadError> {
    let io_err = |e: io::Error| ReadError::Io {
        path: path.to_owned(),
        source: e,
    };
    let rel = path.trim_start_matches('/');
    let fd = match rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io_err(e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err(e.into()))?;
    let what = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => None,
        FileType::Directory => Some("a directory"),
        FileType::Fifo => Some("a FIFO"),
        FileType::CharacterDevice => Some("a character device"),
        FileType::BlockDevice => Some("a block device"),
        FileType::Socket => Some("a socket"),
        _ => Some("an unknown file type"),
    };
    if let Some(what) = what {
        return Err(ReadError::NotRegular {
            path: path.to_owned(),
            what,
        });
    }
    // Re-open the very inode checked above (no second path walk).
    let file = std::fs::File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(io_err)?;
    let mut buf = Vec::new();
    file.take(limit + 1).read_to_end(&mut buf).map_err(io_err)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(Some(buf))
}

/// Create directory `path` (absolute, already cleaned) and its missing parents inside
/// the root; every directory created is owned by `uid:gid` (BuildKit does the same for
/// a step's working directory). Existing components, symlinks included, are resolved
/// in-root and left alone.
pub(crate) fn mkdir_all_in_root(root: &OwnedFd, path: &str, uid: u32, gid: u32) -> io::Result<()> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::openat2(root, &prefix, dir_flags, Mode::empty(), RESOLVE) {
            Ok(_) => continue,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let parent_rel = comps[..i].join("/");
        let parent_rel = if parent_rel.is_empty() {
            "."
        } else {
            &parent_rel
        };
        let parent = rustix::fs::openat2(root, parent_rel, dir_flags, Mode::empty(), RESOLVE)?;
        rustix::fs::mkdirat(&parent, comps[i], Mode::from_raw_mode(0o755))?;
        let made = rustix::fs::openat(
            &parent,
            comps[i],
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::fs::fchown(&made, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, symlink};

    #[test]
    fn read_capped_refuses_big_and_special_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), vec![b'a'; 100]).unwrap();
        let root = open_root(dir.path()).unwrap();
        assert_eq!(
            read_capped(&root, "/etc/passwd", 100)
                .unwrap()
                .unwrap()
                .len(),
            100
        );
        let err = read_capped(&root, "/etc/passwd", 99).unwrap_err();
        assert!(
            matches!(err, ReadError::TooLarge { limit: 99, .. }),
            "{err}"
        );
        assert!(read_capped(&root, "/etc/group", 10).unwrap().is_none());

        // A symlink to /dev/zero resolves in the root: the host's /dev/zero is never read.
        symlink("/dev/zero", dir.path().join("etc/group")).unwrap();
        assert!(read_capped(&root, "/etc/group", 10).unwrap().is_none());
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::fs::create_dir(dir.path().join("dev/zero")).unwrap();
        let err = read_capped(&root, "/etc/group", 10).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
    }

    #[test]
    fn mkdir_stays_in_root_through_absolute_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), dir.path().join("escape")).unwrap();
        let root = open_root(dir.path()).unwrap();
        let me = std::fs::metadata(dir.path()).unwrap();
        // `escape` points at an absolute host path, which in-root is missing: error,
        // and nothing is created outside.
        let err = mkdir_all_in_root(&root, "/escape/x", me.uid(), me.gid());
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        mkdir_all_in_root(&root, "/a/b/c", me.uid(), me.gid()).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
    }

    #[test]
    fn kernel_dirs_must_be_directories() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/", dir.path().join("proc")).unwrap();
        let root = open_root(dir.path()).unwrap();
        let err = check_kernel_dirs(&root, dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("/proc is a symbolic link"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("proc")).unwrap();
        std::fs::write(dir.path().join("dev"), b"").unwrap();
        let err = check_kernel_dirs(&root, dir.path()).unwrap_err();
        assert!(err.to_string().contains("/dev is a regular file"), "{err}");
        std::fs::remove_file(dir.path().join("dev")).unwrap();
        check_kernel_dirs(&root, dir.path()).unwrap();
        for d in ["proc", "sys", "dev"] {
            assert!(dir.path().join(d).is_dir());
        }
    }
}
