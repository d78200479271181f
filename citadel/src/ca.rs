//! [`CertificateAuthority`]: a signing certificate and key (a self-signed
//! root, or an intermediate plugged in by the operator) that signs workload
//! certificates from CSRs and Weft's own serving certificate.
//!
//! The CA never trusts what a CSR *asks for*: it takes only the CSR's public
//! key (after checking the CSR's self-signature) and writes the caller's
//! proven SPIFFE identity as the certificate's only subject alternative name.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::{CaError, Identity, KeyType, keys};

/// How long a generated root is valid.
pub const ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Shorter RSA keys in CSRs are refused.
pub const MIN_RSA_BITS: usize = 2048;

/// Certificates are back-dated this much to tolerate clock skew between
/// the CA and its peers.
const BACKDATE: Duration = Duration::from_secs(60);

/// A CA's certificates and key in PEM, as persisted and as plugged in.
#[derive(Clone, PartialEq, Eq)]
pub struct CaMaterial {
    /// The signing certificate first, then any intermediates, optionally
    /// ending with the root.
    pub cert_chain_pem: String,
    /// The signing certificate's private key (PKCS#8, or PKCS#1 for RSA).
    pub key_pem: String,
    /// The root certificate workloads trust.
    pub root_pem: String,
}

impl fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaMaterial")
            .field("cert_chain_pem", &self.cert_chain_pem)
            .field("key_pem", &"<redacted>")
            .field("root_pem", &self.root_pem)
            .finish()
    }
}

