//! Citadel's metrics: `weft_citadel_certificates_issued_total` and
//! `weft_citadel_refusals_total{reason}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The label of one refused request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RefusalLabels {
    /// A fixed `kind()` of [`crate::AuthError`] or [`crate::CaError`].
    pub reason: &'static str,
}

/// Citadel's metrics. [`Default`] makes them unregistered.
#[derive(Clone, Debug, Default)]
pub struct CitadelMetrics {
    issued: Counter,
    refusals: Family<RefusalLabels, Counter>,
}

impl CitadelMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_citadel_certificates_issued",
            "Workload certificates the CA signed for authenticated callers",
            metrics.issued.clone(),
        );
        registry.register(
            "weft_citadel_refusals",
            "CreateCertificate requests refused, by reason",
            metrics.refusals.clone(),
        );
        metrics
    }

    /// Counts one issued certificate.
    pub fn issued(&self) {
        self.issued.inc();
    }

    /// Counts one refusal.
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// Certificates issued so far.
    pub fn issued_count(&self) -> u64 {
        self.issued.get()
    }

    /// Refusals for `reason` so far.
    pub fn refusal_count(&self, reason: &'static str) -> u64 {
        self.refusals.get_or_create(&RefusalLabels { reason }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_names_are_the_documented_ones() {
        let mut registry = Registry::default();
        let m = CitadelMetrics::register(&mut registry);
        m.issued();
        m.refused("rejected_token");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("weft_citadel_certificates_issued_total 1"),
            "{text}"
        );
        assert!(
            text.contains("weft_citadel_refusals_total{reason=\"rejected_token\"} 1"),
            "{text}"
        );
    }
}
