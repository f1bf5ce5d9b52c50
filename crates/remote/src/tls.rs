//! Mutual TLS for TCP daemons: the daemon presents its certificate and accepts only
//! clients whose certificate chains to its CA; the client does the same in reverse.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// PEM files: the CA that signed the peer, and this side's certificate and key
/// (absolute paths in a stored builder instance).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("TLS file {path}: {reason}")]
pub struct TlsError {
    pub path: PathBuf,
    pub reason: String,
}

fn bad(path: &Path, reason: impl ToString) -> TlsError {
    TlsError {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c).map_err(|e| bad(path, e))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The daemon's side: client certificates are required.
pub fn server_config(f: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(&f.ca)?),
        provider(),
    )
    .build()
    .map_err(|e| bad(&f.ca, e))?;
    let key = PrivateKeyDer::from_pem_file(&f.key).map_err(|e| bad(&f.key, e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&f.cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&f.cert)?, key)
        .map_err(|e| bad(&f.key, e))?;
    Ok(Arc::new(config))
}

/// The client's side.
pub fn client_config(f: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let key = PrivateKeyDer::from_pem_file(&f.key).map_err(|e| bad(&f.key, e))?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&f.cert, e))?
        .with_root_certificates(roots(&f.ca)?)
        .with_client_auth_cert(certs(&f.cert)?, key)
        .map_err(|e| bad(&f.key, e))?;
    Ok(Arc::new(config))
}
