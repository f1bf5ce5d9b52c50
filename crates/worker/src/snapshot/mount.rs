//! Mounts: overlay through the new mount API (`fsopen`, `lowerdir+`, so the 4 KiB
//! option page never limits the chain), with `mount(2)` as the fallback, and
//! read-only bind mounts. A [`MountGuard`] unmounts on drop.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fd::OwnedFd;
use rustix::fs::{CWD, Mode, OFlags, open};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
    fsconfig_create, fsconfig_set_fd, fsconfig_set_string, fsmount, fsopen, mount, mount_bind,
    mount_remount, move_mount, unmount,
};

use super::error::SnapshotError;

type Result<T> = std::result::Result<T, SnapshotError>;

/// The option page of `mount(2)` holds 4095 bytes and a NUL.
const MAX_OPTIONS: usize = 4095;

/// Options that keep the upper dir expressible as a layer: no redirects, no
/// metacopy, and no inode index (lower dirs are shared between many mounts). Root of a
/// user namespace mounts with `userxattr` (overlay's xattrs in `user.overlay.*`, the
/// only ones it may set), which takes `redirect_dir=nofollow` (none made or followed)
/// in place of `off`.
fn features() -> &'static [(&'static str, &'static str)] {
    const HOST: &[(&str, &str)] = &[
        ("index", "off"),
        ("redirect_dir", "off"),
        ("metacopy", "off"),
    ];
    const NAMESPACED: &[(&str, &str)] = &[
        ("userxattr", ""),
        ("index", "off"),
        ("redirect_dir", "nofollow"),
        ("metacopy", "off"),
    ];
    if content::identity::identity().is_host_root() {
        HOST
    } else {
        NAMESPACED
    }
}

/// An active mount; unmounted on drop (lazily detached as a last resort).
#[derive(Debug)]
pub(crate) struct MountGuard {
    target: Option<PathBuf>,
}

impl MountGuard {
    /// Unmount now, reporting failure.
    pub fn unmount(mut self) -> Result<()> {
        let target = self
            .target
            .take()
            .expect("a guard has its target until unmounted");
        unmount_path(&target)
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Some(t) = self.target.take() {
            let _ = unmount_path(&t);
        }
    }
}

/// Unmount `target`, retrying a busy mount briefly, then detaching it.
pub(crate) fn unmount_path(target: &Path) -> Result<()> {
    for _ in 0..5 {
        match unmount(target, UnmountFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(Errno::BUSY) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(mount_err("unmount", target, e)),
        }
    }
    unmount(target, UnmountFlags::DETACH).map_err(|e| mount_err("detach", target, e))
}

fn mount_err(op: &'static str, path: &Path, e: Errno) -> SnapshotError {
    SnapshotError::Mount {
        op,
        path: path.to_owned(),
        source: io::Error::from(e),
    }
}

/// Where an overlay writes: `upperdir` and `workdir`. Without one the mount is
/// read-only (it then needs at least two lower dirs).
pub(crate) struct Upper<'a> {
    pub upper: &'a Path,
    pub work: &'a Path,
}

/// Mount an overlay at `target` through `fuse-overlayfs` (a FUSE daemon that stays
/// until the mount is unmounted); `lowers` is top-most first.
pub(crate) fn fuse_overlay(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> Result<MountGuard> {
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let mut opts = format!("lowerdir={}", lower.join(":"));
    if let Some(u) = &upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.upper.display(),
            u.work.display()
        ));
    }
    let out = std::process::Command::new("fuse-overlayfs")
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SnapshotError::Mount {
            op: "start fuse-overlayfs",
            path: target.to_owned(),
            source: e,
        })?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(SnapshotError::Mount {
            op: "mount fuse-overlayfs",
            path: target.to_owned(),
            source: io::Error::other(format!("{}: {}", out.status, said.trim())),
        });
    }
    Ok(MountGuard {
        target: Some(target.to_owned()),
    })
}

