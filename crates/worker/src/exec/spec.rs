//! The one place that knows the `oci-spec` runtime API: a [`Plan`] (plain data) in,
//! `config.json` bytes out. `oci-spec` breaks its API about twice a year; only this
//! file follows it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use super::{ExecUser, NetworkMode, SecurityMode};

/// Everything `config.json` says, already validated and resolved.
#[derive(Debug)]
pub(crate) struct Plan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: ExecUser,
    pub hostname: String,
    pub network: NetworkMode,
    /// The step runs as root of a user namespace (rootless): the host's network
    /// namespace is not its own, so the default network is a namespace of the step's
    /// (`netns`, or a fresh one), and the host network's `/sys` is bound, not mounted.
    pub rootless: bool,
    /// A network namespace prepared for the step (rootless: one with a user-mode
    /// network attached).
    pub netns: Option<PathBuf>,
    /// The nameserver of that network, when it has its own (slirp4netns).
    pub nameserver: Option<String>,
    /// Rootless with only id 0 mapped: `/dev/pts` cannot be given to group 5.
    pub single_id: bool,
    pub security: SecurityMode,
    /// (`NOFILE`, soft, hard), already clamped.
    pub rlimits: Vec<(String, u64, u64)>,
    /// The size of `/dev/shm` in bytes (64 MiB when `None`).
    pub shm_size: Option<u64>,
    pub rootfs: PathBuf,
    /// (destination, type, source, options), after the default mounts.
    pub mounts: Vec<(String, String, PathBuf, Vec<String>)>,
    /// Host files removed once the container runs (a `poststart` hook), as secret
    /// files are.
    pub forget: Vec<PathBuf>,
}

/// BuildKit's default capability set (the same as Docker's).
pub(crate) const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability with its number (linux/capability.h).
const ALL_CAPS: [(Capability, u32); 41] = [
    (Capability::Chown, 0),
    (Capability::DacOverride, 1),
    (Capability::DacReadSearch, 2),
    (Capability::Fowner, 3),
    (Capability::Fsetid, 4),
    (Capability::Kill, 5),
    (Capability::Setgid, 6),
    (Capability::Setuid, 7),
    (Capability::Setpcap, 8),
    (Capability::LinuxImmutable, 9),
    (Capability::NetBindService, 10),
    (Capability::NetBroadcast, 11),
    (Capability::NetAdmin, 12),
    (Capability::NetRaw, 13),
    (Capability::IpcLock, 14),
    (Capability::IpcOwner, 15),
    (Capability::SysModule, 16),
    (Capability::SysRawio, 17),
    (Capability::SysChroot, 18),
    (Capability::SysPtrace, 19),
    (Capability::SysPacct, 20),
    (Capability::SysAdmin, 21),
    (Capability::SysBoot, 22),
    (Capability::SysNice, 23),
    (Capability::SysResource, 24),
    (Capability::SysTime, 25),
    (Capability::SysTtyConfig, 26),
    (Capability::Mknod, 27),
    (Capability::Lease, 28),
    (Capability::AuditWrite, 29),
    (Capability::AuditControl, 30),
    (Capability::Setfcap, 31),
    (Capability::MacOverride, 32),
    (Capability::MacAdmin, 33),
    (Capability::Syslog, 34),
    (Capability::WakeAlarm, 35),
    (Capability::BlockSuspend, 36),
    (Capability::AuditRead, 37),
    (Capability::Perfmon, 38),
    (Capability::Bpf, 39),
    (Capability::CheckpointRestore, 40),
];

/// The capabilities this process holds (its bounding set): what `--security=insecure`
/// grants, as BuildKit does. A runtime cannot grant more than its caller has.
fn current_caps() -> HashSet<Capability> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    ALL_CAPS
        .iter()
        .filter(|(_, bit)| mask & (1 << bit) != 0)
        .map(|(c, _)| *c)
        .collect()
}

/// Paths Docker masks (bind of /dev/null or an empty read-only tmpfs).
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Whether `name` (`NOFILE`) is an rlimit the runtime spec knows.
pub(crate) fn known_rlimit(name: &str) -> bool {
    PosixRlimitType::from_str(&format!("RLIMIT_{name}")).is_ok()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, String> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| e.to_string())
}

/// `/proc`, `/dev` (tmpfs; runc adds the standard devices), `/dev/pts`, `/dev/shm`,
/// `/dev/mqueue`, and `/sys` (read-only unless insecure).
fn default_mounts(plan: &Plan) -> Result<Vec<Mount>, String> {
    let shm = format!("size={}k", plan.shm_size.unwrap_or(64 << 20).div_ceil(1024));
    let sys_mode = match plan.security {
        SecurityMode::Insecure => "rw",
        _ => "ro",
    };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                if plan.single_id { "gid=0" } else { "gid=5" },
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        // sysfs can be mounted only by the owner of the network namespace: a rootless
        // step on the host's network binds the host's /sys instead.
        if plan.rootless && plan.network == NetworkMode::Host {
            mount(
                "/sys",
                "none",
                "/sys",
                &["rbind", "nosuid", "noexec", "nodev", sys_mode],
            )?
        } else {
            mount(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", sys_mode],
            )?
        },
    ])
}

