//! Per-registry settings: plain HTTP, skipped TLS verification, extra CA, and
//! mirrors to read from before the registry itself.
//!
//! From `$MANIFOLD_CONFIG/config.toml` (default `~/.config/manifold/config.toml`),
//! in the form of BuildKit's `buildkitd.toml`:
//!
//! ```toml
//! [registry."myregistry:5000"]
//! http = true          # speak plain HTTP
//! insecure = true      # HTTPS without certificate verification
//! ca = "/etc/ssl/my-ca.pem"
//!
//! [registry."docker.io"]
//! mirrors = ["mirror.gcr.io", "harbor.lan/proxy-hub"]
//!
//! [registry."harbor.lan"]   # a mirror's own table sets how to reach it
//! ca = "/etc/ssl/harbor-ca.pem"
//! ```
//!
//! A mirror is `HOST[:PORT]`, optionally followed by a path the mirror serves the
//! registry's repositories under (as BuildKit allows): `harbor.lan/proxy-hub` is
//! asked for `docker.io/library/alpine` at `https://harbor.lan/v2/proxy-hub/library/alpine/`.
//! Pulls read manifests and blobs from each mirror in order, then from the registry;
//! pushes, mounts, uploads and login checks go to the registry only. The scheme,
//! TLS settings and credentials of a mirror are its own host's, never the
//! registry's. Unlike BuildKit, which drops a scheme written in a mirror
//! (`"http://x"` still speaks HTTPS there), a scheme is an error here: plain HTTP is
//! `http = true` in the mirror's own table.
//!
//! plus `--insecure-registry HOST[:PORT]` on the command line (plain HTTP, or HTTPS
//! without verification when the host speaks TLS). `localhost` and `127.0.0.0/8` use
//! plain HTTP by default, as docker does, unless their table sets `http`,
//! `insecure` or `ca` (a table with only `mirrors` keeps the default).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{RegistryError, Result};

/// Settings for one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub http: bool,
    pub insecure: bool,
    pub ca: Option<PathBuf>,
    /// Where pulls from this host read first, in order.
    pub mirrors: Vec<Mirror>,
}

/// A mirror of a registry: `HOST[:PORT]` and the path, if any, under which it
/// serves the registry's repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `HOST[:PORT]`, as written: the key of the mirror's own `[registry]` table
    /// and of its credentials.
    pub host: String,
    /// Path components before the repository name (`proxy-hub`), or empty.
    pub path: String,
}

impl Mirror {
    /// Parse `HOST[:PORT][/PATH]`; the error says what is wrong with `value`.
    pub fn parse(value: &str) -> Result<Mirror, String> {
        if value.trim().is_empty() {
            return Err("is empty; write HOST[:PORT] or HOST[:PORT]/PATH".into());
        }
        if value.contains("://") {
            return Err(
                "has a scheme; write HOST[:PORT] or HOST[:PORT]/PATH, and `http = true` \
                 in the mirror's own [registry.\"HOST\"] table for plain HTTP"
                    .into(),
            );
        }
        let trimmed = value.trim_end_matches('/');
        let (host, path) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        if !is_host(host) {
            return Err(format!(
                "is not a host: {host:?} is not HOST[:PORT] (a name, an IPv4 address or a \
                 bracketed IPv6 address, then an optional port)"
            ));
        }
        if !path.is_empty() {
            let probe = format!("localhost/{path}/x");
            let ok =
                oci::Reference::parse(&probe).is_ok_and(|r| r.repository() == format!("{path}/x"));
            if !ok {
                return Err(format!(
                    "has path {path:?}, which is not a repository path (lowercase \
                     components separated by `/`)"
                ));
            }
        }
        Ok(Mirror {
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

impl std::fmt::Display for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.host)?;
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        Ok(())
    }
}

/// `HOST[:PORT]` with nothing else: no user, no path, no query.
fn is_host(host: &str) -> bool {
    if host.is_empty() || host.contains(['@', '?', '#', '\\', ' ']) {
        return false;
    }
    url::Url::parse(&format!("https://{host}/")).is_ok_and(|u| {
        u.host_str().is_some_and(|h| !h.is_empty())
            && u.username().is_empty()
            && u.password().is_none()
            && u.path() == "/"
            && u.query().is_none()
            && u.fragment().is_none()
    })
}

/// One `[registry."HOST"]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostTable {
    #[serde(default)]
    http: Option<bool>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    ca: Option<PathBuf>,
    #[serde(default)]
    mirrors: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    registry: BTreeMap<String, HostTable>,
    /// The garbage-collection policy, which the binary reads itself.
    #[serde(default, rename = "gc")]
    _gc: Option<serde::de::IgnoredAny>,
    /// The build history's retention, which the binary reads itself.
    #[serde(default, rename = "history")]
    _history: Option<serde::de::IgnoredAny>,
}