/// Mount an overlay at `target`; `lowers` is top-most first.
pub(crate) fn overlay(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> Result<MountGuard> {
    match overlay_fsopen(lowers, upper.as_ref(), target) {
        Ok(()) => {}
        // Older kernels: no new mount API, or no `lowerdir+` (before 6.8).
        Err(Errno::NOSYS | Errno::INVAL | Errno::PERM) => {
            overlay_legacy(lowers, upper.as_ref(), target)?
        }
        Err(e) => return Err(mount_err("mount overlay", target, e)),
    }
    Ok(MountGuard {
        target: Some(target.to_owned()),
    })
}

fn overlay_fsopen(
    lowers: &[PathBuf],
    upper: Option<&Upper<'_>>,
    target: &Path,
) -> rustix::io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "source", "manifold")?;
    for l in lowers {
        set_dir(&fs, "lowerdir+", l)?;
    }
    if let Some(u) = upper {
        set_dir(&fs, "upperdir", u.upper)?;
        set_dir(&fs, "workdir", u.work)?;
    }
    for &(k, v) in features() {
        if v.is_empty() {
            rustix::mount::fsconfig_set_flag(&fs, k)?;
        } else {
            fsconfig_set_string(&fs, k, v)?;
        }
    }
    fsconfig_create(&fs)?;
    let attrs = if upper.is_none() {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// Pass a directory to overlay as an fd (6.13 and later: no length limit), else as
/// a string (`fsconfig` copies at most 256 bytes of one).
fn set_dir(fs: &OwnedFd, key: &str, dir: &Path) -> rustix::io::Result<()> {
    let fd = open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match fsconfig_set_fd(fs, key, &fd) {
        Err(Errno::INVAL) if dir.as_os_str().len() < 256 => fsconfig_set_string(fs, key, dir),
        r => r,
    }
}

fn overlay_legacy(lowers: &[PathBuf], upper: Option<&Upper<'_>>, target: &Path) -> Result<()> {
    let bad = |p: &Path| {
        let s = p.to_string_lossy();
        s.contains([':', ',', '\\']) || s.contains('=')
    };
    let mut all: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    if let Some(u) = upper {
        all.extend([u.upper, u.work]);
    }
    if let Some(p) = all.iter().find(|p| bad(p)) {
        return Err(mount_err(
            "mount overlay with a lower dir named",
            p,
            Errno::INVAL,
        ));
    }
    let lower: Vec<String> = lowers
        .iter()
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    let mut opts = format!("lowerdir={}", lower.join(":"));
    if let Some(u) = upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.upper.display(),
            u.work.display()
        ));
    }
    for &(k, v) in features() {
        if v.is_empty() {
            opts.push_str(&format!(",{k}"));
        } else {
            opts.push_str(&format!(",{k}={v}"));
        }
    }
    if opts.len() > MAX_OPTIONS {
        return Err(SnapshotError::Mount {
            op: "mount overlay",
            path: target.to_owned(),
            source: io::Error::other(format!(
                "{} lower dirs need {} bytes of options, past the kernel's {MAX_OPTIONS}",
                lowers.len(),
                opts.len()
            )),
        });
    }
    let flags = if upper.is_none() {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let data = std::ffi::CString::new(opts).map_err(|e| SnapshotError::Mount {
        op: "mount overlay",
        path: target.to_owned(),
        source: io::Error::other(e),
    })?;
    mount("manifold", target, "overlay", flags, Some(data.as_c_str()))
        .map_err(|e| mount_err("mount overlay", target, e))
}

/// Bind `src` read-only at `target`.
pub(crate) fn bind_ro(src: &Path, target: &Path) -> Result<MountGuard> {
    mount_bind(src, target).map_err(|e| mount_err("bind mount", target, e))?;
    let guard = MountGuard {
        target: Some(target.to_owned()),
    };
    mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")
        .map_err(|e| mount_err("remount read-only", target, e))?;
    Ok(guard)
}
