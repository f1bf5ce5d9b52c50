//! A connection to or from a daemon: a Unix socket, or TCP with mutual TLS.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::RemoteError;
use crate::endpoint::Endpoint;
use crate::tls::{self, TlsFiles};

/// A byte stream either way.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub type Conn = Box<dyn Stream>;

/// Connect to the daemon at `endpoint` (TCP needs `tls`).
pub async fn connect(endpoint: &Endpoint, tls: Option<&TlsFiles>) -> Result<Conn, RemoteError> {
    let err = |source| RemoteError::Connect {
        endpoint: endpoint.to_string(),
        source,
    };
    match endpoint {
        Endpoint::Unix(path) => Ok(Box::new(
            tokio::net::UnixStream::connect(path).await.map_err(err)?,
        )),
        Endpoint::Tcp(hp) => {
            let files = tls.ok_or_else(|| RemoteError::Protocol {
                endpoint: endpoint.to_string(),
                message: "a tcp:// daemon needs TLS: give the CA, certificate and key".into(),
            })?;
            let config = tls::client_config(files).map_err(|e| RemoteError::Protocol {
                endpoint: endpoint.to_string(),
                message: e.to_string(),
            })?;
            let tcp = tokio::net::TcpStream::connect(hp).await.map_err(err)?;
            let host = hp.rsplit_once(':').map_or(hp.as_str(), |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                RemoteError::Protocol {
                    endpoint: endpoint.to_string(),
                    message: format!("bad server name {host:?}: {e}"),
                }
            })?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&config))
                .connect(name, tcp)
                .await
                .map_err(err)?;
            Ok(Box::new(tls))
        }
    }
}
