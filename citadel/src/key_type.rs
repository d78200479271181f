//! [`KeyType`]: which key algorithm the CA itself uses. Who a certificate
//! is for, [`weft_identity::Identity`], is a leaf crate of its own.

use std::fmt;
use std::str::FromStr;

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

    #[test]
    fn key_type_parses_and_defaults() {
        assert_eq!(KeyType::default(), KeyType::EcdsaP256);
        assert_eq!("rsa-2048".parse::<KeyType>(), Ok(KeyType::Rsa2048));
        assert_eq!("ECDSA-P256".parse::<KeyType>(), Ok(KeyType::EcdsaP256));
        assert!("dsa".parse::<KeyType>().is_err());
    }
}
