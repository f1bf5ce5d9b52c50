//! Rootless mode: an ordinary user's `manifold` runs as root of a user namespace of its
//! own, with a mount namespace, for a command that mounts snapshots, runs runc or
//! touches files owned by subordinate ids.
//!
//! The namespaces are held by a pause process (`manifold __rootless-pause`, as podman
//! keeps one): util-linux's `unshare` makes them and, with Debian's `uidmap`
//! (`newuidmap`/`newgidmap`, the distribution's setuid helpers), maps the user to 0 and
//! the user's first `/etc/subuid` and `/etc/subgid` ranges to 1…N. Every later command
//! joins them with `setns(2)` (the owner of a user namespace may), which costs no
//! process and no exec. Without a subordinate range only the user's own id is mapped (a
//! warning says what that costs). manifold has no setuid helper of its own.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::render::Hinted;

/// The argument that makes `manifold` the pause process.
pub const PAUSE_ARG: &str = "__rootless-pause";

/// A user's subordinate id range from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub count: u64,
}

/// Enter the user namespace unless this process is already root (the host's, or a
/// namespace's). `warn` prints the single-id warning (commands that build or run).
/// Must run while the process has one thread (`setns` into a user namespace needs it).
pub fn enter(warn: bool) -> anyhow::Result<()> {
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        return Ok(());
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
    let ranges = subuid.zip(subgid);
    if ranges.is_none() && warn {
        let who = user.clone().unwrap_or_else(|| uid.to_string());
        eprintln!(
            "warning: no subordinate id range for {who} in /etc/subuid and /etc/subgid: \
             building with a single id, so files can belong only to root (0) in the \
             image; a step that needs another user or group fails. Fix: \
             sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}"
        );
    }
    let dir = content::identity::ensure_runtime_dir()
        .map_err(|e| anyhow::anyhow!("cannot use the runtime directory: {e}"))?;
    let _lock = content::lock::lock(&dir.join("pause.lock"), content::lock::Mode::Exclusive)
        .context("cannot lock the rootless namespace's pause file")?;
    let pid_file = dir.join("pause.pid");
    let existing = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|pid| is_our_pause(*pid, uid, ranges.is_some()));
    if let Some(pid) = existing
        && join(pid).is_ok()
    {
        return Ok(());
    }
    let pid = start_pause(ranges, &dir)?;
    content::atomic::write_atomic(&pid_file, format!("{pid}\n").as_bytes())
        .context("cannot record the rootless namespace's pause process")?;
    join(pid)
}

/// Whether `pid` is a pause process of this user whose namespace maps what the
/// subordinate files say now (a range added later needs a new namespace).
fn is_our_pause(pid: u32, uid: u32, with_range: bool) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(meta) = std::fs::metadata(&proc) else {
        return false;
    };
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let is_pause = cmdline
        .split(|b| *b == 0)
        .nth(1)
        .is_some_and(|a| a == PAUSE_ARG.as_bytes());
    let mapped: u64 = std::fs::read_to_string(proc.join("uid_map"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    meta.uid() == uid && is_pause && (mapped > 1) == with_range
}

/// Start the pause process in new user and mount namespaces (its messages in
/// `dir/pause.log`); returns its pid once its ids are mapped.
fn start_pause(ranges: Option<(Range, Range)>, dir: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    if !on_path("unshare") {
        bail!(Hinted::new(
            "rootless mode needs unshare(1), which is not on PATH",
            "install util-linux (apt-get install util-linux)",
        ));
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user"]);
    if let Some((u, g)) = ranges {
        if !on_path("newuidmap") || !on_path("newgidmap") {
            bail!(Hinted::new(
                "mapping the subordinate ids of /etc/subuid needs newuidmap and newgidmap, which are not on PATH",
                "install them: apt-get install uidmap",
            ));
        }
        cmd.arg(format!("--map-users={},1,{}", u.start, u.count))
            .arg(format!("--map-groups={},1,{}", g.start, g.count));
    }
    // `slave`: mounts the host makes later (a new disk, a tmpfs) are seen inside.
    cmd.args(["--mount", "--propagation", "slave", "--"]);
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program to start its namespace: {e}"))?;
    // What unshare (or newuidmap) says when it fails.
    let log_path = dir.join("pause.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let log_reader = log.try_clone().context("cannot reopen the pause log")?;
    let mut child = cmd
        .arg(exe)
        .arg(PAUSE_ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        // Its own process group: a terminal's Ctrl-C for this command does not end it.
        .process_group(0)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run unshare to make a user namespace: {e}"))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut said = String::new();
            {
                use std::io::{Read, Seek};
                let mut r = &log_reader;
                let _ = r.seek(std::io::SeekFrom::Start(0));
                let _ = r.take(4096).read_to_string(&mut said);
            }
            bail!(Hinted::new(
                format!(
                    "cannot make the rootless user namespace: unshare exited ({status}): {}",
                    said.trim()
                ),
                "check that unprivileged user namespaces are allowed (user.max_user_namespaces > 0) and that /etc/subuid and /etc/subgid give this user a valid range",
            ));
        }
        // The ids are mapped before unshare execs the pause program.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline
            .split(|b| *b == 0)
            .nth(1)
            .is_some_and(|a| a == PAUSE_ARG.as_bytes())
        {
            // Reaped by nobody once this command exits: it is the namespace's holder.
            std::mem::forget(child);
            return Ok(pid);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the rootless user namespace was not ready within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Move this process into the pause process's user and mount namespaces, keeping the
/// working directory.
fn join(pid: u32) -> anyhow::Result<()> {
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    let open = |ns: &str| {
        std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))
            .with_context(|| format!("cannot open the {ns} namespace of process {pid}"))
    };
    let (user_ns, mnt_ns) = (open("user")?, open("mnt")?);
    let cwd = std::env::current_dir().ok();
    move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&user_ns),
        Some(LinkNameSpaceType::User),
    )
    .context("cannot join the rootless user namespace")?;
    move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&mnt_ns),
        Some(LinkNameSpaceType::Mount),
    )
    .context("cannot join the rootless mount namespace")?;
    // Joining a mount namespace moves to its root directory.
    if let Some(cwd) = cwd {
        std::env::set_current_dir(&cwd).with_context(|| {
            format!(
                "the current directory {} is not visible in manifold's mount namespace",
                cwd.display()
            )
        })?;
    }
    Ok(())
}

/// The pause process: holds the namespaces, does nothing else, until killed.
pub fn pause() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
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
