//! What `inspect` and `ls` report about a builder instance's nodes: this host for
//! local ones (platforms through binfmt_misc, the state root, the OCI runtime), a
//! daemon's [`crate::info`] for the rest.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci::Platform;
use worker::binfmt::{self, RunsHow};

use crate::Endpoint;
use crate::instances::{Driver, Node, TlsPaths};

/// How long `inspect` and `ls` wait for a daemon's answer.
const INFO_TIMEOUT: Duration = Duration::from_secs(20);

/// A node's state, as `inspect` and `ls` show it.
#[derive(Debug)]
pub enum Status {
    Running,
    /// Not set up yet (local: no state root; `--bootstrap` creates it).
    Inactive,
    Error(String),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Running => f.write_str("running"),
            Status::Inactive => f.write_str("inactive"),
            Status::Error(e) => write!(f, "error: {e}"),
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub status: Status,
    pub version: Option<String>,
    /// Platforms the node runs, native first, then emulated.
    pub detected: Vec<String>,
    pub cache_bytes: Option<u64>,
    pub snapshotter: Option<String>,
    pub running: Option<u32>,
}

/// Looks at nodes: this host for local ones (once), daemons for remote ones.
#[derive(Debug)]
pub struct Probe {
    /// The local driver's state root, or why there is none.
    root: Result<PathBuf, String>,
    /// The OCI runtime local builds use (a name looked up on `PATH`, or a path).
    runtime: PathBuf,
    host_platforms: std::sync::OnceLock<Vec<String>>,
}

impl Probe {
    pub fn new(root: Result<PathBuf, String>, runtime: PathBuf) -> Probe {
        Probe {
            root,
            runtime,
            host_platforms: std::sync::OnceLock::new(),
        }
    }

    /// One report per node, in order; remote nodes are asked concurrently.
    pub async fn reports(&self, nodes: &[(Driver, &Node)], bootstrap: bool) -> Vec<Report> {
        let remote: Vec<(Endpoint, Option<TlsPaths>)> = nodes
            .iter()
            .filter(|(d, _)| *d == Driver::Remote)
            .filter_map(|(_, n)| Some((n.endpoint.clone()?, n.tls.clone())))
            .collect();
        let mut answers = remote_reports(remote).await.into_iter();
        nodes
            .iter()
            .map(|(driver, node)| match (driver, &node.endpoint) {
                (Driver::Remote, Some(_)) => answers.next().expect("one answer per remote node"),
                _ => self.local(bootstrap),
            })
            .collect()
    }

    /// The local driver: this host's platforms (binfmt), the state root, runc.
    fn local(&self, bootstrap: bool) -> Report {
        let detected = self.host_platforms.get_or_init(host_platforms).clone();
        let mut report = Report {
            status: Status::Running,
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            detected,
            cache_bytes: None,
            snapshotter: None,
            running: None,
        };
        let root = match &self.root {
            Ok(r) => r,
            Err(e) => {
                report.status = Status::Error(format!("no state root: {e}"));
                return report;
            }
        };
        let exists = root.join("oci").join("index.json").is_file();
        if exists || bootstrap {
            match content::Store::open(root).and_then(|s| s.usage()) {
                Ok(u) => {
                    report.cache_bytes = Some(u.bytes + u.ingest_bytes);
                    // The driver this root uses (detected once per root, then kept).
                    report.snapshotter = Some(match worker::snapshot::detect(root) {
                        Ok(s) => s.driver().name().to_owned(),
                        Err(e) => format!("none ({e})"),
                    });
                }
                Err(e) => {
                    report.status = Status::Error(format!(
                        "cannot open the state root {}: {}",
                        root.display(),
                        oci::error_chain(&e)
                    ));
                    return report;
                }
            }
        } else {
            report.status = Status::Inactive;
        }
        if let Err(e) = find_runtime(&self.runtime) {
            report.status = Status::Error(e);
        }
        report
    }
}

/// Platforms this host runs: native and compatible first, then emulated.
fn host_platforms() -> Vec<String> {
    let (mut native, emulated) = host_platforms_by_kind();
    native.extend(emulated);
    native
}

/// Platforms this host runs natively (or compatibly, like 386 on amd64), and those
/// it runs under QEMU.
pub fn host_platforms_by_kind() -> (Vec<String>, Vec<String>) {
    let mut native = Vec::new();
    let mut emulated = Vec::new();
    for s in binfmt::list() {
        match s.runs {
            Ok(RunsHow::Emulated { .. }) => emulated.push(s.platform.to_string()),
            Ok(_) => native.push(s.platform.to_string()),
            Err(_) => {}
        }
    }
    (native, emulated)
}

/// The OCI runtime builds use is there: `runtime` as a path, or found on `PATH`.
fn find_runtime(runtime: &Path) -> Result<PathBuf, String> {
    if runtime.components().count() > 1 {
        return if is_executable(runtime) {
            Ok(runtime.to_owned())
        } else {
            Err(format!(
                "OCI runtime {} is not an executable file",
                runtime.display()
            ))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(runtime))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("OCI runtime {} not found on PATH", runtime.display()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Ask each daemon, all at once, each for at most [`INFO_TIMEOUT`]; an error
/// becomes the node's status.
async fn remote_reports(nodes: Vec<(Endpoint, Option<TlsPaths>)>) -> Vec<Report> {
    let tasks: Vec<_> = nodes
        .into_iter()
        .map(|(endpoint, tls)| {
            tokio::spawn(async move {
                let asked = crate::info(&endpoint, tls.as_ref());
                match tokio::time::timeout(INFO_TIMEOUT, asked).await {
                    Ok(r) => r.map_err(|e| oci::error_chain(&e)),
                    Err(_) => Err(format!(
                        "builder daemon at {endpoint} did not answer within {}s",
                        INFO_TIMEOUT.as_secs()
                    )),
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        let answer = task
            .await
            .unwrap_or_else(|e| Err(format!("asking the daemon failed: {e}")));
        out.push(report_of(answer));
    }
    out
}

fn report_of(answer: Result<crate::Info, String>) -> Report {
    let mut report = Report {
        status: Status::Running,
        version: None,
        detected: Vec::new(),
        cache_bytes: None,
        snapshotter: None,
        running: None,
    };
    match answer {
        Ok(info) => {
            let mut seen = HashSet::new();
            report.detected = info
                .native
                .iter()
                .chain(&info.emulated)
                .map(|p| Platform::parse(p).map_or_else(|_| p.clone(), |p| p.to_string()))
                .filter(|p| seen.insert(p.clone()))
                .collect();
            report.version = Some(info.version);
            report.cache_bytes = Some(info.cache_bytes);
            report.snapshotter = Some(info.snapshotter);
            report.running = Some(info.running);
        }
        Err(e) => report.status = Status::Error(e),
    }
    report
}
