//! `WWW-Authenticate` challenges, token exchange and the token cache.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::credentials::Credential;

/// A parsed authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value; Bearer is preferred over Basic.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut basic = false;
    for c in http_auth::parser::ChallengeParser::new(header).flatten() {
        if c.scheme.eq_ignore_ascii_case("bearer") {
            let param = |k: &str| {
                c.params
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.to_unescaped())
            };
            let realm = param("realm")?;
            return Some(Challenge::Bearer {
                realm,
                service: param("service"),
                scope: param("scope"),
            });
        }
        if c.scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    basic.then_some(Challenge::Basic)
}

/// `Authorization` value for Basic credentials, if there are any.
pub fn basic_header(cred: &Credential) -> Option<String> {
    match cred {
        Credential::Basic { username, password } => Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{username}:{}", password.expose()))
        )),
        _ => None,
    }
}

/// Whether credentials for `registry_host` may be sent to `realm_host`: the same
/// host, or (for names, not addresses) hosts under the same parent domain, as Docker
/// Hub's `auth.docker.io` for `registry-1.docker.io`.
pub fn same_site(registry_host: &str, realm_host: &str) -> bool {
    let (a, b) = (
        registry_host.to_ascii_lowercase(),
        realm_host.to_ascii_lowercase(),
    );
    if a == b {
        return true;
    }
    if a.parse::<IpAddr>().is_ok()
        || b.parse::<IpAddr>().is_ok()
        || a == "localhost"
        || b == "localhost"
    {
        return false;
    }
    let site = |h: &str| {
        let labels: Vec<&str> = h.rsplit('.').take(2).collect();
        (labels.len() == 2).then(|| format!("{}.{}", labels[1], labels[0]))
    };
    matches!((site(&a), site(&b)), (Some(x), Some(y)) if x == y)
}

/// Why a server-provided address must not be contacted: private, link-local,
/// shared (CGNAT), unspecified, multicast or broadcast. Loopback is allowed (it is
/// this machine), as are public addresses.
pub fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_private() {
                Some("private address")
            } else if v4.is_link_local() {
                Some("link-local address")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT) address")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
                Some("non-unicast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            if (seg[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local) address")
            } else if (seg[0] & 0xffc0) == 0xfe80 {
                Some("link-local address")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("non-unicast address")
            } else {
                None
            }
        }
    }
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The token endpoint's answer.
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<Token> {
        let value = if self.token.is_empty() {
            self.access_token
        } else {
            self.token
        };
        if value.is_empty() {
            return None;
        }
        // The spec's default lifetime is 60 s; renew a little early.
        let life = Duration::from_secs(self.expires_in.unwrap_or(60).max(10));
        Some(Token {
            value,
            expires: Instant::now() + life - Duration::from_secs(5),
        })
    }
}

/// How a host wants to be authenticated, learned from its first challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAuth {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Tokens per (host, scope) and the auth scheme per host.
#[derive(Debug, Default)]
pub struct AuthCache {
    pub schemes: HashMap<String, HostAuth>,
    pub tokens: HashMap<(String, String), Token>,
}

impl AuthCache {
    pub fn token(&self, host: &str, scope: &str) -> Option<String> {
        self.tokens
            .get(&(host.to_owned(), scope.to_owned()))
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into())
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(
            parse_challenge("Bearer service=\"x\""),
            None,
            "a realm is required"
        );
    }

    #[test]
    fn credentials_stay_on_their_site() {
        assert!(same_site("registry-1.docker.io", "auth.docker.io"));
        assert!(same_site("ghcr.io", "ghcr.io"));
        assert!(!same_site("127.0.0.1", "127.0.0.2"));
        assert!(!same_site("registry.example.com", "evil.example.org"));
        assert!(!same_site("localhost", "127.0.0.1"));
    }

    #[test]
    fn forbidden_addresses() {
        for bad in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::ffff:10.0.0.1",
            "fe80::1",
            "fd00::1",
        ] {
            assert!(forbidden_ip(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for ok in ["127.0.0.1", "127.0.0.2", "::1", "8.8.8.8", "2001:db8::1"] {
            assert!(forbidden_ip(ok.parse().unwrap()).is_none(), "{ok}");
        }
    }
}
