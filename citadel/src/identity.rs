//! Who a certificate is for: [`Identity`] (a SPIFFE workload identity) and
//! [`KeyType`] (which key algorithm the CA itself uses).

use std::fmt;
use std::str::FromStr;

/// A workload identity proven by a caller's credential.
///
/// Its SPIFFE ID, `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`,
/// is the only name a workload certificate carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The mesh's trust domain, e.g. `cluster.local`.
    pub trust_domain: String,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's service account.
    pub service_account: String,
}

impl Identity {
    /// `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`.
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }

    /// Checks each part is non-empty and a single SPIFFE path segment, so the
    /// SPIFFE ID cannot be bent into naming someone else.
    pub fn validate(&self) -> Result<(), String> {
        for (what, value) in [
            ("trust domain", &self.trust_domain),
            ("namespace", &self.namespace),
            ("service account", &self.service_account),
        ] {
            if value.is_empty() {
                return Err(format!("{what} is empty"));
            }
            if let Some(bad) = value
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
            {
                return Err(format!(
                    "{what} {value:?} contains {bad:?}; only ASCII letters, digits, '-', '.' and '_' are allowed"
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spiffe_id())
    }
}

/// The key algorithm of a CA Weft generates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (the default: small and fast).
    #[default]
    EcdsaP256,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256 signatures.
    Rsa2048,
}

impl KeyType {
    /// The spelling used on command lines: `ecdsa-p256` or `rsa-2048`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "ecdsa" | "p256" => Ok(KeyType::EcdsaP256),
            "rsa-2048" | "rsa" | "rsa2048" => Ok(KeyType::Rsa2048),
            other => Err(format!(
                "unknown key type {other:?}: use ecdsa-p256 or rsa-2048"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ns: &str, sa: &str) -> Identity {
        Identity {
            trust_domain: "cluster.local".into(),
            namespace: ns.into(),
            service_account: sa.into(),
        }
    }

    #[test]
    fn spiffe_id_is_istio_shaped() {
        assert_eq!(
            id("ns1", "reviews").spiffe_id(),
            "spiffe://cluster.local/ns/ns1/sa/reviews"
        );
    }

    #[test]
    fn validate_rejects_path_tricks() {
        assert!(id("ns1", "reviews").validate().is_ok());
        assert!(id("ns1", "").validate().is_err());
        assert!(id("ns1/sa/admin", "x").validate().is_err());
        assert!(id("ns1", "a b").validate().is_err());
    }

    #[test]
    fn key_type_parses_and_defaults() {
        assert_eq!(KeyType::default(), KeyType::EcdsaP256);
        assert_eq!("rsa-2048".parse::<KeyType>(), Ok(KeyType::Rsa2048));
        assert_eq!("ECDSA-P256".parse::<KeyType>(), Ok(KeyType::EcdsaP256));
        assert!("dsa".parse::<KeyType>().is_err());
    }
}
