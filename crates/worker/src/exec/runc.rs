//! [`Runc`]: one `runc run` per step, from a bundle written under
//! [`RuncConfig::bundle_dir`].
//!
//! runc is the runtime: crun refuses the hybrid cgroup hierarchy of the machines
//! manifold is developed on (see DESIGN.md).

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::spec::{self, Plan};
use super::{
    CancelToken, DEFAULT_NOFILE, DEFAULT_PATH, ExecError, ExecIo, ExecSpec, Executor, ExitStatus,
    MountKind, MountSpec, NetworkMode, SecurityMode, Stream, clean_abs, etc, rootfs, user,
};
use crate::binfmt::{self, BinfmtPolicy};

/// Where and how runc is run.
#[derive(Debug, Clone)]
pub struct RuncConfig {
    /// The runc binary; a bare name is looked up in `PATH`.
    pub runtime: PathBuf,
    /// runc's state directory (`runc --root`); `None` is runc's default (`/run/runc`).
    pub state_root: Option<PathBuf>,
    /// Where bundles are written, one directory per container, removed after the step.
    pub bundle_dir: PathBuf,
    /// What binfmt_misc registrations are accepted for emulated steps.
    pub binfmt: BinfmtPolicy,
}

impl RuncConfig {
    /// `runc` from `PATH`, runc's default state root (rootless:
    /// `<runtime dir>/runc`, as `/run/runc` belongs to the host's root), bundles under
    /// `bundle_dir`.
    pub fn new(bundle_dir: impl Into<PathBuf>) -> RuncConfig {
        let rootless = content::identity::identity().is_rootless();
        RuncConfig {
            runtime: PathBuf::from("runc"),
            state_root: rootless.then(|| content::identity::runtime_dir().join("runc")),
            bundle_dir: bundle_dir.into(),
            binfmt: BinfmtPolicy::default(),
        }
    }
}

/// The runc executor.
#[derive(Debug, Clone)]
pub struct Runc {
    config: RuncConfig,
}

impl Runc {
    pub fn new(config: RuncConfig) -> Runc {
        Runc { config }
    }

    /// A `runc` command with the global flags (`--root`).
    fn runc(&self) -> Command {
        let mut cmd = Command::new(&self.config.runtime);
        if let Some(root) = &self.config.state_root {
            cmd.arg("--root").arg(root);
        }
        cmd.stdin(Stdio::null());
        cmd
    }
}

/// A container id: unique across processes and time, `manifold-` prefixed, and only
/// `[a-z0-9-]` (runc's id rules).
fn new_container_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "manifold-{}-{n}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}

/// Check what the spec asks for before touching anything.
fn validate(spec: &ExecSpec, mounts: &[MountSpec]) -> Result<String, ExecError> {
    if spec.args.is_empty() {
        return Err(ExecError::EmptyArgs);
    }
    let cwd = clean_abs(&spec.cwd).ok_or_else(|| ExecError::RelativeCwd(spec.cwd.clone()))?;
    for kernel in ["/proc", "/sys"] {
        if cwd == kernel || cwd.starts_with(&format!("{kernel}/")) {
            return Err(ExecError::CwdInKernelFs(spec.cwd.clone()));
        }
    }
    if let Some(bad) = spec
        .env
        .iter()
        .find(|e| !e.contains('=') || e.starts_with('='))
    {
        return Err(ExecError::Env(bad.clone()));
    }
    if let Some(bad) = mounts.iter().find(|m| clean_abs(&m.destination).is_none()) {
        return Err(ExecError::MountDestination(bad.destination.clone()));
    }
    if let Some(bad) = spec
        .rlimits
        .iter()
        .find(|r| !spec::known_rlimit(&r.resource))
    {
        return Err(ExecError::UnknownRlimit(bad.resource.clone()));
    }
    if spec.network == NetworkMode::Host && !spec.allow.network_host {
        return Err(ExecError::NetworkHostNotAllowed);
    }
    if spec.security == SecurityMode::Insecure && !spec.allow.security_insecure {
        return Err(ExecError::InsecureNotAllowed);
    }
    Ok(cwd)
}

