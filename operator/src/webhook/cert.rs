//! The webhook's serving certificate when Weft issues it itself: a rustls
//! [`ResolvesServerCert`] whose certificate and key are swapped in place
//! ([`RotatingCert::swap`]), so a renewed certificate is presented from the
//! next handshake on without a restart or a dropped connection. Issuing and
//! renewing is [`crate::webhook_certs`]'s.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why an issued certificate cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the issued webhook certificate is not PEM: {0}")]
    Certificate(String),
    #[error("the issued webhook key is not a PEM private key: {0}")]
    Key(String),
    #[error("the issued webhook certificate and key cannot be used together: {0}")]
    Tls(#[from] rustls::Error),
}

impl CertError {
    pub fn kind(&self) -> &'static str {
        match self {
            CertError::Certificate(_) => "certificate",
            CertError::Key(_) => "key",
            CertError::Tls(_) => "tls",
        }
    }
}

/// A chain (leaf first, PEM blocks) and its key (PEM) as rustls serves them.
pub fn certified_key(chain_pem: &[String], key_pem: &str) -> Result<CertifiedKey, CertError> {
    let mut certs: Vec<CertificateDer<'static>> = Vec::with_capacity(chain_pem.len());
    for block in chain_pem {
        for cert in CertificateDer::pem_slice_iter(block.as_bytes()) {
            certs.push(cert.map_err(|err| CertError::Certificate(err.to_string()))?);
        }
    }
    if certs.is_empty() {
        return Err(CertError::Certificate("no CERTIFICATE block".to_string()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|err| CertError::Key(err.to_string()))?;
    Ok(CertifiedKey::from_der(
        certs,
        key,
        &rustls::crypto::ring::default_provider(),
    )?)
}

/// The current serving certificate, replaceable while the server runs.
#[derive(Debug)]
pub struct RotatingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl RotatingCert {
    pub fn new(first: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(first)),
        }
    }

    /// Serves `next` from the next handshake on.
    pub fn swap(&self, next: CertifiedKey) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(next);
    }

    /// The certificate handshakes get now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for RotatingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use weft_citadel::{CertificateAuthority, KeyType};

    use super::*;

    fn mk_issued(ca: &CertificateAuthority) -> CertifiedKey {
        let (chain, key) = ca
            .issue_serving_cert(
                &["weft.weft-system.svc".to_string()],
                &[],
                Duration::from_secs(60),
            )
            .unwrap();
        certified_key(&chain, &key).unwrap()
    }

    #[test]
    fn a_swap_changes_what_is_served() {
        let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
        let first = mk_issued(&ca);
        let leaf = first.cert[0].clone();
        let rotating = RotatingCert::new(first);
        assert_eq!(rotating.current().end_entity_cert().unwrap(), &leaf);
        rotating.swap(mk_issued(&ca));
        assert_ne!(rotating.current().end_entity_cert().unwrap(), &leaf);
        // Leaf and root: the CA's chain rides along.
        assert_eq!(rotating.current().cert.len(), 2);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
        let names = ["weft".to_string()];
        let (chain, _) = ca
            .issue_serving_cert(&names, &[], Duration::from_secs(60))
            .unwrap();
        let (_, other_key) = ca
            .issue_serving_cert(&names, &[], Duration::from_secs(60))
            .unwrap();
        let err = certified_key(&chain, &other_key).unwrap_err();
        assert_eq!(err.kind(), "tls", "{err}");
        assert!(certified_key(&[], &other_key).is_err());
    }
}
