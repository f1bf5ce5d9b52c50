//! The default network of a rootless step: a network namespace of its own with a
//! user-mode network attached (`slirp4netns`, else `pasta`), as rootless BuildKit gives
//! its steps. Outbound connections leave through the user's own sockets; the host's
//! loopback is not reachable unless `MANIFOLD_ROOTLESS_HOST_LOOPBACK=1` maps it to the
//! gateway address (10.0.2.2 with slirp4netns).
//!
//! The namespace is held by a capability-less `sleep` that `unshare --net` started (the
//! step joins it by path). slirp4netns configures `tap0` (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3)
//! in it; pasta copies the host's addresses and routes onto `tap0`, with no port
//! forwarded either way. Both processes are killed when the step is done. Without
//! either tool (or with `MANIFOLD_ROOTLESS_NET=none`) the step gets a namespace with
//! loopback only; `MANIFOLD_ROOTLESS_NET=slirp4netns|pasta` picks one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to `1` to let rootless steps reach the host's 127.0.0.1 as 10.0.2.2.
pub const HOST_LOOPBACK_ENV: &str = "MANIFOLD_ROOTLESS_HOST_LOOPBACK";
/// `none` for loopback-only rootless steps, `slirp4netns` or `pasta` to pick the tool
/// (default: slirp4netns when installed, else pasta).
pub const NET_ENV: &str = "MANIFOLD_ROOTLESS_NET";

/// The nameserver slirp4netns answers on inside the namespace.
pub const DNS: &str = "10.0.2.3";

/// A network namespace with slirp4netns attached; both go away on drop.
#[derive(Debug)]
pub(crate) struct UserNet {
    holder: Child,
    tool: Child,
    path: PathBuf,
    nameserver: Option<&'static str>,
}

/// The user-mode network programs manifold drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Slirp4netns,
    Pasta,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Slirp4netns => "slirp4netns",
            Tool::Pasta => "pasta",
        }
    }

    /// The command that attaches the network to the namespace held by `pid`.
    fn command(self, program: &Path, pid: u32, host_loopback: bool) -> Command {
        let mut cmd = Command::new(program);
        match self {
            Tool::Slirp4netns => {
                cmd.args(["--configure", "--mtu=65520"]);
                if !host_loopback {
                    cmd.arg("--disable-host-loopback");
                }
                cmd.arg(pid.to_string()).arg("tap0");
            }
            Tool::Pasta => {
                // In the foreground (killed with the step), no port forwarded in either
                // direction, the gateway mapped to the host's loopback only when asked.
                cmd.args([
                    "--config-net",
                    "--foreground",
                    "--quiet",
                    "--ns-ifname",
                    "tap0",
                ])
                .args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"]);
                if !host_loopback {
                    cmd.arg("--no-map-gw");
                }
                // The namespace by path, staying in this user namespace (pasta would
                // otherwise try to join the holder's, which it is in already).
                cmd.arg("--netns")
                    .arg(format!("/proc/{pid}/ns/net"))
                    .arg("--netns-only");
            }
        }
        cmd
    }
}

/// How long the tool may take to configure the namespace.
const READY_WITHIN: Duration = Duration::from_secs(10);

impl UserNet {
    /// The user-mode network for a step, or `None` when neither tool is installed (or
    /// the network is turned off): the step then makes a namespace with loopback only.
    pub(crate) fn start() -> Result<Option<UserNet>, String> {
        let (tool, program) = match std::env::var(NET_ENV).as_deref() {
            Ok("none") => return Ok(None),
            Ok(name @ ("slirp4netns" | "pasta")) => {
                let tool = if name == "pasta" {
                    Tool::Pasta
                } else {
                    Tool::Slirp4netns
                };
                let program = find(name)
                    .ok_or_else(|| format!("{NET_ENV}={name}, but {name} is not on PATH"))?;
                (tool, program)
            }
            Ok(other) if !other.is_empty() => {
                return Err(format!(
                    "{NET_ENV}={other} names no network (want none, slirp4netns or pasta)"
                ));
            }
            _ => match (find("slirp4netns"), find("pasta")) {
                (Some(p), _) => (Tool::Slirp4netns, p),
                (None, Some(p)) => (Tool::Pasta, p),
                (None, None) => return Ok(None),
            },
        };
        let name = tool.name();
        // udev makes the tun device 0666 on Debian and Ubuntu; a host without udev may
        // leave it 0600, and slirp4netns would fail with a bare EACCES.
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
        {
            return Err(format!(
                "{name} needs /dev/net/tun, which this user cannot open ({e}); make it \
                 usable by all as udev does (chmod 0666 /dev/net/tun), or set {NET_ENV}=none \
                 for steps without network"
            ));
        }
        let ours = std::fs::read_link("/proc/self/ns/net")
            .map_err(|e| format!("cannot read this process's network namespace: {e}"))?;
        // The holder keeps no capabilities: pasta, which drops its own, may then open
        // the holder's namespace files (same uid, and a subset of the target's caps).
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "--",
                "setpriv",
                "--bounding-set=-all",
                "--inh-caps=-all",
            ])
            .args(["--", "sleep", "2147483647"])
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
        let host_loopback = std::env::var(HOST_LOOPBACK_ENV).is_ok_and(|v| v == "1");
        // Its messages go to an unnamed file (a pipe nobody reads could fill and stall it).
        let log = tempfile::tempfile().map_err(|e| format!("cannot make a log file: {e}"))?;
        let log_reader = log
            .try_clone()
            .map_err(|e| format!("cannot make a log file: {e}"))?;
        let started = tool
            .command(&program, pid, host_loopback)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn();
        let child = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = holder.kill();
                let _ = holder.wait();
                return Err(format!("cannot start {name}: {e}"));
            }
        };
        let mut net = UserNet {
            holder,
            tool: child,
            path,
            nameserver: (tool == Tool::Slirp4netns).then_some(DNS),
        };
        // Configured once the namespace has its default route.
        let route = PathBuf::from(format!("/proc/{pid}/net/route"));
        loop {
            if let Ok(Some(status)) = net.tool.try_wait() {
                let mut said = String::new();
                {
                    use std::io::{Read, Seek};
                    let mut r = &log_reader;
                    let _ = r.seek(std::io::SeekFrom::Start(0));
                    let _ = r.take(4096).read_to_string(&mut said);
                }
                return Err(format!("{name} exited early ({status}): {}", said.trim()));
            }
            if has_default_route(&route) {
                return Ok(Some(net));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} did not configure the step's network within {}s",
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

    /// The nameserver the tool answers on in the namespace (slirp4netns's forwarder);
    /// `None`: the host's nameservers are reachable as they are (pasta).
    pub(crate) fn nameserver(&self) -> Option<&'static str> {
        self.nameserver
    }
}

impl Drop for UserNet {
    fn drop(&mut self) {
        for c in [&mut self.tool, &mut self.holder] {
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
