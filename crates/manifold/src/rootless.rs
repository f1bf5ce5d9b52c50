//! Rootless mode: an ordinary user's `manifold` re-executes itself as root of a user
//! namespace of its own, with a mount namespace, before a command that mounts
//! snapshots, runs runc or touches files owned by subordinate ids.
//!
//! util-linux's `unshare` makes the namespaces and, with Debian's `uidmap`
//! (`newuidmap`/`newgidmap`, the distribution's setuid helpers), maps the user to 0 and
//! the user's first `/etc/subuid` and `/etc/subgid` ranges to 1…N; then it execs this
//! binary again with the same arguments, as the same process. Without a subordinate
//! range only the user's own id is mapped (a warning says what that costs). manifold has
//! no setuid helper of its own.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::render::Hinted;

/// Set in the re-executed process, so that a namespace that did not give it root ends
/// in an error instead of a loop.
const ENTERED: &str = "MANIFOLD_ROOTLESS_ENTERED";

/// A user's subordinate id range from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub count: u64,
}

/// Enter the user namespace unless this process is already root (the host's, or a
/// namespace's). `warn` prints the single-id warning (commands that build or run).
pub fn enter(warn: bool) -> anyhow::Result<()> {
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        return Ok(());
    }
    if std::env::var_os(ENTERED).is_some() {
        bail!(Hinted::new(
            "the user namespace manifold made did not give it root",
            "check that unprivileged user namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)",
        ));
    }
    let uid = euid.as_raw();
    let gid = rustix::process::getegid().as_raw();
    let user = user_name(uid);
    let subuid = user
        .as_deref()
        .and_then(|u| subordinate(Path::new("/etc/subuid"), u, uid));
    let subgid = user
        .as_deref()
        .and_then(|u| subordinate(Path::new("/etc/subgid"), u, gid));
    if !on_path("unshare") {
        bail!(Hinted::new(
            "rootless mode needs unshare(1), which is not on PATH",
            "install util-linux (apt-get install util-linux)",
        ));
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user"]);
    match (subuid, subgid) {
        (Some(u), Some(g)) => {
            if !on_path("newuidmap") || !on_path("newgidmap") {
                bail!(Hinted::new(
                    "mapping the subordinate ids of /etc/subuid needs newuidmap and newgidmap, which are not on PATH",
                    "install them: apt-get install uidmap",
                ));
            }
            cmd.arg(format!("--map-users={},1,{}", u.start, u.count))
                .arg(format!("--map-groups={},1,{}", g.start, g.count));
        }
        _ if warn => {
            let who = user.clone().unwrap_or_else(|| uid.to_string());
            eprintln!(
                "warning: no subordinate id range for {who} in /etc/subuid and /etc/subgid: \
                 building with a single id, so files can belong only to root (0) in the \
                 image; a step that needs another user or group fails. Fix: \
                 sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}"
            );
        }
        _ => {}
    }
    cmd.args(["--mount", "--propagation", "private", "--"]);
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program to re-run it: {e}"))?;
    cmd.arg(exe);
    cmd.args(std::env::args_os().skip(1).collect::<Vec<OsString>>());
    cmd.env(ENTERED, "1");
    let err = cmd.exec();
    bail!("cannot run unshare to enter a user namespace: {err}")
}

/// Rootless, the runtime directory (runc's state, the daemon's socket) must be the
/// user's own and private before anything is put in it.
pub fn check_runtime_dir() -> anyhow::Result<()> {
    if content::identity::identity().is_rootless() {
        content::identity::ensure_runtime_dir()
            .map_err(|e| anyhow::anyhow!("cannot use the runtime directory: {e}"))?;
    }
    Ok(())
}

/// The name of `uid` in `/etc/passwd`, if it has one.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}

/// The first range of `/etc/subuid`-style `file` for `name` or the numeric `id`.
fn subordinate(file: &Path, name: &str, id: u32) -> Option<Range> {
    parse_subordinate(&std::fs::read_to_string(file).ok()?, name, id)
}

fn parse_subordinate(text: &str, name: &str, id: u32) -> Option<Range> {
    let id = id.to_string();
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let who = f.next()?;
        let start = f.next()?.parse::<u64>().ok()?;
        let count = f.next()?.parse::<u64>().ok()?;
        ((who == name || who == id) && count > 0).then_some(Range { start, count })
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(program)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let text = "alice:100000:65536\n1002:200000:1000\nbob:300000:0\n";
        assert_eq!(
            parse_subordinate(text, "alice", 1001),
            Some(Range {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            parse_subordinate(text, "carol", 1002),
            Some(Range {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(parse_subordinate(text, "bob", 1003), None);
        assert_eq!(parse_subordinate("garbage\n", "alice", 1), None);
    }
}
