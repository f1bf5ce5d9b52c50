//! Running one process in a root filesystem: the [`Executor`] trait, what a step asks
//! for ([`ExecSpec`], [`MountSpec`]) and what it gets back ([`ExitStatus`]).
//!
//! [`Runc`] is the implementation: it writes an OCI runtime bundle and runs
//! `runc run`. The caller owns the root filesystem (a snapshot); the executor only
//! creates the working directory and mount points in it.

mod cancel;
mod etc;
mod rootfs;
mod runc;
mod spec;
mod user;
pub mod usernet;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cancel::CancelToken;
pub use etc::{hosts_file, resolv_conf};
pub use rootfs::ReadError;
pub use runc::{Runc, RuncConfig};
pub use user::{ExecUser, IdFileError, MAX_ID_FILE_BYTES, UserError, resolve_user};

use crate::binfmt::{BinfmtError, RunsHow};

/// The hostname a step sees unless it asks for another (BuildKit's).
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// `PATH` for a step whose environment has none (BuildKit's default on Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `RLIMIT_NOFILE` a step asks for by default (soft and hard), before clamping to the
/// host's hard limit.
pub const DEFAULT_NOFILE: u64 = 1_048_576;

/// Runs a process to completion in a root filesystem.
pub trait Executor: Send + Sync {
    /// Run `spec` in `rootfs` with `mounts` on top, streaming output through `io`.
    ///
    /// A process that exits (with any code) or is killed by a signal is `Ok`; an
    /// error means the process could not be started, or `cancel` fired.
    fn run(
        &self,
        spec: &ExecSpec,
        rootfs: &Path,
        mounts: &[MountSpec],
        io: ExecIo,
        cancel: &CancelToken,
    ) -> Result<ExitStatus, ExecError>;
}

/// What one step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// argv; `args[0]` is looked up in the container's `PATH` by the runtime.
    pub args: Vec<String>,
    /// `KEY=value` pairs; `PATH` is added when missing.
    pub env: Vec<String>,
    /// Absolute working directory; created (owned by the user) when missing.
    pub cwd: String,
    /// `USER`: `name`, `uid`, `name:group` or `uid:gid`; empty is root.
    pub user: String,
    pub hostname: String,
    pub network: NetworkMode,
    pub security: SecurityMode,
    /// Extra rlimits (`--ulimit`); each is clamped to the host's hard limit.
    pub rlimits: Vec<Rlimit>,
    /// Extra `/etc/hosts` lines: name and address.
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// The size of `/dev/shm` in bytes; 64 MiB when `None`.
    pub shm_size: Option<u64>,
    /// The platform the step's binaries are built for; decides emulation.
    pub platform: oci::Platform,
    /// Grants: `network=host` and `security=insecure` are refused without them.
    pub allow: Entitlements,
}

impl ExecSpec {
    /// A step running `args` as root in `/` on the host's platform, with the default
    /// network and sandbox.
    pub fn new<S: Into<String>>(args: impl IntoIterator<Item = S>) -> ExecSpec {
        ExecSpec {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: String::new(),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            network: NetworkMode::Default,
            security: SecurityMode::Sandbox,
            rlimits: Vec::new(),
            extra_hosts: Vec::new(),
            shm_size: None,
            platform: oci::Platform::host(),
            allow: Entitlements::default(),
        }
    }
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NetworkMode {
    /// The host's network (BuildKit's OCI worker without CNI): no new namespace.
    #[default]
    Default,
    /// A fresh network namespace with only loopback.
    None,
    /// The host's network, asked for explicitly; needs [`Entitlements::network_host`].
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecurityMode {
    /// BuildKit's default capabilities, masked and read-only paths.
    #[default]
    Sandbox,
    /// Every capability, nothing masked, writable `/sys`, every device allowed;
    /// needs [`Entitlements::security_insecure`].
    Insecure,
}

/// What the user (daemon and client) granted for this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Entitlements {
    pub network_host: bool,
    pub security_insecure: bool,
}

/// One resource limit; `resource` is the OCI name without `RLIMIT_` (`NOFILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: String,
    pub soft: u64,
    pub hard: u64,
}

