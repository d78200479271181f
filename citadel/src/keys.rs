//! Private keys: generating the CA's and serving keys, and reading keys
//! from PEM in the encodings Istio's `cacerts` files use.
//!
//! rcgen's ring backend cannot generate RSA keys, so RSA 2048 keys come from
//! the pure-Rust `rsa` crate and are handed to rcgen as PKCS#8.

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use rustls::pki_types::PrivatePkcs8KeyDer;

use crate::{CaError, KeyType};

/// Generates a fresh key pair of `key_type`.
pub(crate) fn generate(key_type: KeyType) -> Result<KeyPair, CaError> {
    let fail = |reason: String| CaError::KeyGeneration {
        key_type: key_type.as_str(),
        reason,
    };
    match key_type {
        KeyType::EcdsaP256 => {
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))
        }
        KeyType::Rsa2048 => {
            let mut rng = rsa::rand_core::OsRng;
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| fail(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| fail(e.to_string()))?;
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_bytes()),
                &PKCS_RSA_SHA256,
            )
            .map_err(|e| fail(e.to_string()))
        }
    }
}

/// Reads a private key from PEM: PKCS#8 (`PRIVATE KEY`, ECDSA or RSA) or
/// PKCS#1 (`RSA PRIVATE KEY`, as `openssl genrsa` and Istio's tooling write).
pub(crate) fn parse_pem(key_pem: &str) -> Result<KeyPair, CaError> {
    let block = pem::parse(key_pem)
        .map_err(|e| CaError::InvalidMaterial(format!("CA key is not PEM: {e}")))?;
    match block.tag() {
        "PRIVATE KEY" => KeyPair::try_from(block.contents()).map_err(|e| {
            CaError::InvalidMaterial(format!(
                "CA key (PKCS#8) is not an ECDSA P-256/P-384, Ed25519 or RSA key Weft can use: {e}"
            ))
        }),
        "RSA PRIVATE KEY" => {
            let key = rsa::RsaPrivateKey::from_pkcs1_der(block.contents()).map_err(|e| {
                CaError::InvalidMaterial(format!("CA key (PKCS#1 RSA) is unreadable: {e}"))
            })?;
            let der = key.to_pkcs8_der().map_err(|e| {
                CaError::InvalidMaterial(format!("CA key (PKCS#1 RSA) cannot be re-encoded: {e}"))
            })?;
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_bytes()),
                &PKCS_RSA_SHA256,
            )
            .map_err(|e| CaError::InvalidMaterial(format!("CA key (PKCS#1 RSA) is unusable: {e}")))
        }
        other => Err(CaError::InvalidMaterial(format!(
            "CA key has PEM type {other:?}; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem() {
        for key_type in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let key = generate(key_type).unwrap();
            let again = parse_pem(&key.serialize_pem()).unwrap();
            assert_eq!(key.public_key_raw(), again.public_key_raw(), "{key_type}");
        }
    }

    #[test]
    fn pkcs1_rsa_keys_are_accepted() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let pair = parse_pem(&pem).unwrap();
        assert_eq!(pair.algorithm(), &PKCS_RSA_SHA256);
    }

    #[test]
    fn other_pem_types_are_refused_with_advice() {
        let err = parse_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(err.to_string().contains("openssl pkcs8"), "{err}");
    }
}