/// A certificate authority; cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct CertificateAuthority {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: Issuer<'static, KeyPair>,
    key_pem: String,
    /// Signing certificate, intermediates, root: appended to every leaf.
    chain_to_root: Vec<String>,
    root_pem: String,
    /// The earliest `notAfter` of the chain: leaves end no later.
    expiry: OffsetDateTime,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("chain_len", &self.inner.chain_to_root.len())
            .field("key_algorithm", &self.inner.issuer.key().algorithm())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a self-signed root valid for ten years, named after
    /// `trust_domain`.
    pub fn generate_root(key_type: KeyType, trust_domain: &str) -> Result<Self, CaError> {
        let key = keys::generate(key_type)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, trust_domain);
        params
            .distinguished_name
            .push(DnType::CommonName, "Weft root CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + ROOT_VALIDITY;
        params.serial_number = Some(random_serial()?);
        let cert = params
            .self_signed(&key)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let root_pem = cert.pem();
        Self::from_material(&CaMaterial {
            cert_chain_pem: root_pem.clone(),
            key_pem: key.serialize_pem(),
            root_pem,
        })
    }

    /// Loads a CA from PEM: a root (chain = the root) or an intermediate
    /// (chain = intermediate .. , root = the trust anchor). Checks the key
    /// matches the signing certificate, which must be a CA, and that each
    /// certificate of the chain is signed by the next, up to the root.
    pub fn from_material(m: &CaMaterial) -> Result<Self, CaError> {
        let key = keys::parse_pem(&m.key_pem)?;
        let roots = split_pem_certs(&m.root_pem, "root certificate")?;
        let [root_pem] = roots.as_slice() else {
            return Err(CaError::InvalidMaterial(format!(
                "root certificate file holds {} certificates; give exactly one root",
                roots.len()
            )));
        };
        let mut chain = split_pem_certs(&m.cert_chain_pem, "certificate chain")?;
        if chain.is_empty() {
            return Err(CaError::InvalidMaterial(
                "certificate chain is empty: it must start with the signing certificate".into(),
            ));
        }
        if chain.last().map(|p| der_of(p)) != Some(der_of(root_pem)) {
            chain.push(root_pem.clone());
        }
        let ders = chain
            .iter()
            .map(|p| der_of(p).ok_or_else(|| bad("a chain certificate is not PEM")))
            .collect::<Result<Vec<_>, _>>()?;
        let certs = ders
            .iter()
            .map(|d| {
                X509Certificate::from_der(d)
                    .map(|(_, c)| c)
                    .map_err(|e| bad(&format!("a chain certificate is not X.509: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(signing) = certs.first() else {
            return Err(bad("certificate chain is empty"));
        };
        if signing.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(bad(
                "the CA key does not belong to the signing certificate (first of the chain)",
            ));
        }
        if !signing.is_ca() {
            return Err(bad(
                "the signing certificate is not a CA (basicConstraints CA:TRUE is missing)",
            ));
        }
        for pair in certs.windows(2) {
            pair[0]
                .verify_signature(Some(pair[1].public_key()))
                .map_err(|_| {
                    bad(&format!(
                        "chain is broken: {} is not signed by {}",
                        pair[0].subject(),
                        pair[1].subject()
                    ))
                })?;
        }
        // A leaf must not outlive any certificate above it.
        let expiry_secs = certs
            .iter()
            .map(|c| c.validity().not_after.timestamp())
            .min()
            .unwrap_or(i64::MIN);
        let expiry = OffsetDateTime::from_unix_timestamp(expiry_secs)
            .map_err(|e| bad(&format!("chain expiry out of range: {e}")))?;
        let issuer = Issuer::from_ca_cert_der(&ders[0].clone().into(), key)
            .map_err(|e| bad(&format!("signing certificate unusable: {e}")))?;
        Ok(CertificateAuthority {
            inner: Arc::new(Inner {
                issuer,
                key_pem: m.key_pem.clone(),
                chain_to_root: chain,
                root_pem: root_pem.clone(),
                expiry,
            }),
        })
    }

    /// The CA's certificates and key, to persist.
    pub fn material(&self) -> CaMaterial {
        CaMaterial {
            cert_chain_pem: self.inner.chain_to_root.concat(),
            key_pem: self.inner.key_pem.clone(),
            root_pem: self.inner.root_pem.clone(),
        }
    }

    /// When the first certificate of the CA's chain expires: leaves are cut
    /// to end then, and signing fails after it.
    pub fn not_after(&self) -> SystemTime {
        let secs = self.inner.expiry.unix_timestamp();
        let magnitude = Duration::from_secs(secs.unsigned_abs());
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + magnitude
        } else {
            SystemTime::UNIX_EPOCH - magnitude
        }
    }

    /// The root certificate (PEM) workloads must trust.
    pub fn root_pem(&self) -> &str {
        &self.inner.root_pem
    }

    /// Signs a workload certificate for `identity` with the public key of
    /// `csr_pem`, valid for `ttl`. Returns the chain: leaf, intermediates..,
    /// root. The certificate's only SAN is the identity's SPIFFE URI,
    /// whatever the CSR asks for.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &Identity,
        ttl: Duration,
    ) -> Result<Vec<String>, CaError> {
        identity.validate().map_err(CaError::InvalidIdentity)?;
        let public_key = csr_public_key(csr_pem)?;
        let uri = Ia5String::try_from(identity.spiffe_id())
            .map_err(|e| CaError::InvalidIdentity(e.to_string()))?;
        let mut params = self.leaf_params(ttl)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        let cert = params
            .signed_by(&public_key, &self.inner.issuer)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        Ok(self.with_chain(cert.pem()))
    }

    /// Issues a TLS serving certificate for Weft itself (server and client
    /// auth) for `dns_names` and `ips`, with a fresh ECDSA P-256 key.
    /// Returns (chain: leaf .. root, key PEM).
    pub fn issue_serving_cert(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
        ttl: Duration,
    ) -> Result<(Vec<String>, String), CaError> {
        if dns_names.is_empty() && ips.is_empty() {
            return Err(CaError::InvalidIdentity(
                "a serving certificate needs at least one DNS name or IP address".into(),
            ));
        }
        let key = keys::generate(KeyType::EcdsaP256)?;
        let mut params = self.leaf_params(ttl)?;
        for name in dns_names {
            let name = Ia5String::try_from(name.as_str())
                .map_err(|e| CaError::InvalidIdentity(format!("DNS name {name:?}: {e}")))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        if let Some(first) = dns_names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        let cert = params
            .signed_by(&key, &self.inner.issuer)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        Ok((self.with_chain(cert.pem()), key.serialize_pem()))
    }

    fn leaf_params(&self, ttl: Duration) -> Result<CertificateParams, CaError> {
        leaf_params(ttl, self.inner.expiry)
    }

    fn with_chain(&self, leaf: String) -> Vec<String> {
        let mut chain = Vec::with_capacity(1 + self.inner.chain_to_root.len());
        chain.push(leaf);
        chain.extend(self.inner.chain_to_root.iter().cloned());
        chain
    }
}

/// Parses a PEM CSR, verifies its self-signature, and returns its public key.
fn csr_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo, CaError> {
    let block = pem::parse(csr_pem)
        .map_err(|e| CaError::MalformedCsr(format!("not PEM ({e}); send a PEM PKCS#10 CSR")))?;
    if !matches!(
        block.tag(),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
    ) {
        return Err(CaError::MalformedCsr(format!(
            "PEM type is {:?}, expected \"CERTIFICATE REQUEST\"",
            block.tag()
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(block.contents())
        .map_err(|e| CaError::MalformedCsr(format!("not a PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::MalformedCsr(
            "trailing bytes after the PKCS#10 request".into(),
        ));
    }
    // Checked before the signature, whose verifier (ring) also refuses
    // short RSA keys but would only say the signature does not verify.
    if let Ok(PublicKey::RSA(rsa)) = csr.certification_request_info.subject_pki.parsed()
        && rsa.key_size() < MIN_RSA_BITS
    {
        return Err(CaError::MalformedCsr(format!(
            "RSA key of {} bits; use at least {MIN_RSA_BITS} (or ECDSA P-256)",
            rsa.key_size()
        )));
    }
    csr.verify_signature().map_err(|_| CaError::CsrSignature)?;
    SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw).map_err(|e| {
        CaError::MalformedCsr(format!(
            "unsupported public key (use ECDSA P-256/P-384, Ed25519 or RSA): {e}"
        ))
    })
}

/// Parameters shared by workload and serving leaves: empty subject, not a CA,
/// TLS server and client auth, valid from now (back-dated) for `ttl` but
/// never past `ca_expiry`.
fn leaf_params(ttl: Duration, ca_expiry: OffsetDateTime) -> Result<CertificateParams, CaError> {
    let now = OffsetDateTime::now_utc();
    if ca_expiry <= now {
        return Err(CaError::CaExpired(ca_expiry.to_string()));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = (now + ttl).min(ca_expiry);
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// A random positive 128-bit serial number.
fn random_serial() -> Result<SerialNumber, CaError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Signing("the system random generator failed".into()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Splits a PEM bundle into one PEM string per certificate, in order.
pub(crate) fn split_pem_certs(bundle: &str, what: &str) -> Result<Vec<String>, CaError> {
    let blocks = pem::parse_many(bundle).map_err(|e| bad(&format!("{what} is not PEM: {e}")))?;
    blocks
        .into_iter()
        .map(|b| {
            if b.tag() == "CERTIFICATE" {
                Ok(pem::encode_config(
                    &b,
                    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
                ))
            } else {
                Err(bad(&format!(
                    "{what} holds a {:?} PEM block; only CERTIFICATE blocks belong there",
                    b.tag()
                )))
            }
        })
        .collect()
}

fn der_of(pem_str: &str) -> Option<Vec<u8>> {
    pem::parse(pem_str).ok().map(|b| b.into_contents())
}

fn bad(msg: &str) -> CaError {
    CaError::InvalidMaterial(msg.to_string())
}
