//! Where manifold's own configuration lives (`--config`, `MANIFOLD_CONFIG`,
//! `$XDG_CONFIG_HOME/manifold`, `~/.config/manifold`): builder instances, registry
//! settings, the garbage-collection policy.

use std::path::Path;

use anyhow::{Context, anyhow};

use crate::cli::Global;

/// The configuration directory.
pub(crate) fn config_dir(global: &Global) -> std::path::PathBuf {
    if let Some(d) = &global.config {
        return d.clone();
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return std::path::PathBuf::from(x).join("manifold");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    std::path::PathBuf::from(home).join(".config/manifold")
}

/// The garbage-collection policy: `[gc]` in config.toml, applied after each local
/// build, as BuildKit's `gc`/`gckeepstorage`/`gcpolicy`:
///
/// ```toml
/// [gc]
/// enabled = true            # default
/// keep-storage = "10GB"     # default: a tenth of the file system, at most 20GB
/// keep-duration = "720h"    # default: 30 days
///
/// [[gc.policy]]             # optional rules, applied first, in order
/// filters = ["type=cache-mount"]
/// keep-storage = "1GB"
/// keep-duration = "48h"
/// ```
///
/// The top-level limits are two rules over all build state (steps and cache
/// mounts): what nobody used for `keep-duration` goes, then the least recently used
/// until the rest takes `keep-storage`. A `[[gc.policy]]` rule is one rule, as a
/// `prune --filter … --keep-storage …` is: of what its filters select and nobody
/// used for `keep-duration`, the least recently used go until what its filters
/// select takes `keep-storage`. Without `type=` a rule covers build state only;
/// `type=image` collects the content no name reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GcPolicy {
    pub enabled: bool,
    pub rules: Vec<builder::gc::Rule>,
    /// The top-level `keep-storage`: after the rules, the whole state root is kept
    /// under it (unnamed content, then more build state, least recently used first).
    pub keep_storage: u64,
}

const DEFAULT_KEEP_DURATION: std::time::Duration = std::time::Duration::from_secs(720 * 3600);

#[derive(Debug, Default, serde::Deserialize)]
struct ConfigFile {
    // The rest of config.toml (registry settings) is the registry crate's.
    #[serde(default)]
    gc: Option<GcTable>,
    #[serde(default)]
    history: Option<HistoryTable>,
}

/// `[history]`: how many builds `manifold history` keeps, and how long (BuildKit's
/// `maxEntries` and `maxAge`).
///
/// ```toml
/// [history]
/// max-entries = 50     # default
/// max-age = "48h"      # default
/// ```
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HistoryTable {
    #[serde(default)]
    max_entries: Option<usize>,
    #[serde(default)]
    max_age: Option<String>,
}

