//! What the CA returned, checked: the certificate chain (leaf first, root
//! last), the in-memory private key, and the leaf's validity, which drives
//! rotation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::pem::parse_x509_pem;

/// A certificate the agent holds: served as SDS `default` (chain + key) and
/// `ROOTCA` (the last certificate of the chain).
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// PEM certificates, leaf first, the root last (as
    /// `IstioCertificateResponse.cert_chain`).
    pub chain: Vec<String>,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("chain", &self.chain.len())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Why a CA response is unusable.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the CA returned an empty certificate chain")]
    EmptyChain,
    #[error("certificate {index} of the CA's chain is not a PEM X.509 certificate: {reason}")]
    BadCertificate { index: usize, reason: String },
}

impl BundleError {
    pub fn kind(&self) -> &'static str {
        match self {
            BundleError::EmptyChain => "empty_chain",
            BundleError::BadCertificate { .. } => "bad_certificate",
        }
    }
}

impl CertBundle {
    /// Checks the CA's `cert_chain` (each element may hold one or more PEM
    /// blocks) and pairs it with the key the CSR was made from.
    pub fn from_response(cert_chain: &[String], key_pem: String) -> Result<Self, BundleError> {
        let chain: Vec<String> = cert_chain
            .iter()
            .flat_map(|element| split_pem(element))
            .collect();
        let Some(leaf) = chain.first() else {
            return Err(BundleError::EmptyChain);
        };
        for (index, pem) in chain.iter().enumerate().skip(1) {
            validity(pem).map_err(|reason| BundleError::BadCertificate { index, reason })?;
        }
        let (not_before, not_after) =
            validity(leaf).map_err(|reason| BundleError::BadCertificate { index: 0, reason })?;
        Ok(CertBundle {
            chain,
            key_pem,
            not_before,
            not_after,
        })
    }

    /// The root: the last certificate of the chain.
    pub fn root_pem(&self) -> &str {
        self.chain.last().map(String::as_str).unwrap_or_default()
    }

    /// What Envoy presents: the leaf and intermediates, without the root
    /// (unless the chain is the leaf alone).
    pub fn presented_chain_pem(&self) -> String {
        let end = if self.chain.len() > 1 {
            self.chain.len() - 1
        } else {
            self.chain.len()
        };
        self.chain[..end].concat()
    }
}

/// Splits a string of concatenated PEM certificates into one string per
/// certificate (each ending in a newline).
fn split_pem(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(END) {
        let block = rest[..at + END.len()].trim();
        if !block.is_empty() {
            out.push(format!("{block}\n"));
        }
        rest = &rest[at + END.len()..];
    }
    if !rest.trim().is_empty() {
        // Not a certificate: kept so that parsing reports it.
        out.push(rest.trim().to_string());
    }
    out
}

fn validity(pem: &str) -> Result<(SystemTime, SystemTime), String> {
    let (_, parsed) = parse_x509_pem(pem.as_bytes()).map_err(|err| err.to_string())?;
    let cert = parsed.parse_x509().map_err(|err| err.to_string())?;
    let validity = cert.validity();
    Ok((
        to_system_time(validity.not_before.timestamp()),
        to_system_time(validity.not_after.timestamp()),
    ))
}

fn to_system_time(unix_seconds: i64) -> SystemTime {
    if unix_seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix_seconds.unsigned_abs())
    } else {
        UNIX_EPOCH
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    /// A root and a leaf valid for `ttl` from `not_before` (unix seconds).
    pub(crate) fn mk_chain(not_before: i64, ttl: i64) -> Vec<String> {
        let root_key = KeyPair::generate().unwrap();
        let mut root = CertificateParams::default();
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root_cert = root.self_signed(&root_key).unwrap();
        let issuer = Issuer::new(root, root_key);
        let mut leaf = CertificateParams::new(vec![]).unwrap();
        leaf.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
        leaf.not_after = time::OffsetDateTime::from_unix_timestamp(not_before + ttl).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        vec![leaf_cert.pem(), root_cert.pem()]
    }

    #[test]
    fn reads_the_leaf_validity_and_the_root() {
        let chain = mk_chain(1_800_000_000, 3600);
        let bundle = CertBundle::from_response(&chain, "key".into()).unwrap();
        assert_eq!(
            bundle.not_before,
            UNIX_EPOCH + Duration::from_secs(1_800_000_000)
        );
        assert_eq!(
            bundle.not_after,
            UNIX_EPOCH + Duration::from_secs(1_800_003_600)
        );
        assert_eq!(bundle.root_pem(), chain[1]);
        assert_eq!(bundle.presented_chain_pem(), chain[0]);
    }

    #[test]
    fn accepts_a_chain_in_one_element() {
        let chain = mk_chain(1_800_000_000, 60);
        let joined = vec![chain.concat()];
        let bundle = CertBundle::from_response(&joined, "key".into()).unwrap();
        assert_eq!(bundle.chain, chain);
    }

    #[test]
    fn rejects_empty_and_garbage_chains() {
        let err = CertBundle::from_response(&[], "k".into()).unwrap_err();
        assert_eq!(err.kind(), "empty_chain");
        let mut chain = mk_chain(1_800_000_000, 60);
        chain.push("not a certificate".into());
        let err = CertBundle::from_response(&chain, "k".into()).unwrap_err();
        assert!(
            matches!(err, BundleError::BadCertificate { index: 2, .. }),
            "{err}"
        );
    }
}
