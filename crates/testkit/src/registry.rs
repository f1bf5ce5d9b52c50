//! The distribution registry (Debian's `docker-registry`) started for one test on a
//! free loopback port, stopped and removed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::require_tool;

/// How the registry authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    Open,
    /// htpasswd Basic auth with one user.
    Basic {
        user: String,
        password: String,
    },
    /// Token auth: the registry trusts tokens signed by the key whose certificate is
    /// at `root_cert_bundle`, issued by `issuer` for `service`, obtained at `realm`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        root_cert_bundle: PathBuf,
    },
}

/// A running distribution registry.
#[derive(Debug)]
pub struct DistRegistry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`
    pub addr: String,
}

/// A free TCP port on `ip` (bound and released; the registry binds it next).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl DistRegistry {
    pub fn start(auth: Auth) -> DistRegistry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port("127.0.0.1");
        let addr = format!("127.0.0.1:{port}");
        let auth_yaml = match &auth {
            Auth::Open => String::new(),
            Auth::Basic { user, password } => {
                let htpasswd = require_tool("htpasswd");
                let out = Command::new(htpasswd)
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("run htpasswd");
                assert!(out.status.success(), "htpasswd failed");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, out.stdout).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    file.display()
                )
            }
            Auth::Token {
                realm,
                service,
                issuer,
                root_cert_bundle,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                root_cert_bundle.display()
            ),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  secret: manifold-test-secret\n{auth_yaml}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = DistRegistry { child, dir, addr };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && buf.starts_with(b"HTTP/1.")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not start on {}; log:\n{}",
            self.addr,
            self.log()
        );
    }

    /// What the registry logged so far (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps its data.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DistRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `manifold registry serve` (the binary `manifold`) on a free loopback port, with
/// a root of its own; killed on drop.
#[derive(Debug)]
pub struct OwnRegistry {
    child: Child,
    /// `127.0.0.1:<port>`
    pub addr: String,
    _root: tempfile::TempDir,
}

impl OwnRegistry {
    pub fn start(manifold: &Path) -> OwnRegistry {
        use std::io::BufRead;
        let root = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(manifold)
            .arg("--root")
            .arg(root.path())
            .args(["registry", "serve", "--addr", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start manifold registry serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the listen line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|l| l.strip_suffix(" (http)"))
            .unwrap_or_else(|| panic!("not a listen line: {line:?}"))
            .to_owned();
        OwnRegistry {
            child,
            addr,
            _root: root,
        }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
