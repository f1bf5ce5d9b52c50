//! A private Docker Engine (Debian's 20.10 `dockerd`) for tests: its own data root,
//! exec root, socket and client config under one directory in /tmp, vfs storage, no
//! bridge and no iptables rules, so it touches nothing of the machine's docker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A dockerd with its own data root, exec root, socket and client config, all under
/// one directory. Stopped, unmounted and removed on drop, also when a test fails.
#[derive(Debug)]
pub struct Dockerd {
    child: Child,
    dir: PathBuf,
    client: PathBuf,
}

impl Dockerd {
    /// Start a daemon and wait until it answers (60 s at most).
    pub fn start() -> Dockerd {
        let dockerd = crate::require_tool("dockerd");
        // Short path: the socket's must fit in sun_path.
        let dir = tempfile::Builder::new()
            .prefix("mf-dockerd-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        for sub in ["data", "exec", "config"] {
            std::fs::create_dir(dir.join(sub)).unwrap();
        }
        // An empty daemon.json of its own: the machine's /etc/docker does not apply.
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("sock").display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--storage-driver=vfs",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // The client that comes with the daemon (a newer one may be first on PATH).
        let client = Some(PathBuf::from("/usr/bin/docker"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| crate::require_tool("docker"));
        let mut d = Dockerd { child, dir, client };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("dockerd exited ({status}):\n{}", d.log());
            }
            if d.docker(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer in 60 s:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    /// `DOCKER_HOST` for this daemon (`unix://…/sock`), for a program that runs
    /// `docker` itself.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("sock").display())
    }

    /// `DOCKER_CONFIG` for this daemon's private client configuration.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// The daemon's own client (`/usr/bin/docker`) pointed at this daemon and its
    /// private config; add arguments, environment and stdio.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.client);
        c.arg("--config")
            .arg(self.config_dir())
            .arg("-H")
            .arg(self.host());
        c
    }

    /// Run docker with `stdin` as its input.
    pub fn docker_with(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Run docker with no input.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_with(args, "")
    }

    /// Run docker; its stdout, or a panic with its stderr and the daemon's log.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}\n{}\ndockerd log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd and undo its mounts.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let pidfile = self.dir.join("exec/containerd/containerd.pid");
                if let Ok(pid) = std::fs::read_to_string(pidfile) {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever is still mounted under the directory, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}