/// A mount on top of the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Absolute path in the container.
    pub destination: String,
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MountKind {
    /// A host directory or file (already resolved by the caller).
    Bind { source: PathBuf, readonly: bool },
    /// An empty tmpfs of at most `size` bytes (0: the kernel's default).
    Tmpfs { size: u64 },
    /// A secret file, bound read-only; the runtime removes `source` from the host
    /// once the container runs (the container keeps its own binding), so a crash of
    /// this process mid-step leaves no name for it on the host.
    Secret { source: PathBuf },
}

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

type OutputFn = dyn Fn(Stream, &[u8]) + Send + Sync;

/// Where a step's output goes: a callback, called from reader threads as bytes
/// arrive (in order within a stream).
#[derive(Clone)]
pub struct ExecIo {
    output: Option<Arc<OutputFn>>,
    /// The process reads this process's standard input (else `/dev/null`).
    pub(crate) stdin: bool,
}

impl ExecIo {
    pub fn new(f: impl Fn(Stream, &[u8]) + Send + Sync + 'static) -> ExecIo {
        ExecIo {
            output: Some(Arc::new(f)),
            stdin: false,
        }
    }

    /// Output is read and dropped.
    pub fn discard() -> ExecIo {
        ExecIo {
            output: None,
            stdin: false,
        }
    }

    /// Give the process this process's standard input. Build steps never get it;
    /// `manifold run` does. (The runtime runs in its own process group, so a
    /// terminal on standard input would stop it: callers pass only pipes and files.)
    pub fn with_stdin(mut self) -> ExecIo {
        self.stdin = true;
        self
    }

    pub(crate) fn emit(&self, stream: Stream, data: &[u8]) {
        if let Some(f) = &self.output {
            f(stream, data);
        }
    }
}

impl fmt::Debug for ExecIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecIo")
            .field("output", &self.output.is_some())
            .field("stdin", &self.stdin)
            .finish()
    }
}

/// How a step's process ended.
///
/// runc reports a process killed by signal N as exit code 128+N, as a shell does;
/// `signal` is read back from that convention, so `exit 139` also shows as SIGSEGV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: i32,
    pub signal: Option<i32>,
    /// How the platform ran: natively, or under which emulator.
    pub runs: RunsHow,
    pub platform: oci::Platform,
}

impl ExitStatus {
    pub(crate) fn from_code(code: i32, runs: RunsHow, platform: oci::Platform) -> ExitStatus {
        let signal = (129..=128 + 64).contains(&code).then_some(code - 128);
        ExitStatus {
            code,
            signal,
            runs,
            platform,
        }
    }

    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// `Ok` for exit code 0, else the error a build reports for this step.
    pub fn check(&self) -> Result<(), Box<StepFailed>> {
        if self.success() {
            return Ok(());
        }
        Err(Box::new(StepFailed {
            code: self.code,
            signal: self.signal,
            emulator: match &self.runs {
                RunsHow::Emulated { interpreter, .. } => Some(interpreter.clone()),
                _ => None,
            },
            platform: self.platform.clone(),
            single_id: single_id_namespace(),
        }))
    }
}

/// Rootless with only the user's own id mapped: no file or process can belong to
/// another user or group.
pub(crate) fn single_id_namespace() -> bool {
    matches!(
        content::identity::identity(),
        content::identity::Identity::Namespaced { .. }
    ) && !content::identity::identity().has_subordinate_ids()
}

/// How to get subordinate ids, for the messages of a single-id namespace.
pub(crate) const SUBUID_FIX: &str = "give the user a subordinate id range (sudo usermod \
    --add-subuids 100000-165535 --add-subgids 100000-165535 USER, then uidmap's newuidmap \
    maps it) and build again";

/// A step that ran and failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailed {
    pub code: i32,
    pub signal: Option<i32>,
    pub emulator: Option<PathBuf>,
    pub platform: oci::Platform,
    /// The step ran rootless with a single id mapped (its failure may be a `chown`).
    pub single_id: bool,
}

