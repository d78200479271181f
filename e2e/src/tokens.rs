//! Service-account tokens the apiserver never issued, for tests of how a
//! token-checking server refuses them: JWTs shaped as Kubernetes' bound
//! tokens, signed with the test control plane's own service-account key
//! (so only the claim under test is wrong, e.g. an expiry in the past) or
//! with another key (a forgery). The apiserver's TokenReview judges them
//! as it judges real ones.
//!
//! Kubernetes signs with ES256 when its key is ECDSA P-256, as the test
//! control plane's is (`pki.service_account_key`).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;

/// The claims of a Kubernetes service-account token.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    /// `--service-account-issuer`.
    pub issuer: String,
    pub namespace: String,
    pub service_account: String,
    /// The ServiceAccount's `metadata.uid` (bound tokens name it).
    pub uid: String,
    pub audiences: Vec<String>,
    /// When it was issued; it expires `lifetime` later.
    pub issued_at: SystemTime,
    pub lifetime: Duration,
}

/// `claims` as a JWT signed (ES256) with the PKCS#8 PEM key at `key_pem`.
pub fn sign_token(key_pem: &Path, claims: &TokenClaims) -> Result<String> {
    let der = PrivatePkcs8KeyDer::from_pem_file(key_pem)
        .with_context(|| format!("reading the PKCS#8 key {}", key_pem.display()))?;
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        &rng,
    )
    .map_err(|err| anyhow!("{} is not an ECDSA P-256 key: {err}", key_pem.display()))?;
    let seconds = |t: SystemTime| -> Result<u64> {
        Ok(t.duration_since(UNIX_EPOCH)
            .context("a time before 1970")?
            .as_secs())
    };
    let issued = seconds(claims.issued_at)?;
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
    let body = serde_json::json!({
        "iss": claims.issuer,
        "sub": format!("system:serviceaccount:{}:{}", claims.namespace, claims.service_account),
        "aud": claims.audiences,
        "iat": issued,
        "nbf": issued,
        "exp": issued + claims.lifetime.as_secs(),
        "kubernetes.io": {
            "namespace": claims.namespace,
            "serviceaccount": {"name": claims.service_account, "uid": claims.uid},
        },
    });
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed = format!(
        "{}.{}",
        url.encode(serde_json::to_vec(&header)?),
        url.encode(serde_json::to_vec(&body)?)
    );
    let signature = key
        .sign(&rng, signed.as_bytes())
        .map_err(|err| anyhow!("signing the token: {err}"))?;
    Ok(format!("{signed}.{}", url.encode(signature.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_three_parts_and_the_claims_kubernetes_reads() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("sa.key");
        std::fs::write(&key, rcgen::KeyPair::generate()?.serialize_pem())?;
        let token = sign_token(
            &key,
            &TokenClaims {
                issuer: "https://127.0.0.1:6443/".into(),
                namespace: "ns1".into(),
                service_account: "reviews".into(),
                uid: "1234".into(),
                audiences: vec!["istio-ca".into()],
                issued_at: UNIX_EPOCH + Duration::from_secs(1000),
                lifetime: Duration::from_secs(600),
            },
        )?;
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let body: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1])?,
        )?;
        assert_eq!(body["sub"], "system:serviceaccount:ns1:reviews");
        assert_eq!(body["exp"], 1600);
        assert_eq!(body["kubernetes.io"]["serviceaccount"]["uid"], "1234");
        Ok(())
    }
}
