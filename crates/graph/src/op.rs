//! The operations of the build graph.
//!
//! Every type here is part of a vertex's digest (see [`crate::canonical`]), so
//! it holds only what changes the result of the operation. What is shown to
//! people lives in [`crate::Metadata`].
//!
//! None of these types contains a map: lists keep the order the frontend gave
//! them, so the canonical form has no key-ordering question to answer.

use oci::Platform;
use serde::{Deserialize, Serialize};

/// One operation. Its inputs are the [`crate::Vertex`]'s `inputs`; fields
/// that name an input (`input`, `src`, `base`) are indexes into that list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
// An op is built once and lives in its vertex for the whole build; an `Exec` in a
// box would save no copy worth the indirection.
#[allow(clippy::large_enum_variant)]
pub enum Op {
    Source(Source),
    Exec(Exec),
    File(File),
    /// Layer the inputs on top of each other, first at the bottom (`COPY --link`).
    Merge(Merge),
}

/// Where a filesystem comes from. Sources have no inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// An image's root filesystem.
    Image {
        /// Normalised reference, pinned when resolved:
        /// `docker.io/library/alpine:3.20@sha256:…`.
        reference: String,
        platform: Platform,
        resolve_mode: ResolveMode,
    },
    /// Files the client sends: the build context (`name` = `context`) or a
    /// named context (`--build-context NAME=dir`).
    Local {
        name: String,
        /// Only these patterns are sent (empty: everything).
        include: Vec<String>,
        /// These patterns are never sent (`.dockerignore`).
        exclude: Vec<String>,
        /// Paths the build reads; the client may send only these (and what
        /// their symlinks point at). Empty: everything.
        follow_paths: Vec<String>,
    },
    /// The empty filesystem.
    Scratch,
}

/// How an image source is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveMode {
    /// Use the local copy if there is one, else pull.
    #[default]
    Default,
    /// Always ask the registry.
    ForcePull,
    /// Prefer a local copy even when a newer one exists remotely.
    PreferLocal,
}

/// A `NAME=value` pair; order is significant (the last one wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl EnvVar {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Run a process. The output is the filesystem mounted at `/` (mount 0,
/// which must be a writable bind of an input) after the process exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub cwd: String,
    /// `user[:group]` as written in `USER`; empty is root.
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub network: Network,
    pub security: Security,
    /// `HTTP_PROXY` & co. from the build arguments. Like BuildKit, the solver
    /// must leave these out of its cache keys; they never reach the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy_env: Vec<EnvVar>,
    /// Secrets exposed as environment variables (values never in the graph).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<SecretEnv>,
    /// The platform the process runs as (emulated when foreign).
    pub platform: Platform,
    /// Mount 0 is the root filesystem.
    pub mounts: Vec<Mount>,
    /// `--add-host`: lines added to the step's `/etc/hosts`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<HostEntry>,
    /// `--ulimit`: resource limits of the process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size`: the size of `/dev/shm` in bytes (64 MiB when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
}

/// A name and the address `/etc/hosts` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub name: String,
    pub ip: std::net::IpAddr,
}

/// A resource limit: `nofile`, `nproc`, … (lower case, as `--ulimit` names them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A private network with outside access.
    #[default]
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    #[default]
    Sandbox,
    /// All capabilities, no seccomp/AppArmor (needs an entitlement).
    Insecure,
}

/// A secret given to the process as `name=<secret value>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEnv {
    pub id: String,
    pub name: String,
    /// Fail when the client has no such secret (otherwise it is left unset).
    pub required: bool,
}

/// A filesystem mounted into an [`Exec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Index of the input mounted, or `None` for an empty directory.
    pub input: Option<usize>,
    pub dest: String,
    /// The path inside the input that is mounted (`/` for all of it).
    pub selector: String,
    pub readonly: bool,
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MountKind {
    /// The input itself (changes to a writable bind other than `/` are dropped).
    Bind,
    /// A persistent directory shared between builds, seeded from the input.
    Cache { id: String, sharing: CacheSharing },
    /// A memory-backed empty directory.
    Tmpfs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// A secret file; only its id is in the graph.
    Secret {
        id: String,
        required: bool,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    /// An SSH agent socket. The frontend refuses it for now.
    Ssh { id: String, required: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// A list of file actions applied in order to `base` (or to an empty
/// filesystem).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub base: Option<usize>,
    pub actions: Vec<FileAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileAction {
    Copy(Copy),
    Mkdir(Mkdir),
    Mkfile(Mkfile),
    Rm(Rm),
}

/// A file mode for copied files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chmod {
    Octal(u32),
    /// `u=rwX,go=rX`, applied per file.
    Symbolic(String),
}

/// Copy `src_path` of input `src` to `dest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    pub src: usize,
    pub src_path: String,
    pub dest: String,
    /// `user[:group]`, names resolved in the destination filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chown: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chmod: Option<Chmod>,
    pub follow_symlinks: bool,
    /// Copy what is inside a source directory, not the directory itself.
    pub dir_contents_only: bool,
    pub create_dest_path: bool,
    pub allow_wildcard: bool,
    pub allow_empty_wildcard: bool,
    /// Unpack a source that is a local tar archive (`ADD`).
    pub unpack: bool,
    /// `COPY --parents`: keep the source's directories under `dest`.
    pub parents: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Seconds since the epoch for the copied files' times (`SOURCE_DATE_EPOCH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mkdir {
    pub path: String,
    pub mode: u32,
    pub make_parents: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chown: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mkfile {
    pub path: String,
    pub data: String,
    pub mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chown: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rm {
    pub path: String,
    pub allow_not_found: bool,
    pub allow_wildcard: bool,
}

/// Layer the vertex's inputs, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Merge {}

impl Op {
    /// How many inputs this op needs at least (its highest input index + 1).
    pub fn min_inputs(&self) -> usize {
        match self {
            Op::Source(_) => 0,
            Op::Merge(_) => 2,
            Op::Exec(e) => e
                .mounts
                .iter()
                .filter_map(|m| m.input)
                .map(|i| i + 1)
                .max()
                .unwrap_or(0),
            Op::File(f) => f
                .actions
                .iter()
                .filter_map(|a| match a {
                    FileAction::Copy(c) => Some(c.src + 1),
                    _ => None,
                })
                .chain(f.base.map(|b| b + 1))
                .max()
                .unwrap_or(0),
        }
    }

    /// The op's kind in lower case: `source`, `exec`, `file`, `merge`.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Source(_) => "source",
            Op::Exec(_) => "exec",
            Op::File(_) => "file",
            Op::Merge(_) => "merge",
        }
    }
}
