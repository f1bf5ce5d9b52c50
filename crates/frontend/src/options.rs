//! What the user asked for: target, platforms, build arguments, contexts.

use std::collections::BTreeMap;

use oci::Platform;

/// The options of one build, as `docker buildx build` takes them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildOptions {
    /// `--target`: the stage to build; the last stage when `None`.
    pub target: Option<String>,
    /// `--platform`: one output per platform; the host's when empty.
    pub platforms: Vec<Platform>,
    /// The platform the build runs on (`BUILDPLATFORM`); the host's when `None`.
    pub build_platform: Option<Platform>,
    /// `--build-arg NAME=value`, or `--build-arg NAME` (`None`), which keeps
    /// the Dockerfile's default: the client fills it from its environment
    /// before calling the frontend when it can.
    pub build_args: Vec<(String, Option<String>)>,
    /// `--build-context NAME=…`: sources that replace a stage, an image or
    /// a `--from` of that name.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--label`: added to the target's config last.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`: no step is taken from the cache.
    pub no_cache: bool,
    /// `--no-cache-filter`: steps of these stages are not taken from the cache.
    pub no_cache_filter: Vec<String>,
    /// `SOURCE_DATE_EPOCH` in seconds: history times and file times. A build
    /// argument of that name is used when this is `None`.
    pub source_date_epoch: Option<i64>,
    /// Patterns the main context never sends (`.dockerignore`).
    pub context_excludes: Vec<String>,
    /// `--network`: the network of `RUN`s that do not choose one.
    pub network: graph::op::Network,
    /// `--add-host`: extra `/etc/hosts` lines of every `RUN`.
    #[serde(default)]
    pub extra_hosts: Vec<graph::op::HostEntry>,
    /// `--ulimit`: resource limits of every `RUN`.
    #[serde(default)]
    pub ulimits: Vec<graph::op::Ulimit>,
    /// `--shm-size`: the size of `/dev/shm` of every `RUN`, in bytes.
    #[serde(default)]
    pub shm_size: Option<u64>,
}

/// What a `--build-context` name stands for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NamedContext {
    /// A directory the client sends, as the local source `name`.
    Local { name: String },
    /// `docker-image://ref`: an image used instead.
    Image { reference: String },
}

impl BuildOptions {
    /// The value of build argument `name`, if given with a value.
    pub fn build_arg(&self, name: &str) -> Option<&str> {
        self.build_args
            .iter()
            .rev()
            .find(|(k, v)| k == name && v.is_some())
            .and_then(|(_, v)| v.as_deref())
    }

    pub(crate) fn is_no_cache(&self, stage: Option<&str>) -> bool {
        self.no_cache || stage.is_some_and(|s| self.no_cache_filter.iter().any(|f| f == s))
    }
}
