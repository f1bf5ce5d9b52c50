//! The messages between client and daemon, all JSON frames ([`crate::wire`]).
//!
//! A connection carries one exchange:
//! * `Request::Info` → `Reply::Info`.
//! * `Request::Build` → `Reply::Need` (context file and `oci-layout://` blob digests
//!   the daemon lacks) → the client sends each as data frames ending in an end
//!   frame, in the order asked → `Reply::Event`… → with `BuildSpec::fetch`,
//!   `Reply::Result` (the built image's blobs) → `Request::Want` (those the client
//!   lacks) → the daemon sends each, in the order asked → `Reply::Done` or
//!   `Reply::Error`.
//!
//! Closing the connection before `Done` cancels the build.

use serde::{Deserialize, Serialize};

/// What a daemon reports about itself (`manifold inspect --bootstrap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// manifold's version on the daemon.
    pub version: String,
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
    Build(Box<BuildSpec>),
    /// The blobs of a `Reply::Result` the client lacks, in the order to send them.
    Want {
        digests: Vec<String>,
    },
}

/// One build, as the client sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildSpec {
    pub dockerfile: String,
    pub target: Option<String>,
    pub platforms: Vec<String>,
    pub build_args: Vec<(String, Option<String>)>,
    /// `--build-context NAME=docker-image://REF`.
    #[serde(default)]
    pub image_contexts: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub no_cache: bool,
    pub no_cache_filter: Vec<String>,
    pub source_date_epoch: Option<i64>,
    pub context_excludes: Vec<String>,
    /// `default`, `none` or `host`.
    pub network: String,
    pub pull: bool,
    /// The build context and each local `--build-context`, as file lists.
    pub contexts: Vec<ContextManifest>,
    /// `--secret` values, for this build only (`Debug` shows no bytes).
    pub secrets: Vec<(String, builder::Secret)>,
    /// Registry credentials the client resolved, for this build only.
    pub credentials: Vec<RegistryCredential>,
    pub allow_network_host: bool,
    pub allow_security_insecure: bool,
    /// Push the index under these names.
    pub push_tags: Vec<String>,
    /// Push the index by digest only, to this repository (multi-node builds).
    pub push_by_digest: Option<String>,
    /// `SOURCE_DATE_EPOCH`, compression and media types of the export.
    #[serde(default)]
    pub oci_mediatypes: Option<bool>,
    /// Layer compression as `export::Compression::key` writes it (`gzip-6`, `zstd-3`,
    /// `none`); the daemon's default when absent.
    #[serde(default)]
    pub compression: Option<String>,
    /// Send the built image back (`Reply::Result`), for outputs the client writes.
    #[serde(default)]
    pub fetch: bool,
    /// `--build-context NAME=oci-layout://…`: the chosen image, whose blobs the
    /// daemon asks for with the context files.
    #[serde(default)]
    pub layouts: Vec<LayoutContext>,
}

/// An image from a client's OCI layout, used as a named build context.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayoutContext {
    pub name: String,
    /// The chosen index or manifest.
    pub root: oci::Descriptor,
    /// `root` and what it references, children first.
    pub blobs: Vec<oci::Descriptor>,
}

#[derive(Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The index, as the daemon stored (and maybe pushed) it.
    pub index: oci::Descriptor,
    pub manifests: Vec<oci::Descriptor>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_build_spec_never_prints_a_secret_and_carries_it() {
        let spec = BuildSpec {
            secrets: vec![(
                "token".to_owned(),
                builder::Secret(Arc::new(b"s3cr3t-bytes".to_vec())),
            )],
            ..BuildSpec::default()
        };
        for shown in [format!("{spec:?}"), format!("{spec:#?}")] {
            assert!(shown.contains("token"), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            // Nor as the numbers a byte vector prints as.
            assert!(!shown.contains("115, 51, 99"), "{shown}");
        }
        let wire = serde_json::to_vec(&spec).unwrap();
        let back: BuildSpec = serde_json::from_slice(&wire).unwrap();
        assert_eq!(back.secrets[0].0, "token");
        assert_eq!(*back.secrets[0].1.0, b"s3cr3t-bytes");
    }
}
