//! The messages between client and daemon, all JSON frames ([`crate::wire`]).
//!
//! A connection carries one exchange:
//! * `Request::Info` → `Reply::Info`.
//! * `Request::Build` → `Reply::Need` (context file and `oci-layout://` blob digests
//!   the daemon lacks) → the client sends each as data frames ending in an end
//!   frame, in the order asked → `Reply::Event`… → when the request leaves work
//!   to the client ([`builder::BuildRequest::needs_client`]),
//!   `Reply::Result` (the built image's blobs) → `Request::Want` (those the client
//!   lacks) → the daemon sends each, in the order asked → `Reply::Done` or
//!   `Reply::Error`.
//!
//! Closing the connection before `Done` cancels the build.

use serde::{Deserialize, Serialize};

/// The protocol this side speaks. A client and daemon that differ refuse to build,
/// naming both; a peer from before versions were sent counts as 1.
pub const PROTOCOL: u32 = 2;

fn protocol_1() -> u32 {
    1
}

/// What a daemon reports about itself (`manifold inspect --bootstrap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// manifold's version on the daemon.
    pub version: String,
    /// The protocol the daemon speaks ([`PROTOCOL`] for this version).
    #[serde(default = "protocol_1")]
    pub protocol: u32,
    /// Platforms it runs natively (or compatibly, like 386 on amd64).
    pub native: Vec<String>,
    /// Platforms it runs under QEMU.
    pub emulated: Vec<String>,
    /// Snapshot driver in use (`overlay`, `copy`).
    pub snapshotter: String,
    /// Bytes the daemon's content store holds.
    pub cache_bytes: u64,
    /// Builds running now.
    pub running: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Request {
    Info,
    Build(Box<BuildCall>),
    /// The blobs of a `Reply::Result` the client lacks, in the order to send them.
    Want {
        digests: Vec<String>,
    },
}

/// One build, as the client sends it: the request as the command line made it, and
/// what the daemon reads the request's inputs from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildCall {
    /// The protocol the client speaks ([`PROTOCOL`]).
    pub protocol: u32,
    /// manifold's version on the client, named when the protocols differ.
    pub client_version: String,
    pub request: builder::BuildRequest,
    /// The build context and each local `--build-context`, as file lists, named as
    /// the request's named contexts name them.
    pub contexts: Vec<ContextManifest>,
    /// `--build-context NAME=oci-layout://…`: the chosen image, whose blobs the
    /// daemon asks for with the context files.
    pub layouts: Vec<LayoutContext>,
    /// Registry credentials the client resolved, for this build only.
    pub credentials: Vec<RegistryCredential>,
}

impl BuildCall {
    /// A call of this protocol version.
    pub fn new(request: builder::BuildRequest) -> BuildCall {
        BuildCall {
            protocol: PROTOCOL,
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            request,
            contexts: Vec::new(),
            layouts: Vec::new(),
            credentials: Vec::new(),
        }
    }
}

/// Why two sides cannot talk: the message names both versions.
pub fn version_mismatch(client: (u32, &str), daemon: (u32, &str)) -> String {
    format!(
        "the client speaks protocol {} (manifold {}) and the daemon protocol {} (manifold {}): \
         run the same manifold version on both sides",
        client.0, client.1, daemon.0, daemon.1
    )
}

/// An image from a client's OCI layout, used as a named build context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayoutContext {
    pub name: String,
    /// The chosen index or manifest.
    pub root: oci::Descriptor,
    /// `root` and what it references, children first.
    pub blobs: Vec<oci::Descriptor>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCredential {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A context's files as the client sees them. `id` is stable for one client
/// directory, so the daemon keeps its copy between builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextManifest {
    /// `context`, or `context:NAME` for `--build-context NAME=DIR`.
    pub name: String,
    pub id: String,
    pub entries: Vec<FileMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Relative, `/`-separated.
    pub path: String,
    pub mode: u32,
    /// Modification time, seconds and nanoseconds since the epoch.
    #[serde(default)]
    pub mtime: (i64, u32),
    #[serde(flatten)]
    pub kind: FileKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FileKind {
    File { digest: String, size: u64 },
    Dir,
    Symlink { target: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Info(Info),
    Need {
        digests: Vec<String>,
    },
    Event(WireEvent),
    /// The built image: its index and every blob of its tree, children first.
    Result {
        index: oci::Descriptor,
        blobs: Vec<oci::Descriptor>,
    },
    Done(Done),
    Error {
        message: String,
    },
}

/// A progress event (the solver's, flattened).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireEvent {
    pub kind: String,
    pub vertex: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub stderr: bool,
    #[serde(default)]
    pub data: Vec<u8>,
    #[serde(default)]
    pub seconds: f64,
    #[serde(default)]
    pub text: String,
    /// A status's bytes so far (`kind` "status"; its id is in `name`).
    #[serde(default)]
    pub current: u64,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub done: bool,
    /// A warning's explanation (`kind` "warning"; its rule is in `name`, its
    /// message in `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The Dockerfile line a warning is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// A finished build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// The image (its index, or its manifest when it has one platform and no
    /// attestations), as the daemon stored (and maybe pushed) it.
    pub index: oci::Descriptor,
    /// The image config when `index` is a manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Box<oci::Descriptor>>,
    pub manifests: Vec<oci::Descriptor>,
    /// What the daemon pushed, as `NAME@DIGEST`.
    #[serde(default)]
    pub pushed: Vec<String>,
}
