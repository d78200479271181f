//! [`CaError`]: everything the certificate authority can refuse or fail at.

use std::path::PathBuf;

/// A failure of the CA: bad input (CSR, identity, CA material) or a failure
/// to generate, sign or persist.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CSR is not a PEM PKCS#10 request Weft can read.
    #[error("malformed CSR: {0}")]
    MalformedCsr(String),
    /// The CSR's self-signature does not verify with the key it carries.
    #[error(
        "CSR signature does not verify: the request must be signed by the private key of the public key it carries"
    )]
    CsrSignature,
    /// The identity cannot be put in a SPIFFE ID.
    #[error("invalid identity: {0}")]
    InvalidIdentity(String),
    /// CA certificate, key or chain is unusable.
    #[error("invalid CA material: {0}")]
    InvalidMaterial(String),
    /// The CA's chain has expired: nothing it signs would verify.
    #[error(
        "the CA certificate chain expired at {0}: rotate the CA (replace the plug-in cacerts, or remove the persisted root so a new one is generated)"
    )]
    CaExpired(String),
    /// Key generation failed.
    #[error("could not generate a {key_type} key: {reason}")]
    KeyGeneration {
        /// Which key.
        key_type: &'static str,
        /// Why.
        reason: String,
    },
    /// rcgen could not build or sign a certificate.
    #[error("could not sign certificate: {0}")]
    Signing(String),
    /// Reading or writing CA files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl CaError {
    /// A short, fixed label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CaError::MalformedCsr(_) => "malformed_csr",
            CaError::CsrSignature => "csr_signature",
            CaError::InvalidIdentity(_) => "invalid_identity",
            CaError::InvalidMaterial(_) => "invalid_ca_material",
            CaError::CaExpired(_) => "ca_expired",
            CaError::KeyGeneration { .. } => "key_generation",
            CaError::Signing(_) => "signing",
            CaError::Io { .. } => "io",
        }
    }

    /// Whether the caller's input (not the CA) is at fault.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            CaError::MalformedCsr(_) | CaError::CsrSignature | CaError::InvalidIdentity(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CaError::Io {
            path: path.into(),
            source,
        }
    }
}
