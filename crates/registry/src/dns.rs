//! Name resolution that refuses private and link-local answers for hosts a server
//! pointed us at (token realms, redirects), so a hostname cannot smuggle a request
//! to an internal address that an address literal could not. Registries the user
//! names are trusted whatever they resolve to.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::auth::forbidden_ip;

/// Why a resolution was refused.
#[derive(Debug, thiserror::Error)]
#[error("refusing to contact {host}: it resolves to {ip}, a {reason}")]
pub struct Refused {
    pub host: String,
    pub ip: std::net::IpAddr,
    pub reason: &'static str,
}

/// Hosts the user asked for (registries in references, login servers).
#[derive(Debug, Default, Clone)]
pub struct TrustedHosts(Arc<Mutex<HashSet<String>>>);

impl TrustedHosts {
    pub fn add(&self, host: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_ascii_lowercase());
    }

    pub fn contains(&self, host: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&host.to_ascii_lowercase())
    }
}

/// The policy: untrusted hosts must not resolve to a forbidden address.
pub fn screen(host: &str, trusted: bool, addrs: &[SocketAddr]) -> Result<(), Refused> {
    if trusted {
        return Ok(());
    }
    for a in addrs {
        if let Some(reason) = forbidden_ip(a.ip()) {
            return Err(Refused {
                host: host.to_owned(),
                ip: a.ip(),
                reason,
            });
        }
    }
    Ok(())
}

/// A system resolver with [`screen`] applied.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub trusted: TrustedHosts,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let trusted = self.trusted.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            screen(&host, trusted, &addrs)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
            .collect()
    }

    #[test]
    fn untrusted_names_must_not_resolve_to_internal_addresses() {
        let err = screen(
            "auth.evil.example",
            false,
            &addrs(&["93.184.216.34", "169.254.169.254"]),
        )
        .unwrap_err();
        assert_eq!(err.ip.to_string(), "169.254.169.254");
        assert!(err.to_string().contains("auth.evil.example"), "{err}");
        assert!(screen("x.example", false, &addrs(&["10.1.2.3"])).is_err());
        assert!(screen("x.example", false, &addrs(&["::ffff:192.168.0.1"])).is_err());
        assert!(screen("x.example", false, &addrs(&["93.184.216.34"])).is_ok());
        assert!(
            screen("localhost", false, &addrs(&["127.0.0.1", "::1"])).is_ok(),
            "loopback is this machine"
        );
    }

    #[test]
    fn registries_the_user_named_are_trusted() {
        let t = TrustedHosts::default();
        t.add("Harbor.Corp.Example");
        assert!(t.contains("harbor.corp.example"));
        assert!(
            screen(
                "harbor.corp.example",
                t.contains("harbor.corp.example"),
                &addrs(&["10.0.0.5"])
            )
            .is_ok()
        );
    }

    #[tokio::test]
    async fn the_resolver_applies_the_policy() {
        let r = GuardedResolver {
            trusted: TrustedHosts::default(),
        };
        let name: Name = "localhost".parse().unwrap();
        let got: Vec<_> = r.resolve(name).await.unwrap().collect();
        assert!(got.iter().all(|a| a.ip().is_loopback()), "{got:?}");
    }
}