/// All registry settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    hosts: BTreeMap<String, HostConfig>,
}

impl RegistryConfig {
    /// Read `<dir>/config.toml`; a missing file means defaults.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(RegistryError::Config {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        Self::parse(&text, &path)
    }

    /// Parse config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let invalid = |reason: String| RegistryError::Config {
            path: origin.display().to_string(),
            reason,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut hosts = BTreeMap::new();
        for (name, table) in file.registry {
            let mirrors = table
                .mirrors
                .iter()
                .map(|m| {
                    Mirror::parse(m)
                        .map_err(|why| invalid(format!("[registry.{name:?}] mirror {m:?} {why}")))
                })
                .collect::<Result<Vec<_>>>()?;
            // A table that says nothing of how to reach the host (only mirrors,
            // say) keeps the default: plain HTTP for loopback.
            let unsaid = !table.insecure && table.ca.is_none();
            let http = table
                .http
                .unwrap_or_else(|| unsaid && is_local(strip_port(&name)));
            let host = HostConfig {
                http,
                insecure: table.insecure,
                ca: table.ca,
                mirrors,
            };
            hosts.insert(name, host);
        }
        Ok(RegistryConfig { hosts })
    }

    /// Mark `host` (as `HOST[:PORT]`) insecure: plain HTTP or unverified TLS.
    pub fn add_insecure(&mut self, host: &str) {
        let entry = self.hosts.entry(host.to_owned()).or_default();
        entry.http = true;
        entry.insecure = true;
    }

    /// Settings for `host` (`HOST[:PORT]`), falling back to the host without port.
    pub fn host(&self, host: &str) -> HostConfig {
        if let Some(c) = self.hosts.get(host) {
            return c.clone();
        }
        let bare = strip_port(host);
        let mut c = self.hosts.get(bare).cloned().unwrap_or_default();
        if is_local(bare) {
            c.http = true;
        }
        c
    }

    /// The mirrors pulls from `registry` (as references name it) read first, in
    /// order: those of its table, or of the table for the host without port.
    pub fn mirrors(&self, registry: &str) -> Vec<Mirror> {
        self.host(registry).mirrors
    }

    /// Every configured CA file.
    pub fn ca_files(&self) -> impl Iterator<Item = &Path> {
        self.hosts.values().filter_map(|h| h.ca.as_deref())
    }

    /// Whether any host skips TLS verification.
    pub fn any_insecure(&self) -> bool {
        self.hosts.values().any(|h| h.insecure)
    }
}

