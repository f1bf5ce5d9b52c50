//! The default network of a rootless step: a network namespace of its own with a
//! user-mode network (`slirp4netns`) attached, as rootless BuildKit gives its steps.
//! Outbound connections leave through the user's own sockets; the host's loopback is
//! not reachable unless `MANIFOLD_ROOTLESS_HOST_LOOPBACK=1` maps it to 10.0.2.2.
//!
//! The namespace is held by a `sleep` that `unshare --net` started (the step joins it by
//! path); slirp4netns configures `tap0` (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3)
//! in it. Both are killed when the step is done. Without slirp4netns the step gets a
//! namespace with loopback only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to `1` to let rootless steps reach the host's 127.0.0.1 as 10.0.2.2.
pub const HOST_LOOPBACK_ENV: &str = "MANIFOLD_ROOTLESS_HOST_LOOPBACK";
/// Set to `none` for loopback-only rootless steps even when slirp4netns is installed.
pub const NET_ENV: &str = "MANIFOLD_ROOTLESS_NET";

/// The nameserver slirp4netns answers on inside the namespace.
pub const DNS: &str = "10.0.2.3";

/// A network namespace with slirp4netns attached; both go away on drop.
#[derive(Debug)]
pub(crate) struct UserNet {
    holder: Child,
    slirp: Child,
    path: PathBuf,
}

/// How long slirp4netns may take to configure the namespace.
const READY_WITHIN: Duration = Duration::from_secs(10);

impl UserNet {
    /// The user-mode network for a step, or `None` when slirp4netns is not installed
    /// (or turned off): the step then makes a namespace with loopback only.
    pub(crate) fn start() -> Result<Option<UserNet>, String> {
        if std::env::var(NET_ENV).is_ok_and(|v| v == "none") {
            return Ok(None);
        }
        let Some(slirp) = find("slirp4netns") else {
            return Ok(None);
        };
        // udev makes the tun device 0666 on Debian and Ubuntu; a host without udev may
        // leave it 0600, and slirp4netns would fail with a bare EACCES.
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
        {
            return Err(format!(
                "slirp4netns needs /dev/net/tun, which this user cannot open ({e}); make it \
                 usable by all as udev does (chmod 0666 /dev/net/tun), or set {NET_ENV}=none \
                 for steps without network"
            ));
        }
        let ours = std::fs::read_link("/proc/self/ns/net")
            .map_err(|e| format!("cannot read this process's network namespace: {e}"))?;
        let mut holder = Command::new("unshare")
            .args(["--net", "--", "sleep", "2147483647"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start unshare --net: {e}"))?;
        let pid = holder.id();
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let deadline = Instant::now() + READY_WITHIN;
        // unshare(2) happens before the exec of sleep: wait until the namespace differs.
        loop {
            if let Ok(Some(status)) = holder.try_wait() {
                return Err(format!("unshare --net exited early ({status})"));
            }
            if std::fs::read_link(&path).is_ok_and(|ns| ns != ours) {
                break;
            }
            if Instant::now() > deadline {
                let _ = holder.kill();
                let _ = holder.wait();
                return Err("unshare --net did not make a network namespace".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut cmd = Command::new(slirp);
        cmd.args(["--configure", "--mtu=65520"]);
        if std::env::var(HOST_LOOPBACK_ENV).map_or(true, |v| v != "1") {
            cmd.arg("--disable-host-loopback");
        }
        // Its messages go to an unnamed file (a pipe nobody reads could fill and stall it).
        let log = tempfile::tempfile().map_err(|e| format!("cannot make a log file: {e}"))?;
        let log_reader = log
            .try_clone()
            .map_err(|e| format!("cannot make a log file: {e}"))?;
        let slirp = cmd
            .arg(pid.to_string())
            .arg("tap0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn();
        let slirp = match slirp {
            Ok(s) => s,
            Err(e) => {
                let _ = holder.kill();
                let _ = holder.wait();
                return Err(format!("cannot start slirp4netns: {e}"));
            }
        };
        let mut net = UserNet {
            holder,
            slirp,
            path,
        };
        // Configured once the namespace has its default route.
        let route = PathBuf::from(format!("/proc/{pid}/net/route"));
        loop {
            if let Ok(Some(status)) = net.slirp.try_wait() {
                let mut said = String::new();
                {
                    use std::io::{Read, Seek};
                    let mut r = &log_reader;
                    let _ = r.seek(std::io::SeekFrom::Start(0));
                    let _ = r.take(4096).read_to_string(&mut said);
                }
                return Err(format!(
                    "slirp4netns exited early ({status}): {}",
                    said.trim()
                ));
            }
            if has_default_route(&route) {
                return Ok(Some(net));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "slirp4netns did not configure the step's network within {}s",
                    READY_WITHIN.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The namespace the step joins.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UserNet {
    fn drop(&mut self) {
        for c in [&mut self.slirp, &mut self.holder] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether `/proc/PID/net/route` lists a default route (destination 00000000).
fn has_default_route(route: &Path) -> bool {
    std::fs::read_to_string(route).is_ok_and(|t| {
        t.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
    })
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_route_is_found_in_the_route_table() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("route");
        let head = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n";
        std::fs::write(&f, format!("{head}tap0\t0002000A\t00000000\t0001\n")).unwrap();
        assert!(!has_default_route(&f));
        std::fs::write(&f, format!("{head}tap0\t00000000\t0202000A\t0003\n")).unwrap();
        assert!(has_default_route(&f));
        assert!(!has_default_route(&dir.path().join("missing")));
    }
}
