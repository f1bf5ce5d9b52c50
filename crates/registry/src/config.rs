//! Per-registry settings: plain HTTP, skipped TLS verification, extra CA, mirrors of
//! Docker Hub's endpoint.
//!
//! From `$MANIFOLD_CONFIG/config.toml` (default `~/.config/manifold/config.toml`):
//!
//! ```toml
//! [registry."myregistry:5000"]
//! http = true          # speak plain HTTP
//! insecure = true      # HTTPS without certificate verification
//! ca = "/etc/ssl/my-ca.pem"
//! ```
//!
//! plus `--insecure-registry HOST[:PORT]` on the command line (plain HTTP, or HTTPS
//! without verification when the host speaks TLS). `localhost` and `127.0.0.0/8` use
//! plain HTTP by default, as docker does.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{RegistryError, Result};

/// Settings for one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default)]
    pub http: bool,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    registry: BTreeMap<String, HostConfig>,
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
        let file: ConfigFile = toml::from_str(text).map_err(|e| RegistryError::Config {
            path: origin.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(RegistryConfig {
            hosts: file.registry,
        })
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
    fn docker_hub_endpoint() {
        assert_eq!(endpoint_host("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_host("ghcr.io"), "ghcr.io");
    }
}
