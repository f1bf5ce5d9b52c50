//! A `manifold daemon` as a separate process for tests: its own state root, config
//! and socket under one temporary directory, as a separate host would have.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Mutual TLS files for a daemon listening on TCP.
#[derive(Debug, Clone, Copy)]
pub struct Tls<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// A running daemon; stopped (TERM, then KILL after 10 s) on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// A daemon of the binary `manifold` on a unix socket, whose store holds a
    /// busybox base for `arches` named `base` (none when `arches` is empty).
    pub fn start(manifold: &Path, base: &str, arches: &[&str]) -> Daemon {
        Daemon::start_at(manifold, base, arches, None)
    }

    /// A daemon on a unix socket with an empty store, started with `args` after
    /// `daemon --addr …` (in them, `{dir}` is the daemon's temporary directory).
    pub fn start_with(manifold: &Path, args: &[&str]) -> Daemon {
        Daemon::spawn(manifold, "", &[], None, args)
    }

    /// The same, listening on `tcp://ADDR` with mutual TLS when `tcp` is given.
    pub fn start_at(
        manifold: &Path,
        base: &str,
        arches: &[&str],
        tcp: Option<(&str, Tls<'_>)>,
    ) -> Daemon {
        Daemon::spawn(manifold, base, arches, tcp, &[])
    }

    fn spawn(
        manifold: &Path,
        base: &str,
        arches: &[&str],
        tcp: Option<(&str, Tls<'_>)>,
        extra: &[&str],
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        if !arches.is_empty() {
            crate::base::busybox_index(&dir.path().join("root"), base, arches);
        }
        let sock = dir.path().join("d.sock");
        let mut cmd = Command::new(manifold);
        match tcp {
            None => {
                cmd.args(["daemon", "--addr", &format!("unix://{}", sock.display())]);
            }
            Some((addr, tls)) => {
                cmd.args(["daemon", "--addr", &format!("tcp://{addr}")])
                    .arg("--tls-ca")
                    .arg(tls.ca)
                    .arg("--tls-cert")
                    .arg(tls.cert)
                    .arg("--tls-key")
                    .arg(tls.key);
            }
        }
        let here = dir.path().display().to_string();
        cmd.args(extra.iter().map(|a| a.replace("{dir}", &here)));
        let child = cmd
            .env("MANIFOLD_ROOT", dir.path().join("root"))
            .env("MANIFOLD_CONFIG", dir.path().join("config"))
            .env_remove("MANIFOLD_RUNTIME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let up = || match tcp {
            None => sock.exists(),
            Some((addr, _)) => std::net::TcpStream::connect(addr).is_ok(),
        };
        while !up() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { child, dir }
    }

    /// Stop the daemon (as a crash would: SIGKILL) and start it again on the same
    /// root, config and socket, unix socket only.
    pub fn restart(&mut self, manifold: &Path) {
        self.kill();
        self.start_again(manifold);
    }

    /// Stop the daemon as a crash would (SIGKILL); [`Daemon::start_again`] brings it
    /// back. What is on disk can be damaged in between.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a daemon again on the same root, config and socket (unix socket only),
    /// its stderr going to [`Daemon::stderr`].
    pub fn start_again(&mut self, manifold: &Path) {
        let sock = self.socket();
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(self.dir.path().join("daemon.stderr")).unwrap();
        self.child = Command::new(manifold)
            .args(["daemon", "--addr", &format!("unix://{}", sock.display())])
            .env("MANIFOLD_ROOT", self.root())
            .env("MANIFOLD_CONFIG", self.config())
            .env_remove("MANIFOLD_RUNTIME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the daemon did not start again"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the daemon started by [`Daemon::start_again`] wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.stderr")).unwrap_or_default()
    }

    /// The unix socket it listens on (when not on TCP).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("d.sock")
    }

    /// `unix://…/d.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The daemon's temporary directory (its root, config and socket are in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's state root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The daemon's config directory (`MANIFOLD_CONFIG`).
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// How many contents the daemon has received from clients.
    pub fn received(&self) -> usize {
        std::fs::read_dir(self.root().join("remote/files"))
            .map(|r| r.count())
            .unwrap_or(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        );
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
