//! TLS contexts (rustls, ring provider) from PEM files.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::TransportError;

pub struct TlsContext {
    pub acceptor: TlsAcceptor,
    /// Outbound TLS; present when a CA list is configured.
    pub connector: Option<TlsConnector>,
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let data =
        std::fs::read(path).map_err(|e| TransportError::Tls(format!("{}: {e}", path.display())))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut data.as_slice()).collect();
    let certs = certs.map_err(|e| TransportError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TransportError::Tls(format!(
            "{}: no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

impl TlsContext {
    pub fn load(cert: &Path, key: &Path) -> Result<TlsContext, TransportError> {
        Self::load_with_ca(cert, key, None)
    }

    pub fn load_with_ca(
        cert: &Path,
        key: &Path,
        ca: Option<&Path>,
    ) -> Result<TlsContext, TransportError> {
        let certs = read_certs(cert)?;
        let key_data = std::fs::read(key)
            .map_err(|e| TransportError::Tls(format!("{}: {e}", key.display())))?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_data.as_slice())
            .map_err(|e| TransportError::Tls(format!("{}: {e}", key.display())))?
            .ok_or_else(|| TransportError::Tls(format!("{}: no private key", key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        let connector = match ca {
            None => None,
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in read_certs(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| TransportError::Tls(format!("{}: {e}", ca.display())))?;
                }
                let client = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| TransportError::Tls(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(TlsConnector::from(Arc::new(client)))
            }
        };
        Ok(TlsContext {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector,
        })
    }
}