/// `host` without `:port` (IPv6 brackets kept off).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// localhost and loopback addresses: plain HTTP by default.
pub fn is_local(bare_host: &str) -> bool {
    bare_host == "localhost"
        || bare_host.ends_with(".localhost")
        || bare_host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The API endpoint host for a reference's registry: Docker Hub's is not `docker.io`.
pub fn endpoint_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gc_table_is_left_to_the_binary() {
        let c = RegistryConfig::parse(
            "[gc]\nkeep-storage = \"1GB\"\n[[gc.policy]]\nfilters = [\"type=step\"]\n\
             [registry.\"h:5000\"]\nhttp = true\n",
            Path::new("config.toml"),
        )
        .unwrap();
        assert!(c.host("h:5000").http);
    }

    #[test]
    fn loopback_is_plain_http_by_default() {
        let c = RegistryConfig::default();
        assert!(c.host("localhost:5000").http);
        assert!(c.host("127.0.0.1:5000").http);
        assert!(c.host("127.3.4.5").http);
        assert!(c.host("[::1]:5000").http);
        assert!(!c.host("ghcr.io").http);
        assert!(!c.host("10.0.0.1:5000").http);
    }

    #[test]
    fn file_settings_and_flags() {
        let mut c = RegistryConfig::parse(
            "[registry.\"reg.example:5000\"]\nhttp = true\n[registry.\"tls.example\"]\ninsecure = true\nca = \"/x.pem\"\n",
            Path::new("config.toml"),
        )
        .unwrap();
        assert!(c.host("reg.example:5000").http);
        assert!(!c.host("reg.example:5001").http);
        assert!(
            c.host("tls.example:443").insecure,
            "bare host applies to any port"
        );
        c.add_insecure("other:1");
        assert!(c.host("other:1").http);
        assert_eq!(c.ca_files().count(), 1);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_file() {
        let err =
            RegistryConfig::parse("[registry.x]\nhttps = true\n", Path::new("/c/config.toml"))
                .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/c/config.toml") && msg.contains("https"),
            "{msg}"
        );
    }

    #[test]
    fn mirrors_are_hosts_with_an_optional_path() {
        let c = RegistryConfig::parse(
            "[registry.\"docker.io\"]\nmirrors = [\"mirror.example:5000\", \"harbor.lan/proxy/hub/\", \"[::1]:5001\"]\n\
             [registry.\"mirror.example:5000\"]\nhttp = true\n",
            Path::new("config.toml"),
        )
        .unwrap();
        let mirrors = c.mirrors("docker.io");
        let shown: Vec<String> = mirrors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["mirror.example:5000", "harbor.lan/proxy/hub", "[::1]:5001"]
        );
        assert_eq!(mirrors[1].host, "harbor.lan");
        assert_eq!(mirrors[1].path, "proxy/hub");
        assert!(c.host("mirror.example:5000").http, "the mirror's own table");
        assert!(c.host("mirror.example:5000").mirrors.is_empty());
        assert!(c.mirrors("ghcr.io").is_empty());
    }

    #[test]
    fn a_loopback_table_with_only_mirrors_keeps_plain_http() {
        let c = RegistryConfig::parse(
            "[registry.\"127.0.0.1:5000\"]\nmirrors = [\"127.0.0.1:5001\"]\n\
             [registry.\"127.0.0.1:5002\"]\nca = \"/x.pem\"\n\
             [registry.\"127.0.0.1:5003\"]\nhttp = false\n",
            Path::new("config.toml"),
        )
        .unwrap();
        assert!(c.host("127.0.0.1:5000").http);
        assert!(c.host("127.0.0.1:5001").http, "a mirror without a table");
        assert!(!c.host("127.0.0.1:5002").http, "a CA means TLS");
        assert!(!c.host("127.0.0.1:5003").http, "said explicitly");
    }

    #[test]
    fn a_bad_mirror_names_the_file_the_table_and_the_value() {
        for (value, why) in [
            ("http://x/", "has a scheme"),
            ("https://mirror.gcr.io", "has a scheme"),
            ("", "is empty"),
            ("  ", "is empty"),
            ("user@host", "is not a host"),
            ("host:port", "is not a host"),
            ("a b", "is not a host"),
            ("/path", "is not a host"),
            ("harbor.lan/Proxy", "not a repository path"),
            ("harbor.lan/a//b", "not a repository path"),
        ] {
            let text = format!("[registry.\"docker.io\"]\nmirrors = [\"ok.example\", {value:?}]\n");
            let msg = RegistryConfig::parse(&text, Path::new("/c/config.toml"))
                .unwrap_err()
                .to_string();
            for part in ["/c/config.toml", "[registry.\"docker.io\"]", why] {
                assert!(msg.contains(part), "{value:?}: {part:?} missing from {msg}");
            }
            assert!(msg.contains(&format!("{value:?}")), "{value:?}: {msg}");
        }
    }

    #[test]
    fn mirrors_must_be_a_list_of_strings() {
        let err = RegistryConfig::parse(
            "[registry.\"docker.io\"]\nmirrors = \"mirror.example\"\n",
            Path::new("/c/config.toml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/c/config.toml") && msg.contains("mirrors"),
            "{msg}"
        );
    }

    #[test]
    fn docker_hub_endpoint() {
        assert_eq!(endpoint_host("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_host("ghcr.io"), "ghcr.io");
    }
}
