//! Where a daemon listens: `unix:///run/manifold.sock` or `tcp://HOST:PORT`.

use std::fmt;
use std::path::PathBuf;

/// A daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`; always with mutual TLS.
    Tcp(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid daemon address {given:?}: {reason} (want unix:///PATH or tcp://HOST:PORT)")]
pub struct EndpointError {
    pub given: String,
    pub reason: &'static str,
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let err = |reason| EndpointError {
            given: s.to_owned(),
            reason,
        };
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(err("the socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(hp) = s.strip_prefix("tcp://") {
            let hp = hp.trim_end_matches('/');
            let Some((host, port)) = hp.rsplit_once(':') else {
                return Err(err("a port is required"));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(err("want HOST:PORT with a numeric port"));
            }
            return Ok(Endpoint::Tcp(hp.to_owned()));
        }
        Err(err("unknown scheme"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(hp) => write!(f, "tcp://{hp}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp_and_refuses_the_rest() {
        assert_eq!(
            Endpoint::parse("unix:///run/m.sock").unwrap(),
            Endpoint::Unix("/run/m.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.2:7000").unwrap().to_string(),
            "tcp://127.0.0.2:7000"
        );
        for bad in [
            "unix://rel.sock",
            "tcp://host",
            "tcp://:1",
            "tcp://h:x",
            "http://h:1",
            "",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
