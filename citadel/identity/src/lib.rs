//! # weft-identity: the mesh's workload identity
//!
//! [`Identity`], a SPIFFE workload identity
//! (`spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`): what
//! the CA (weft-citadel) signs for and what the agent (weft-agent) asks
//! for. A leaf with no dependencies, so that the agent does not pull in the
//! CA to name itself.

use std::fmt;

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
}
