//! Who this process is: root on the host, an ordinary user, or root of a user namespace
//! (manifold's rootless mode, entered by the `manifold` command through `unshare`).
//!
//! Read from `/proc/self/uid_map` and `gid_map`, never from the environment, so nothing a
//! caller sets can make a rootless process believe it owns the host.

use std::path::PathBuf;

/// How this process's ids relate to the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// In the host's user namespace; `uid` is the effective uid (0 for root).
    Host { uid: u32 },
    /// In a user namespace of its own: inside id 0 is the host's `outer_uid`/`outer_gid`;
    /// `uids`/`gids` ids are mapped in all (1 for a single-id mapping).
    Namespaced {
        outer_uid: u32,
        outer_gid: u32,
        uids: u64,
        gids: u64,
    },
}

impl Identity {
    /// Root of the host: the only identity that may touch host-wide state (`/run/runc`,
    /// `/var/lib/manifold`, binfmt_misc registrations, cgroups).
    pub fn is_host_root(&self) -> bool {
        matches!(self, Identity::Host { uid: 0 })
    }

    /// Running without the host's root: an ordinary user, or inside a user namespace.
    pub fn is_rootless(&self) -> bool {
        !self.is_host_root()
    }

    /// The host uid whose files and runtime directory this process uses.
    pub fn host_uid(&self) -> u32 {
        match self {
            Identity::Host { uid } => *uid,
            Identity::Namespaced { outer_uid, .. } => *outer_uid,
        }
    }

    /// Whether ids other than 0 exist in this namespace (a subordinate range was mapped).
    pub fn has_subordinate_ids(&self) -> bool {
        match self {
            Identity::Host { .. } => true,
            Identity::Namespaced { uids, gids, .. } => *uids > 1 && *gids > 1,
        }
    }
}

/// What this process may do to files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// The host's root: any owner, device nodes, `trusted.*` xattrs.
    HostRoot,
    /// Root of a user namespace with a subordinate id range: any mapped owner, no
    /// device nodes, no `trusted.*`.
    NamespaceRoot,
    /// An ordinary user, or a single-id namespace: every file is the caller's own.
    User,
}

/// This process's [`Privilege`].
pub fn privilege() -> Privilege {
    let id = identity();
    match id {
        Identity::Host { uid: 0 } => Privilege::HostRoot,
        Identity::Namespaced { .. }
            if rustix::process::geteuid().is_root() && id.has_subordinate_ids() =>
        {
            Privilege::NamespaceRoot
        }
        _ => Privilege::User,
    }
}

/// This process's identity, read each time: a process may join its user namespace
/// after it started (manifold's rootless mode does, with `setns`).
pub fn identity() -> Identity {
    let euid = rustix::process::geteuid().as_raw();
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let gid_map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    from_maps(euid, &uid_map, &gid_map)
}

/// An identity from an effective uid and the two map files.
pub fn from_maps(euid: u32, uid_map: &str, gid_map: &str) -> Identity {
    let parse = |map: &str| -> Vec<(u64, u64, u64)> {
        map.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace().map(|n| n.parse::<u64>().ok());
                Some((f.next()??, f.next()??, f.next()??))
            })
            .collect()
    };
    let (u, g) = (parse(uid_map), parse(gid_map));
    // The initial namespace maps everything onto itself; an unreadable map (no /proc)
    // is treated the same way.
    let initial = |m: &[(u64, u64, u64)]| m.is_empty() || m == [(0, 0, u64::from(u32::MAX))];
    if initial(&u) {
        return Identity::Host { uid: euid };
    }
    let outer_of_zero = |m: &[(u64, u64, u64)]| {
        m.iter()
            .find(|(inside, _, n)| *inside == 0 && *n > 0)
            .map(|(_, outside, _)| u32::try_from(*outside).unwrap_or(u32::MAX))
    };
    let total = |m: &[(u64, u64, u64)]| m.iter().map(|(_, _, n)| n).sum();
    Identity::Namespaced {
        outer_uid: outer_of_zero(&u).unwrap_or(u32::MAX),
        outer_gid: outer_of_zero(&g).unwrap_or(u32::MAX),
        uids: total(&u),
        gids: total(&g),
    }
}

/// The directory for sockets and runtime state of this identity: `/run/manifold` for
/// host root; else `$XDG_RUNTIME_DIR/manifold`, or `/tmp/manifold-<uid>` when
/// `XDG_RUNTIME_DIR` is unset (as `runuser` and `su` leave it).
pub fn runtime_dir() -> PathBuf {
    let id = identity();
    if id.is_host_root() {
        return PathBuf::from("/run/manifold");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("manifold"),
        None => std::env::temp_dir().join(format!("manifold-{}", id.host_uid())),
    }
}

/// [`runtime_dir`], made `0700` if missing, and refused unless it is this process's own
/// and closed to others (`/tmp` is shared: another user could have made the fallback
/// first, or put a symlink there).
pub fn ensure_runtime_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = runtime_dir();
    match std::fs::DirBuilder::new()
        .recursive(false)
        .mode(0o700)
        .create(&dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "the runtime directory {} is not this user's own private directory (owner uid {}, \
             mode {:o}); remove it, or set XDG_RUNTIME_DIR to a directory only you can use",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_namespace_is_the_host() {
        let all = "         0          0 4294967295\n";
        assert_eq!(from_maps(0, all, all), Identity::Host { uid: 0 });
        assert!(from_maps(0, all, all).is_host_root());
        assert!(from_maps(1000, all, all).is_rootless());
        assert_eq!(from_maps(1000, "", ""), Identity::Host { uid: 1000 });
    }

    #[test]
    fn a_subordinate_range_and_a_single_id() {
        let u = "0 1001 1\n1 100000 65536\n";
        let g = "0 1002 1\n1 200000 65536\n";
        let id = from_maps(0, u, g);
        assert_eq!(
            id,
            Identity::Namespaced {
                outer_uid: 1001,
                outer_gid: 1002,
                uids: 65537,
                gids: 65537
            }
        );
        assert!(id.is_rootless() && id.has_subordinate_ids());
        assert_eq!(id.host_uid(), 1001);
        let single = from_maps(0, "0 1001 1\n", "0 1001 1\n");
        assert!(single.is_rootless() && !single.has_subordinate_ids());
    }
}