fn namespaces(plan: &Plan) -> Result<Vec<oci_spec::runtime::LinuxNamespace>, String> {
    let mut kinds = vec![
        (LinuxNamespaceType::Mount, None),
        (LinuxNamespaceType::Pid, None),
        (LinuxNamespaceType::Ipc, None),
        (LinuxNamespaceType::Uts, None),
    ];
    let own_network = match plan.network {
        NetworkMode::None => true,
        NetworkMode::Host => false,
        NetworkMode::Default => plan.rootless,
    };
    if own_network {
        let path = (plan.network == NetworkMode::Default)
            .then(|| plan.netns.clone())
            .flatten();
        kinds.push((LinuxNamespaceType::Network, path));
    }
    kinds
        .into_iter()
        .map(|(k, path)| {
            let mut b = LinuxNamespaceBuilder::default().typ(k);
            if let Some(p) = path {
                b = b.path(p);
            }
            b.build().map_err(|e| e.to_string())
        })
        .collect()
}

fn process(plan: &Plan) -> Result<oci_spec::runtime::Process, String> {
    let caps: HashSet<Capability> = match plan.security {
        SecurityMode::Insecure => current_caps(),
        _ => DEFAULT_CAPS.into_iter().collect(),
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(|e| e.to_string())?;
    let rlimits = plan
        .rlimits
        .iter()
        .map(|(name, soft, hard)| {
            let typ = PosixRlimitType::from_str(&format!("RLIMIT_{name}"))
                .map_err(|_| format!("unknown rlimit {name}"))?;
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(*soft)
                .hard(*hard)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let user = UserBuilder::default()
        .uid(plan.user.uid)
        .gid(plan.user.gid)
        .additional_gids(plan.user.additional_gids.clone())
        .build()
        .map_err(|e| e.to_string())?;
    ProcessBuilder::default()
        .terminal(false)
        .args(plan.args.clone())
        .env(plan.env.clone())
        .cwd(plan.cwd.clone())
        .user(user)
        .capabilities(capabilities)
        .rlimits(rlimits)
        .no_new_privileges(false)
        .build()
        .map_err(|e| e.to_string())
}

fn linux(plan: &Plan) -> Result<oci_spec::runtime::Linux, String> {
    let insecure = plan.security == SecurityMode::Insecure;
    // Deny every device, then runc appends its default allow list (null, zero, full,
    // random, urandom, tty, ptmx, pts); insecure allows all.
    let devices = LinuxDeviceCgroupBuilder::default()
        .allow(insecure)
        .access("rwm")
        .build()
        .map_err(|e| e.to_string())?;
    let resources = LinuxResourcesBuilder::default()
        .devices(vec![devices])
        .build()
        .map_err(|e| e.to_string())?;
    let (masked, readonly) = if insecure {
        (Vec::new(), Vec::new())
    } else {
        (
            MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
        )
    };
    LinuxBuilder::default()
        .namespaces(namespaces(plan)?)
        .resources(resources)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .build()
        .map_err(|e| e.to_string())
}

/// The runtime spec for `plan`, as `config.json` bytes.
pub(crate) fn config_json(plan: &Plan) -> Result<Vec<u8>, String> {
    let mut mounts = default_mounts(plan)?;
    for (dest, typ, source, options) in &plan.mounts {
        let opts: Vec<&str> = options.iter().map(String::as_str).collect();
        mounts.push(mount(dest, typ, &source.to_string_lossy(), &opts)?);
    }
    let root = RootBuilder::default()
        .path(plan.rootfs.clone())
        .readonly(false)
        .build()
        .map_err(|e| e.to_string())?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .hostname(plan.hostname.clone())
        .mounts(mounts)
        .process(process(plan)?)
        .linux(linux(plan)?);
    if let Some(hooks) = forget_hooks(&plan.forget)? {
        spec = spec.hooks(hooks);
    }
    let spec: Spec = spec.build().map_err(|e| e.to_string())?;
    serde_json::to_vec_pretty(&spec).map_err(|e| e.to_string())
}

/// A `poststart` hook that removes `files` from the host: it runs once the
/// container's process has started, so its mounts hold the files already. None
/// when there is nothing to remove, or no `rm` on the host (the files then go when
/// the step ends, as before).
fn forget_hooks(files: &[PathBuf]) -> Result<Option<oci_spec::runtime::Hooks>, String> {
    let Some(rm) = ["/usr/bin/rm", "/bin/rm"]
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.is_file())
    else {
        return Ok(None);
    };
    if files.is_empty() {
        return Ok(None);
    }
    let mut args = vec!["rm".to_owned(), "-f".to_owned(), "--".to_owned()];
    args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    let hook = oci_spec::runtime::HookBuilder::default()
        .path(rm)
        .args(args)
        .build()
        .map_err(|e| e.to_string())?;
    oci_spec::runtime::HooksBuilder::default()
        .poststart(vec![hook])
        .build()
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn plan(network: NetworkMode, security: SecurityMode) -> Plan {
        Plan {
            args: vec!["/bin/sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: ExecUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10],
            },
            hostname: "h".into(),
            network,
            rootless: false,
            netns: None,
            nameserver: None,
            single_id: false,
            security,
            rlimits: vec![("NOFILE".into(), 20000, 20000)],
            shm_size: None,
            rootfs: "/r".into(),
            mounts: vec![(
                "/etc/hosts".into(),
                "bind".into(),
                "/b/hosts".into(),
                vec!["rbind".into(), "ro".into()],
            )],
            forget: Vec::new(),
        }
    }

    fn json(p: &Plan) -> Value {
        serde_json::from_slice(&config_json(p).unwrap()).unwrap()
    }

    #[test]
    fn files_to_forget_are_removed_by_a_poststart_hook() {
        let mut p = plan(NetworkMode::Default, SecurityMode::Sandbox);
        assert!(json(&p).get("hooks").is_none());
        p.forget = vec!["/t/secret-1/secret".into(), "/t/secret-2/secret".into()];
        let v = json(&p);
        let hook = &v["hooks"]["poststart"][0];
        assert!(hook["path"].as_str().unwrap().ends_with("/rm"), "{v}");
        assert_eq!(
            hook["args"],
            serde_json::json!(["rm", "-f", "--", "/t/secret-1/secret", "/t/secret-2/secret"])
        );
    }

    #[test]
    fn sandbox_spec() {
        let v = json(&plan(NetworkMode::Default, SecurityMode::Sandbox));
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["mount", "pid", "ipc", "uts"]);
        let caps = v["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap();
        assert_eq!(caps.len(), 14);
        assert!(caps.iter().any(|c| c == "CAP_NET_BIND_SERVICE"));
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert_eq!(v["process"]["user"]["additionalGids"][0], 10);
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(v["process"]["rlimits"][0]["hard"], 20000);
        assert_eq!(v["linux"]["maskedPaths"].as_array().unwrap().len(), 11);
        assert_eq!(v["hostname"], "h");
        let sys = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys");
        assert!(
            sys.unwrap()["options"]
                .as_array()
                .unwrap()
                .contains(&"ro".into())
        );
        assert_eq!(v["mounts"][6]["destination"], "/etc/hosts");
    }

    #[test]
    fn network_none_and_insecure() {
        let v = json(&plan(NetworkMode::None, SecurityMode::Insecure));
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.iter().any(|n| n["type"] == "network"));
        let bounding = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        let have = current_caps();
        assert_eq!(bounding.len(), have.len(), "{bounding:?} vs {have:?}");
        assert!(bounding.contains(&"CAP_SYS_ADMIN".into()));
        assert!(
            v["linux"]
                .get("maskedPaths")
                .is_none_or(|m| m.as_array().unwrap().is_empty())
        );
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);
    }

    #[test]
    fn rootless_steps_get_a_network_namespace_of_their_own_or_bind_the_hosts_sys() {
        let ns_and_sys = |p: &Plan| {
            let v = json(p);
            let net = v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["type"] == "network")
                .map(|n| n.get("path").and_then(Value::as_str).map(str::to_owned));
            let sys = v["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["destination"] == "/sys")
                .unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned();
            (net, sys)
        };
        let mut p = plan(NetworkMode::Default, SecurityMode::Sandbox);
        p.rootless = true;
        assert_eq!(ns_and_sys(&p), (Some(None), "sysfs".into()));
        p.netns = Some("/proc/77/ns/net".into());
        assert_eq!(
            ns_and_sys(&p),
            (Some(Some("/proc/77/ns/net".into())), "sysfs".into())
        );
        p.network = NetworkMode::Host;
        assert_eq!(ns_and_sys(&p), (None, "none".into()));
        p.network = NetworkMode::None;
        assert_eq!(ns_and_sys(&p), (Some(None), "sysfs".into()));
    }

    #[test]
    fn rlimit_names() {
        assert!(known_rlimit("NOFILE"));
        assert!(known_rlimit("NPROC"));
        assert!(!known_rlimit("BOGUS"));
    }
}