impl fmt::Display for StepFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "process did not complete successfully: exit code {}",
            self.code
        )?;
        if let Some(sig) = self.signal {
            write!(f, " (killed by {})", signal_name(sig))?;
            if let Some(emu) = &self.emulator {
                write!(
                    f,
                    "; it ran under QEMU emulation of {} ({}), which may not support \
                     what the program does",
                    self.platform,
                    emu.display()
                )?;
            }
        }
        if self.single_id {
            write!(
                f,
                "; this rootless build maps a single id (there is no subordinate range \
                 in /etc/subuid and /etc/subgid), so a step that gives a file to another \
                 user or group fails: {SUBUID_FIX}"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StepFailed {}

/// `SIGSEGV` for 11, `signal 40` for numbers without a common name.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        31 => "SIGSYS",
        _ => return format!("signal {sig}"),
    };
    name.to_owned()
}

/// Why a step could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    #[error("empty command: a step needs at least one argument")]
    EmptyArgs,
    #[error("working directory {0:?} is not absolute")]
    RelativeCwd(String),
    #[error(
        "working directory {0:?} is inside /proc or /sys, which the runtime mounts over \
         (it could reach host file descriptors)"
    )]
    CwdInKernelFs(String),
    #[error("cannot create working directory {cwd:?} in {rootfs}")]
    Cwd {
        cwd: String,
        rootfs: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mount destination {0:?} is not an absolute path without `..`")]
    MountDestination(String),
    #[error("invalid environment entry {0:?} (want KEY=value)")]
    Env(String),
    #[error("unknown rlimit {0:?}")]
    UnknownRlimit(String),
    #[error("--network=host was not granted (allow it with the network.host entitlement)")]
    NetworkHostNotAllowed,
    #[error(
        "--security=insecure was not granted (allow it with the security.insecure entitlement)"
    )]
    InsecureNotAllowed,
    #[error("unsafe root filesystem {rootfs}: {path} is {what}")]
    UnsafeRootfs {
        rootfs: PathBuf,
        path: String,
        what: &'static str,
    },
    #[error("root filesystem {path}")]
    Rootfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error(
        "the step runs as uid {uid} gid {gid}, but this rootless build maps a single id \
         (no subordinate range in /etc/subuid and /etc/subgid): {SUBUID_FIX}"
    )]
    UnmappedUser { uid: u32, gid: u32 },
    #[error("cannot set up the step's rootless network: {0}")]
    Network(String),
    #[error(transparent)]
    Platform(#[from] BinfmtError),
    #[error("cannot write the runtime bundle {path}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the runtime spec: {0}")]
    Spec(String),
    #[error("cannot start the runtime {runtime}")]
    Spawn {
        runtime: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the runtime {runtime} failed to run container {id}: {message}")]
    Runtime {
        runtime: PathBuf,
        id: String,
        message: String,
    },
    #[error("step cancelled (container {id} killed and removed)")]
    Cancelled { id: String },
}

/// Reject `..` and relative paths; returns the path normalised (no `.`, no `//`).
pub(crate) fn clean_abs(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return None;
    }
    let mut out = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_abs_rejects_dotdot_and_relative() {
        assert_eq!(clean_abs("/a//b/./c/").as_deref(), Some("/a/b/c"));
        assert_eq!(clean_abs("/").as_deref(), Some("/"));
        assert_eq!(clean_abs("a/b"), None);
        assert_eq!(clean_abs("/a/../b"), None);
    }

    #[test]
    fn signal_is_read_from_the_128_plus_n_convention() {
        let p = oci::Platform::host();
        let s = ExitStatus::from_code(139, RunsHow::Native, p.clone());
        assert_eq!(s.signal, Some(11));
        assert_eq!(
            ExitStatus::from_code(3, RunsHow::Native, p.clone()).signal,
            None
        );
        assert_eq!(ExitStatus::from_code(128, RunsHow::Native, p).signal, None);
    }

    #[test]
    fn emulated_crash_names_qemu_and_platform() {
        let p = oci::Platform::parse("linux/arm64").unwrap();
        let runs = RunsHow::Emulated {
            entry: "qemu-aarch64".into(),
            interpreter: "/usr/bin/qemu-aarch64-static".into(),
            flags: "F".into(),
        };
        let err = ExitStatus::from_code(139, runs, p).check().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("SIGSEGV"), "{msg}");
        assert!(msg.contains("QEMU"), "{msg}");
        assert!(msg.contains("linux/arm64"), "{msg}");
        assert!(msg.contains("qemu-aarch64-static"), "{msg}");
    }
}