fn host_hard_limit(name: &str) -> Option<u64> {
    use rustix::process::Resource as R;
    let res = match name {
        "CPU" => R::Cpu,
        "FSIZE" => R::Fsize,
        "DATA" => R::Data,
        "STACK" => R::Stack,
        "CORE" => R::Core,
        "RSS" => R::Rss,
        "NPROC" => R::Nproc,
        "NOFILE" => R::Nofile,
        "MEMLOCK" => R::Memlock,
        "AS" => R::As,
        "LOCKS" => R::Locks,
        "SIGPENDING" => R::Sigpending,
        "MSGQUEUE" => R::Msgqueue,
        "NICE" => R::Nice,
        "RTPRIO" => R::Rtprio,
        "RTTIME" => R::Rttime,
        _ => return None,
    };
    rustix::process::getrlimit(res).maximum
}

/// The default `NOFILE` plus the spec's rlimits (which replace defaults of the same
/// name), each clamped to the host's hard limit: a runtime refuses to start a process
/// asking for more than that (ENVIRONMENT.md: podman's 1048576 fails here).
pub(crate) fn clamp_rlimits(spec: &ExecSpec) -> Vec<(String, u64, u64)> {
    let mut wanted: Vec<(String, u64, u64)> =
        vec![("NOFILE".into(), DEFAULT_NOFILE, DEFAULT_NOFILE)];
    for r in &spec.rlimits {
        wanted.retain(|(n, _, _)| *n != r.resource);
        wanted.push((r.resource.clone(), r.soft, r.hard));
    }
    wanted
        .into_iter()
        .map(|(name, soft, hard)| {
            let cap = host_hard_limit(&name).unwrap_or(u64::MAX);
            let hard = hard.min(cap);
            (name, soft.min(hard), hard)
        })
        .collect()
}

fn env_with_path(env: &[String]) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    env
}

fn bundle_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExecError + '_ {
    move |source| ExecError::Bundle {
        path: path.to_owned(),
        source,
    }
}

/// Write `hosts`, `resolv.conf` and `config.json` into `bundle`.
fn write_bundle(
    bundle: &Path,
    spec: &ExecSpec,
    mut plan: Plan,
    mounts: &[MountSpec],
) -> Result<(), ExecError> {
    let hosts = bundle.join("hosts");
    std::fs::write(&hosts, etc::hosts_file(&spec.hostname, &spec.extra_hosts))
        .map_err(bundle_err(&hosts))?;
    let mut host_resolv = String::new();
    if let Ok(f) = std::fs::File::open("/etc/resolv.conf") {
        // A resolv.conf is small; a huge one is cut rather than read whole.
        let _ = f.take(64 * 1024).read_to_string(&mut host_resolv);
    }
    let resolv = bundle.join("resolv.conf");
    let resolv_text = match &plan.nameserver {
        // slirp4netns forwards DNS from its own address to the host's resolver.
        Some(ns) => etc::resolv_conf_with(&host_resolv, ns),
        None => etc::resolv_conf(&host_resolv, spec.network),
    };
    std::fs::write(&resolv, resolv_text).map_err(bundle_err(&resolv))?;
    let ro_bind = |dest: &str, src: PathBuf| {
        (
            dest.to_owned(),
            "bind".to_owned(),
            src,
            vec!["rbind".into(), "ro".into(), "nosuid".into(), "nodev".into()],
        )
    };
    plan.mounts.push(ro_bind("/etc/resolv.conf", resolv));
    plan.mounts.push(ro_bind("/etc/hosts", hosts));
    for m in mounts {
        let dest = clean_abs(&m.destination).expect("validated before");
        let (typ, src, opts) = match &m.kind {
            MountKind::Bind { source, readonly } => {
                let mode = if *readonly { "ro" } else { "rw" };
                (
                    "bind",
                    source.clone(),
                    vec!["rbind".to_owned(), mode.to_owned()],
                )
            }
            MountKind::Secret { source } => {
                plan.forget.push(source.clone());
                (
                    "bind",
                    source.clone(),
                    vec![
                        "rbind".to_owned(),
                        "ro".to_owned(),
                        "nosuid".to_owned(),
                        "nodev".to_owned(),
                        "noexec".to_owned(),
                    ],
                )
            }
            MountKind::Tmpfs { size } => {
                let mut opts = vec!["nosuid".to_owned(), "nodev".to_owned()];
                if *size > 0 {
                    opts.push(format!("size={size}"));
                }
                ("tmpfs", PathBuf::from("tmpfs"), opts)
            }
        };
        plan.mounts.push((dest, typ.to_owned(), src, opts));
    }
    let config = spec::config_json(&plan).map_err(ExecError::Spec)?;
    let path = bundle.join("config.json");
    std::fs::write(&path, config).map_err(bundle_err(&path))
}

