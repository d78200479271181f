//! The agent's own metrics, served first on the status port's
//! `/stats/prometheus`:
//!
//! - `weft_agent_scrapes_total`: `/stats/prometheus` requests;
//! - `weft_agent_scrape_failures_total{type="envoy"|"application"}`:
//!   parts left out of a merge because their scrape failed (Istio's
//!   `istio_agent_scrape_failures_total`);
//! - `weft_agent_certificates_issued_total`,
//!   `weft_agent_certificate_request_failures_total`: rotation's progress;
//! - `weft_agent_certificate_expiry_seconds`: how long the certificate
//!   Envoy is served stays valid (Istio's `istio_agent_cert_expiry_seconds`);
//!   absent until the first one is issued.
//!
//! The last three are read from rotation's state at each scrape.

use std::time::SystemTime;

use prometheus_client::collector::Collector;
use std::fmt::Write;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::rotation::RotationStatus;
use crate::sds::Bundles;

/// What a scrape was of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScrapeType {
    Envoy,
    Application,
}

impl ScrapeType {
    /// The label value (Istio's: `envoy`, `application`).
    pub fn as_str(self) -> &'static str {
        match self {
            ScrapeType::Envoy => "envoy",
            ScrapeType::Application => "application",
        }
    }
}

impl EncodeLabelValue for ScrapeType {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ScrapeLabels {
    pub r#type: ScrapeType,
}

/// The status server's metrics. [`Default`] makes them unregistered.
#[derive(Clone, Debug, Default)]
pub struct AgentMetrics {
    scrapes: Counter,
    scrape_failures: Family<ScrapeLabels, Counter>,
}

impl AgentMetrics {
    /// New metrics in `registry`, with the certificate's read from
    /// `bundles` and `status` at each scrape.
    pub fn register(
        registry: &mut Registry,
        bundles: Bundles,
        status: watch::Receiver<RotationStatus>,
    ) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_agent_scrapes",
            "Requests for the merged metrics (/stats/prometheus on the status port)",
            metrics.scrapes.clone(),
        );
        registry.register(
            "weft_agent_scrape_failures",
            "Scrapes of Envoy or the application that failed and were left out of the merged metrics",
            metrics.scrape_failures.clone(),
        );
        registry.register_collector(Box::new(CertificateCollector { bundles, status }));
        metrics
    }

    /// Counts one merged scrape.
    pub fn scraped(&self) {
        self.scrapes.inc();
    }

    /// Counts one failed scrape of `what`.
    pub fn scrape_failed(&self, what: ScrapeType) {
        self.scrape_failures
            .get_or_create(&ScrapeLabels { r#type: what })
            .inc();
    }

    /// Failed scrapes of `what` so far.
    pub fn scrape_failures(&self, what: ScrapeType) -> u64 {
        self.scrape_failures
            .get_or_create(&ScrapeLabels { r#type: what })
            .get()
    }
}

/// Rotation's state as metrics, read when scraped.
#[derive(Debug)]
struct CertificateCollector {
    bundles: Bundles,
    status: watch::Receiver<RotationStatus>,
}

impl Collector for CertificateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (issued, failures) = {
            let status = self.status.borrow();
            (status.issued, status.failures)
        };
        let counters = [
            (
                "weft_agent_certificates_issued",
                "Workload certificates the CA issued to this agent",
                issued,
            ),
            (
                "weft_agent_certificate_request_failures",
                "Certificate requests that failed (retried with backoff)",
                failures,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let not_after = self.bundles.borrow().as_ref().map(|b| b.not_after);
        if let Some(not_after) = not_after {
            let remaining = match not_after.duration_since(SystemTime::now()) {
                Ok(left) => left.as_secs_f64(),
                Err(past) => -past.duration().as_secs_f64(),
            };
            let gauge = ConstGauge::new(remaining);
            let metric = encoder.encode_descriptor(
                "weft_agent_certificate_expiry_seconds",
                "Seconds until the workload certificate served to Envoy expires",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::CertBundle;

    fn text(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn registered_names_are_the_documented_ones() {
        let (bundles_tx, bundles) = watch::channel(None::<Arc<CertBundle>>);
        let (status_tx, status) = watch::channel(RotationStatus::default());
        let mut registry = Registry::default();
        let metrics = AgentMetrics::register(&mut registry, bundles, status);
        metrics.scraped();
        metrics.scrape_failed(ScrapeType::Application);
        let before = text(&registry);
        assert!(before.contains("weft_agent_scrapes_total 1"), "{before}");
        assert!(
            before.contains("weft_agent_scrape_failures_total{type=\"application\"} 1"),
            "{before}"
        );
        assert!(
            before.contains("weft_agent_certificates_issued_total 0"),
            "{before}"
        );
        assert!(!before.contains("certificate_expiry"), "{before}");
        assert!(!before.contains("# EOF"), "{before}");

        status_tx.send_modify(|s| {
            s.issued = 2;
            s.failures = 1;
        });
        let now = SystemTime::now();
        bundles_tx.send_replace(Some(Arc::new(CertBundle {
            chain: Vec::new(),
            key_pem: String::new(),
            not_before: now,
            not_after: now + Duration::from_secs(3600),
        })));
        let after = text(&registry);
        assert!(
            after.contains("weft_agent_certificates_issued_total 2"),
            "{after}"
        );
        assert!(
            after.contains("weft_agent_certificate_request_failures_total 1"),
            "{after}"
        );
        let expiry: f64 = after
            .lines()
            .find_map(|l| l.strip_prefix("weft_agent_certificate_expiry_seconds "))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!((3590.0..=3600.0).contains(&expiry), "{after}");
    }
}
