//! Builder daemons: `manifold daemon` serves builds over a Unix socket or TCP with
//! mutual TLS, and the client sends them (context files, secrets and registry
//! credentials per build) and streams progress back.

mod client;
mod conn;
mod endpoint;
mod events;
pub mod instances;
pub mod nodes;
pub mod probe;
pub mod protocol;
mod server;
pub mod sync;
pub mod tls;
pub mod transfer;
pub mod wire;

pub use client::{BuildHandle, Fetch, build, check_protocol, info};
pub use endpoint::{Endpoint, EndpointError};
pub use protocol::Info;
pub use server::{Admission, AfterBuild, DaemonConfig, serve};
pub use tls::{TlsError, TlsFiles};

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