/// A started `runc run`; dropping it kills and deletes the container if it is still
/// there, and removes the bundle.
struct Container<'a> {
    runc: &'a Runc,
    id: String,
    bundle: PathBuf,
    child: Option<Child>,
    readers: Vec<JoinHandle<()>>,
    /// A rootless step's user-mode network, stopped after the container is deleted.
    net: Option<super::usernet::UserNet>,
}

impl Container<'_> {
    /// `runc kill` until `runc run` returns (the container may not exist yet when a
    /// step is cancelled early), then SIGKILL runc itself as a last resort.
    fn kill(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let _ = self
                .runc
                .runc()
                .args(["kill", &self.id, "KILL"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = None;
    }

    fn delete(&self) {
        let _ = self
            .runc
            .runc()
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Errors runc logged (`--log-format json`), one per line.
    fn runtime_errors(&self) -> Vec<String> {
        let Ok(log) = std::fs::read_to_string(self.bundle.join("runc.log")) else {
            return Vec::new();
        };
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
            .filter_map(|v| v["msg"].as_str().map(str::to_owned))
            .collect()
    }

    /// Wait for `runc run`, or kill the container when `cancel` fires.
    fn wait(&mut self, cancel: &CancelToken) -> Result<std::process::ExitStatus, ExecError> {
        let child = self.child.as_mut().expect("waited once");
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    self.join_readers();
                    return Ok(status);
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(ExecError::Spawn {
                        runtime: self.runc.config.runtime.clone(),
                        source,
                    });
                }
            }
            if cancel.wait_timeout(Duration::from_millis(10)) {
                self.kill();
                self.delete();
                self.join_readers();
                return Err(ExecError::Cancelled {
                    id: self.id.clone(),
                });
            }
        }
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
            self.delete();
        }
        self.join_readers();
        let _ = std::fs::remove_dir_all(&self.bundle);
    }
}

fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    stream: Stream,
    io: ExecIo,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => io.emit(stream, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

impl Executor for Runc {
    fn run(
        &self,
        spec: &ExecSpec,
        rootfs_path: &Path,
        mounts: &[MountSpec],
        io: ExecIo,
        cancel: &CancelToken,
    ) -> Result<ExitStatus, ExecError> {
        let cwd = validate(spec, mounts)?;
        let runs = binfmt::check_platform_with(&spec.platform, &self.config.binfmt)?;
        let root = rootfs::open_root(rootfs_path)?;
        rootfs::check_kernel_dirs(&root, rootfs_path)?;
        let mut exec_user = user::resolve_in(&root, rootfs_path, &spec.user)?;
        if super::single_id_namespace() {
            // Only id 0 exists here, and setgroups(2) is denied.
            if exec_user.uid != 0 || exec_user.gid != 0 {
                return Err(ExecError::UnmappedUser {
                    uid: exec_user.uid,
                    gid: exec_user.gid,
                });
            }
            exec_user.additional_gids.clear();
        }
        rootfs::mkdir_all_in_root(&root, &cwd, exec_user.uid, exec_user.gid).map_err(|source| {
            ExecError::Cwd {
                cwd: cwd.clone(),
                rootfs: rootfs_path.to_owned(),
                source,
            }
        })?;
        drop(root);
        if cancel.is_cancelled() {
            return Err(ExecError::Cancelled { id: String::new() });
        }

        let id = new_container_id();
        let bundle = self.config.bundle_dir.join(&id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&bundle)
            .map_err(bundle_err(&bundle))?;
        let mut container = Container {
            runc: self,
            id: id.clone(),
            bundle: bundle.clone(),
            child: None,
            readers: Vec::new(),
            net: None,
        };
        let rootless = content::identity::identity().is_rootless();
        if rootless && spec.network == NetworkMode::Default {
            container.net = super::usernet::UserNet::start().map_err(ExecError::Network)?;
        }
        let plan = Plan {
            args: spec.args.clone(),
            env: env_with_path(&spec.env),
            cwd,
            user: exec_user,
            hostname: spec.hostname.clone(),
            network: spec.network,
            rootless,
            netns: container.net.as_ref().map(|n| n.path().to_owned()),
            nameserver: container
                .net
                .as_ref()
                .and_then(|n| n.nameserver())
                .map(str::to_owned),
            single_id: super::single_id_namespace(),
            security: spec.security,
            rlimits: clamp_rlimits(spec),
            shm_size: spec.shm_size,
            rootfs: std::path::absolute(rootfs_path).map_err(bundle_err(rootfs_path))?,
            mounts: Vec::new(),
            forget: Vec::new(),
        };
        write_bundle(&bundle, spec, plan, mounts)?;

        let mut cmd = self.runc();
        cmd.arg("--log")
            .arg(bundle.join("runc.log"))
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(if io.stdin {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches manifold, which
            // cancels, instead of reaching runc directly.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            runtime: self.config.runtime.clone(),
            source,
        })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        container.child = Some(child);
        container.readers = vec![
            spawn_reader(stdout, Stream::Stdout, io.clone()),
            spawn_reader(stderr, Stream::Stderr, io),
        ];
        let status = container.wait(cancel)?;
        let errors = container.runtime_errors();
        match status.code() {
            Some(code) if errors.is_empty() => {
                Ok(ExitStatus::from_code(code, runs, spec.platform.clone()))
            }
            _ => {
                container.delete();
                let message = if errors.is_empty() {
                    format!("runc was killed by signal {}", status.signal().unwrap_or(0))
                } else {
                    errors.join("; ")
                };
                Err(ExecError::Runtime {
                    runtime: self.config.runtime.clone(),
                    id,
                    message,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Entitlements, Rlimit};

    #[test]
    fn ids_are_unique_and_prefixed() {
        let a = new_container_id();
        let b = new_container_id();
        assert_ne!(a, b);
        assert!(a.starts_with("manifold-"));
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }

    #[test]
    fn nofile_never_exceeds_the_host_hard_limit() {
        let host = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(u64::MAX);
        let mut spec = ExecSpec::new(["true"]);
        let r = clamp_rlimits(&spec);
        assert_eq!(
            r,
            vec![(
                "NOFILE".to_owned(),
                DEFAULT_NOFILE.min(host),
                DEFAULT_NOFILE.min(host)
            )]
        );
        spec.rlimits.push(Rlimit {
            resource: "NOFILE".into(),
            soft: 100,
            hard: u64::MAX,
        });
        assert_eq!(clamp_rlimits(&spec), vec![("NOFILE".to_owned(), 100, host)]);
    }

    #[test]
    fn validation() {
        let ok = ExecSpec::new(["true"]);
        assert_eq!(validate(&ok, &[]).unwrap(), "/");
        let mut s = ok.clone();
        s.args.clear();
        assert!(matches!(validate(&s, &[]), Err(ExecError::EmptyArgs)));
        for cwd in ["/proc/self/fd/3", "/proc", "/sys/x", "//proc/./self"] {
            let mut s = ok.clone();
            s.cwd = cwd.into();
            assert!(
                matches!(validate(&s, &[]), Err(ExecError::CwdInKernelFs(_))),
                "{cwd}"
            );
        }
        let mut s = ok.clone();
        s.cwd = "/processes".into();
        assert!(validate(&s, &[]).is_ok());
        let mut s = ok.clone();
        s.network = NetworkMode::Host;
        assert!(matches!(
            validate(&s, &[]),
            Err(ExecError::NetworkHostNotAllowed)
        ));
        s.allow = Entitlements {
            network_host: true,
            security_insecure: false,
        };
        assert!(validate(&s, &[]).is_ok());
        s.security = SecurityMode::Insecure;
        assert!(matches!(
            validate(&s, &[]),
            Err(ExecError::InsecureNotAllowed)
        ));
        let bad = MountSpec {
            destination: "/a/../../etc".into(),
            kind: MountKind::Tmpfs { size: 0 },
        };
        assert!(matches!(
            validate(&ok, &[bad]),
            Err(ExecError::MountDestination(_))
        ));
    }
}
