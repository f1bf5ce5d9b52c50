//! HTTPS: rustls (aws-lc-rs) in front of the same router.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Registry;
use crate::error::ServerError;

/// A server configuration from a PEM certificate chain and private key.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let bad = |path: &Path, reason: String| ServerError::Tls {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve `registry` over TLS on `listener` until the future is dropped. Needs tokio's
/// multi-threaded runtime.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    crate::check_runtime()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    crate::serve_connections(listener, registry, Some(acceptor)).await
}
