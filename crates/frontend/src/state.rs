//! The state of a stage while it is lowered: its filesystem (a vertex), the
//! process environment, directory and user steps run with, and the image
//! config being built.

use graph::op::EnvVar;
use oci::document::{ContainerConfig, History};
use oci::{Digest, ImageConfig, Platform};

/// BuildKit's `PATH` when the base image has none (not on Windows).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// BuildKit's history comment.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Environment with LLB semantics: setting a name moves it to the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EnvList(Vec<(String, String)>);

impl EnvList {
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_owned(), value.to_owned()));
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn vars(&self) -> Vec<EnvVar> {
        self.0.iter().map(|(k, v)| EnvVar::new(k, v)).collect()
    }
}

impl dockerfile::Env for EnvList {
    fn get(&self, name: &str) -> Option<&str> {
        EnvList::get(self, name)
    }
}

/// A stage being lowered.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    /// Display name: the stage's name or `stage-N`.
    pub name: String,
    /// `--no-cache-filter` matched.
    pub ignore_cache: bool,
    pub root: Digest,
    pub env: EnvList,
    pub dir: String,
    pub user: String,
    pub platform: Platform,
    pub image: ImageConfig,
    /// ARGs declared in this stage, in order, for `RUN` history.
    pub args: Vec<(String, Option<String>)>,
    /// `CMD` was set in this stage (an `ENTRYPOINT` then keeps it).
    pub cmd_set: bool,
    /// Progress numbering: steps done and total.
    pub step: usize,
    pub steps: usize,
    /// The base image's ONBUILD triggers, still to run at the start of the stage.
    pub triggers: Vec<String>,
}

/// A filesystem with the config that describes it.
pub(crate) struct Base {
    pub root: Digest,
    pub config: ImageConfig,
    pub platform: Platform,
}

impl StageState {
    pub(crate) fn from_base(name: String, base: Base) -> Self {
        StageState {
            name,
            ignore_cache: false,
            root: base.root,
            env: EnvList::default(),
            dir: "/".to_owned(),
            user: String::new(),
            platform: base.platform,
            image: base.config,
            triggers: Vec::new(),
            args: Vec::new(),
            cmd_set: false,
            step: 0,
            steps: 0,
        }
    }

    pub(crate) fn config(&mut self) -> &mut ContainerConfig {
        self.image
            .config
            .get_or_insert_with(ContainerConfig::default)
    }

    /// Append a history entry as BuildKit's `commitToHistory` does.
    pub(crate) fn commit(
        &mut self,
        created_by: String,
        layer: bool,
        buildkit: bool,
        epoch: Option<i64>,
    ) {
        let created_by = if buildkit {
            format!("{created_by} # buildkit")
        } else {
            created_by
        };
        self.image.history.push(History {
            created: epoch.map(oci::rfc3339),
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.to_owned()),
            empty_layer: !layer,
        });
    }

    /// Set `name=value` in the config's `Env`, in place if present.
    pub(crate) fn set_config_env(&mut self, name: &str, value: &str) {
        let env = self.config().env.get_or_insert_with(Vec::new);
        let entry = format!("{name}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == name)
        {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }

    /// BuildKit's progress name: `[stage-0 2/4] RUN make`, with the platform
    /// first when several are built.
    pub(crate) fn describe(&mut self, text: &str, platform: Option<&Platform>) -> String {
        if self.steps == 0 {
            return text.to_owned();
        }
        self.step += 1;
        progress(&self.name, self.step, self.steps, platform, text)
    }
}

/// The first word upper-cased, as BuildKit shows instructions.
pub(crate) fn upper_first_word(s: &str) -> String {
    match s.split_once(' ') {
        Some((w, rest)) => format!("{} {rest}", w.to_uppercase()),
        None => s.to_uppercase(),
    }
}

/// `[linux/arm64 build 2/4] RUN make` (platform only when given).
pub(crate) fn progress(
    stage: &str,
    step: usize,
    steps: usize,
    platform: Option<&Platform>,
    text: &str,
) -> String {
    let width = steps.to_string().len();
    let plat = platform.map(|p| format!("{p} ")).unwrap_or_default();
    format!("[{plat}{stage} {step:>width$}/{steps}] {text}")
}
