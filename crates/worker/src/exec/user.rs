//! `USER` → uid, gid and supplementary groups, from the root filesystem's `/etc/passwd`
//! and `/etc/group`. Both are read in-root, capped and only if they are regular files
//! (SECURITY case 33).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::rootfs::{self, ReadError};

/// The most of `/etc/passwd` or `/etc/group` that is read.
pub const MAX_ID_FILE_BYTES: u64 = 1 << 20;

/// Who a step runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Why `USER` could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    #[error("unable to find user {user}: no matching entries in /etc/passwd of {rootfs}")]
    UnknownUser { user: String, rootfs: PathBuf },
    #[error("unable to find group {group}: no matching entries in /etc/group of {rootfs}")]
    UnknownGroup { group: String, rootfs: PathBuf },
    #[error("cannot resolve user {user} in {rootfs}")]
    IdFile {
        user: String,
        rootfs: PathBuf,
        #[source]
        source: IdFileError,
    },
}

/// A passwd or group file that may not be read.
pub type IdFileError = ReadError;

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.trim().parse().ok()?,
                gid: f.get(3)?.trim().parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolve `spec` (`name`, `uid`, `name:group`, `uid:gid`; empty is root) against the
/// files' contents (`None`: the file does not exist).
///
/// As in runc: a numeric user is a uid even if some user is named like the number, and
/// its gid comes from its passwd entry (0 without one); a name must exist. The
/// supplementary groups hold the primary group (as containerd and BuildKit set them:
/// busybox `id` prints `groups=1234(builder)`), then, without an explicit group, the
/// groups listing the user's name.
fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
    rootfs: &std::path::Path,
) -> Result<ExecUser, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();
    let entry = match user.parse::<u32>() {
        Ok(uid) => users
            .iter()
            .find(|e| e.uid == uid)
            .cloned()
            .or(Some(PasswdEntry {
                name: String::new(),
                uid,
                gid: 0,
            })),
        Err(_) => users.iter().find(|e| e.name == user).cloned(),
    };
    let entry = entry.ok_or_else(|| UserError::UnknownUser {
        user: user.to_owned(),
        rootfs: rootfs.to_owned(),
    })?;
    let (gid, additional_gids) = match grp {
        Some(g) if !g.is_empty() => {
            let gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| UserError::UnknownGroup {
                        group: g.to_owned(),
                        rootfs: rootfs.to_owned(),
                    })?,
            };
            (gid, vec![gid])
        }
        _ => {
            // The primary group first, as containerd and BuildKit set them.
            let mut extra = vec![entry.gid];
            for g in groups
                .iter()
                .filter(|g| !entry.name.is_empty() && g.members.contains(&entry.name))
            {
                if !extra.contains(&g.gid) {
                    extra.push(g.gid);
                }
            }
            (entry.gid, extra)
        }
    };
    Ok(ExecUser {
        uid: entry.uid,
        gid,
        additional_gids,
    })
}

/// Resolve `spec` in the root filesystem opened as `root` (at `rootfs`).
pub(crate) fn resolve_in(
    root: &OwnedFd,
    rootfs: &std::path::Path,
    spec: &str,
) -> Result<ExecUser, UserError> {
    let read = |path: &str| {
        rootfs::read_capped(root, path, MAX_ID_FILE_BYTES).map_err(|source| UserError::IdFile {
            user: spec.to_owned(),
            rootfs: rootfs.to_owned(),
            source,
        })
    };
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    let text = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    resolve(
        spec,
        text(&passwd).as_deref(),
        text(&group).as_deref(),
        rootfs,
    )
}

/// Resolve `spec` against the root filesystem at `rootfs`.
pub fn resolve_user(rootfs: &std::path::Path, spec: &str) -> Result<ExecUser, super::ExecError> {
    let root = rootfs::open_root(rootfs)?;
    Ok(resolve_in(&root, rootfs, spec)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # comment\n\
                          1000:x:4242:4242::/:/bin/sh\n\
                          app:x:1000:1000::/home/app:/bin/sh\n\
                          broken line\n\
                          nobody:x:65534:65534::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nstaff:x:50: app \n";

    fn check(spec: &str) -> Result<ExecUser, UserError> {
        resolve(spec, Some(PASSWD), Some(GROUP), Path::new("/r"))
    }

    fn user(uid: u32, gid: u32, extra: &[u32]) -> ExecUser {
        ExecUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
        }
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(check("").unwrap(), user(0, 0, &[0, 10]));
        assert_eq!(check("app").unwrap(), user(1000, 1000, &[1000, 10, 50]));
        // Numeric is a uid, never the user named "1000" (SECURITY case 33).
        assert_eq!(check("1000").unwrap(), user(1000, 1000, &[1000, 10, 50]));
        assert_eq!(check("4242").unwrap(), user(4242, 4242, &[4242]));
        assert_eq!(check("4243").unwrap(), user(4243, 0, &[0]));
        assert_eq!(check("app:staff").unwrap(), user(1000, 50, &[50]));
        assert_eq!(check("app:7").unwrap(), user(1000, 7, &[7]));
        assert_eq!(check("65534").unwrap(), user(65534, 65534, &[65534]));
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = check("ghost").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user ghost: no matching entries in /etc/passwd of /r"
        );
        assert!(matches!(
            check("app:ghosts"),
            Err(UserError::UnknownGroup { .. })
        ));
        assert!(matches!(check("-1"), Err(UserError::UnknownUser { .. })));
        // No passwd at all: numbers still work, names do not.
        let p = Path::new("/r");
        assert_eq!(resolve("5", None, None, p).unwrap(), user(5, 0, &[0]));
        assert!(resolve("app", None, None, p).is_err());
    }
}
