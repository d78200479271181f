//! The webhook's metrics: `weft_webhook_reviews_total{kind,allowed}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The labels of one answered review.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReviewLabels {
    /// A [`weft_crds::Kind`], `Pod` (injection), or `other`.
    pub kind: &'static str,
    /// `true` or `false`.
    pub allowed: &'static str,
}

/// The webhook's metrics. [`Default`] makes them unregistered.
#[derive(Clone, Debug, Default)]
pub struct WebhookMetrics {
    reviews: Family<ReviewLabels, Counter>,
}

impl WebhookMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_webhook_reviews",
            "AdmissionReviews the validating webhook answered, by resource kind and whether it allowed the object",
            metrics.reviews.clone(),
        );
        metrics
    }

    /// Counts one answered review.
    pub fn record(&self, kind: &'static str, allowed: bool) {
        let allowed = if allowed { "true" } else { "false" };
        self.reviews
            .get_or_create(&ReviewLabels { kind, allowed })
            .inc();
    }

    /// How many reviews of `kind` were answered `allowed` so far.
    pub fn count(&self, kind: &'static str, allowed: bool) -> u64 {
        let allowed = if allowed { "true" } else { "false" };
        self.reviews
            .get_or_create(&ReviewLabels { kind, allowed })
            .get()
    }
}
