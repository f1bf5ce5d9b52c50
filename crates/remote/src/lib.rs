//! Builder daemons: `manifold daemon` serves builds over a Unix socket or TCP with
//! mutual TLS, and the client sends them (context files, secrets and registry
//! credentials per build) and streams progress back.

mod endpoint;
mod protocol;

pub use endpoint::{Endpoint, EndpointError};
pub use protocol::Info;

/// Why talking to a daemon failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    #[error("cannot connect to builder daemon at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("builder daemon at {endpoint}: {message}")]
    Protocol { endpoint: String, message: String },
}

/// Ask the daemon at `endpoint` what it is and what it runs.
pub async fn info(endpoint: &Endpoint) -> Result<Info, RemoteError> {
    Err(RemoteError::Protocol {
        endpoint: endpoint.to_string(),
        message: "not implemented yet".into(),
    })
}
