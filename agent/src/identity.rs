//! The workload's identity and the key and CSR that ask for it: an ECDSA
//! P-256 key generated in memory (never written anywhere) and a PEM CSR
//! whose only SAN is the requested SPIFFE ID. The CA decides the identity
//! it signs; the CSR's SAN is only a request.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};

/// Who the agent asks to be (`spiffe://<trust_domain>/ns/<ns>/sa/<sa>`):
/// citadel's identity type, the same on both ends of the CSR.
pub use weft_identity::Identity;

/// A fresh private key and the CSR for it.
pub struct KeyAndCsr {
    /// The private key, PKCS#8 PEM (what Envoy reads via SDS).
    pub key_pem: String,
    /// The certificate signing request, PEM.
    pub csr_pem: String,
}

impl std::fmt::Debug for KeyAndCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndCsr")
            .field("key_pem", &"<redacted>")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

/// Why no CSR could be made.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("cannot generate an ECDSA P-256 key: {0}")]
    Key(rcgen::Error),
    #[error("the SPIFFE ID {id:?} is not a valid URI SAN: {source}")]
    San { id: String, source: rcgen::Error },
    #[error("cannot sign the CSR: {0}")]
    Sign(rcgen::Error),
}

impl CsrError {
    pub fn kind(&self) -> &'static str {
        match self {
            CsrError::Key(_) => "key",
            CsrError::San { .. } => "san",
            CsrError::Sign(_) => "sign",
        }
    }
}

/// Generates a new ECDSA P-256 key and a CSR asking for `identity`.
pub fn generate(identity: &Identity) -> Result<KeyAndCsr, CsrError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CsrError::Key)?;
    let id = identity.spiffe_id();
    let uri = id.as_str().try_into().map_err(|source| CsrError::San {
        id: id.clone(),
        source,
    })?;
    let mut params = CertificateParams::default();
    // Istio's agent sends an empty subject; the identity is the URI SAN.
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr = params.serialize_request(&key).map_err(CsrError::Sign)?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem().map_err(CsrError::Sign)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rcgen::{CertificateSigningRequestParams, PublicKeyData};

    fn mk_identity() -> Identity {
        Identity {
            trust_domain: "cluster.local".into(),
            namespace: "ns1".into(),
            service_account: "reviews".into(),
        }
    }

    #[test]
    fn the_spiffe_id_follows_istio() {
        assert_eq!(
            mk_identity().spiffe_id(),
            "spiffe://cluster.local/ns/ns1/sa/reviews"
        );
    }

    #[test]
    fn the_csr_is_signed_by_the_new_key_and_asks_only_for_the_spiffe_id() {
        let made = generate(&mk_identity()).unwrap();
        assert!(
            made.csr_pem
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
        assert!(made.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // from_pem verifies the CSR's signature.
        let parsed = CertificateSigningRequestParams::from_pem(&made.csr_pem).unwrap();
        let sans: Vec<String> = parsed
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(uri) => uri.as_str().to_string(),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect();
        assert_eq!(sans, ["spiffe://cluster.local/ns/ns1/sa/reviews"]);
        let key = KeyPair::from_pem(&made.key_pem).unwrap();
        assert_eq!(
            PublicKeyData::der_bytes(&parsed.public_key),
            PublicKeyData::der_bytes(&key)
        );
        assert!(key.is_compatible(&PKCS_ECDSA_P256_SHA256));
    }

    #[test]
    fn each_call_makes_a_new_key() {
        let a = generate(&mk_identity()).unwrap();
        let b = generate(&mk_identity()).unwrap();
        assert_ne!(a.key_pem, b.key_pem);
    }
}