/// The history retention of `<dir>/config.toml` (defaults without one).
pub(crate) fn history_retention(dir: &Path) -> anyhow::Result<builder::history::Retention> {
    let path = dir.join("config.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse_history(&text).with_context(|| format!("invalid [history] in {}", path.display()))
}

fn parse_history(text: &str) -> anyhow::Result<builder::history::Retention> {
    let file: ConfigFile = toml::from_str(text)?;
    let mut keep = builder::history::Retention::default();
    if let Some(t) = file.history {
        if let Some(n) = t.max_entries {
            if n == 0 {
                return Err(anyhow!("max-entries must be at least 1"));
            }
            keep.max_entries = n;
        }
        if let Some(age) = &t.max_age {
            keep.max_age = duration(age).context("max-age")?;
        }
    }
    Ok(keep)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct GcTable {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    keep_storage: Option<SizeValue>,
    #[serde(default)]
    keep_duration: Option<String>,
    #[serde(default)]
    policy: Vec<RuleTable>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RuleTable {
    #[serde(default)]
    filters: Vec<String>,
    #[serde(default)]
    keep_storage: Option<SizeValue>,
    #[serde(default)]
    keep_duration: Option<String>,
}

/// A size as a string (`"10GB"`) or a number of bytes.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// The build-state kinds a policy rule without `type=` covers.
const BUILD_STATE: [builder::gc::Kind; 2] =
    [builder::gc::Kind::Step, builder::gc::Kind::CacheMount];

/// Read the `[gc]` policy of `<dir>/config.toml` (defaults without one) for the
/// state root `root`.
pub(crate) fn gc_policy(dir: &Path, root: &Path) -> anyhow::Result<GcPolicy> {
    let path = dir.join("config.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse_gc(&text, || builder::gc::default_keep_storage(root))
        .with_context(|| format!("invalid [gc] in {}", path.display()))
}

fn parse_gc(text: &str, default_storage: impl Fn() -> u64) -> anyhow::Result<GcPolicy> {
    let file: ConfigFile = toml::from_str(text)?;
    let table = file.gc.unwrap_or(GcTable {
        enabled: None,
        keep_storage: None,
        keep_duration: None,
        policy: Vec::new(),
    });
    let mut rules = Vec::new();
    for (i, r) in table.policy.iter().enumerate() {
        let at = format!("[[gc.policy]] {}", i + 1);
        let filters = r
            .filters
            .iter()
            .map(|f| {
                builder::gc::Filter::parse(f).map_err(|why| anyhow!("{at}: filter {f:?} {why}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut rule = builder::gc::Rule::from_filters(&filters, &BUILD_STATE);
        if let Some(d) = &r.keep_duration {
            rule.until = Some(duration(d).with_context(|| format!("{at}: keep-duration"))?);
        }
        rule.keep_storage = r
            .keep_storage
            .as_ref()
            .map(size)
            .transpose()
            .with_context(|| format!("{at}: keep-storage"))?;
        rules.push(rule);
    }
    let keep_duration = match &table.keep_duration {
        Some(d) => duration(d).context("keep-duration")?,
        None => DEFAULT_KEEP_DURATION,
    };
    let keep_storage = match &table.keep_storage {
        Some(s) => size(s).context("keep-storage")?,
        None => default_storage(),
    };
    rules.push(builder::gc::Rule {
        kinds: BUILD_STATE.to_vec(),
        until: Some(keep_duration),
        keep_storage: None,
    });
    rules.push(builder::gc::Rule {
        kinds: BUILD_STATE.to_vec(),
        until: None,
        keep_storage: Some(keep_storage),
    });
    Ok(GcPolicy {
        enabled: table.enabled.unwrap_or(true),
        rules,
        keep_storage,
    })
}

fn duration(text: &str) -> anyhow::Result<std::time::Duration> {
    builder::gc::parse_duration(text).map_err(|why| anyhow!("{text:?} {why}"))
}

fn size(value: &SizeValue) -> anyhow::Result<u64> {
    match value {
        SizeValue::Bytes(b) => Ok(*b),
        SizeValue::Text(t) => builder::gc::parse_size(t).map_err(|why| anyhow!("{t:?} {why}")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use builder::gc::{Kind, Rule};

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn history_retention_reads_its_table() {
        assert_eq!(
            parse_history("").unwrap(),
            builder::history::Retention::default()
        );
        let r = parse_history("[history]\nmax-entries = 3\nmax-age = \"2h\"\n").unwrap();
        assert_eq!((r.max_entries, r.max_age), (3, 2 * HOUR));
        assert!(parse_history("[history]\nmax-entries = 0\n").is_err());
        assert!(parse_history("[history]\nmax-age = \"soon\"\n").is_err());
        assert!(parse_history("[history]\nkeep = 1\n").is_err());
    }

    #[test]
    fn no_gc_table_means_the_defaults() {
        let p = parse_gc("[registry.\"x:5000\"]\nhttp = true\n", || 7).unwrap();
        assert!(p.enabled);
        assert_eq!(
            p.rules,
            vec![
                Rule {
                    kinds: BUILD_STATE.to_vec(),
                    until: Some(720 * HOUR),
                    keep_storage: None
                },
                Rule {
                    kinds: BUILD_STATE.to_vec(),
                    until: None,
                    keep_storage: Some(7)
                },
            ]
        );
    }

    #[test]
    fn policy_rules_come_first_and_the_limits_last() {
        let p = parse_gc(
            "[gc]\nenabled = false\nkeep-storage = \"10GB\"\nkeep-duration = \"168h\"\n\
             [[gc.policy]]\nfilters = [\"type=cache-mount\"]\nkeep-storage = 1024\n\
             [[gc.policy]]\nfilters = [\"until=1h\", \"type=image\"]\n",
            || unreachable!("keep-storage is given"),
        )
        .unwrap();
        assert!(!p.enabled);
        assert_eq!(p.rules.len(), 4);
        assert_eq!(p.rules[0].kinds, vec![Kind::CacheMount]);
        assert_eq!(p.rules[0].keep_storage, Some(1024));
        assert_eq!(p.rules[1].kinds, vec![Kind::Image]);
        assert_eq!(p.rules[1].until, Some(HOUR));
        assert_eq!(p.rules[2].until, Some(168 * HOUR));
        assert_eq!(p.rules[3].keep_storage, Some(10 << 30));
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (text, want) in [
            ("[gc]\nkeep-storage = \"10q\"\n", "keep-storage"),
            ("[gc]\nkeep-duration = \"7d\"\n", "168h"),
            ("[gc]\nkeep = 1\n", "unknown field"),
            (
                "[[gc.policy]]\nfilters = [\"type=volume\"]\n",
                "[[gc.policy]] 1",
            ),
        ] {
            let e = format!("{:#}", parse_gc(text, || 0).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
