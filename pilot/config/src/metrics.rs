//! The config layer's metrics, recorded from each [`Applied`]:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `weft_config_errors` | counter: errors reported by applies | `kind` (`VirtualService`, ..., `unknown` when the document names no resource), `reason` ([`ErrorReason::kind`](super::ErrorReason::kind)) |
//! | `weft_config_applies` | counter: applies | `changed` = `true` \| `false` |
//! | `weft_config_kept_last_good` | gauge: resources served at their last good version | |
//! | `weft_mesh_config_reloads` | counter: mesh configs read (`--mesh-config`, ConfigMap `istio`) | `result` = `applied` \| `rejected` (the last good one kept) |
//!
//! Every apply reads the whole configuration again, so an error counts
//! once per apply for as long as it stays. Labels are bounded: never a
//! file, a resource name or an error message.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Applied;

/// The `kind` of an error whose document names no resource (unreadable,
/// not YAML, an unserved kind).
pub const UNKNOWN_KIND: &str = "unknown";

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The resource kind (`ResourceId::kind`), a fixed set.
    pub kind: &'static str,
    /// `ErrorReason::kind()`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ApplyLabels {
    pub changed: bool,
}

/// `result` of a mesh config read: applied.
pub const MESH_CONFIG_APPLIED: &str = "applied";
/// `result` of a mesh config read: rejected, the last good one kept.
pub const MESH_CONFIG_REJECTED: &str = "rejected";

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MeshConfigLabels {
    /// [`MESH_CONFIG_APPLIED`] or [`MESH_CONFIG_REJECTED`].
    pub result: &'static str,
}

/// The config layer's metrics. [`Default`] makes them unregistered;
/// [`ConfigMetrics::register`] exports them.
#[derive(Clone, Debug, Default)]
pub struct ConfigMetrics {
    errors: Family<ErrorLabels, Counter>,
    applies: Family<ApplyLabels, Counter>,
    kept_last_good: Gauge,
    mesh_config_reloads: Family<MeshConfigLabels, Counter>,
}

impl ConfigMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_config_errors",
            "Config errors reported by applies, by resource kind and reason",
            metrics.errors.clone(),
        );
        registry.register(
            "weft_config_applies",
            "Config applies, by whether the snapshot changed",
            metrics.applies.clone(),
        );
        registry.register(
            "weft_config_kept_last_good",
            "Resources served at their last good version because the current one is bad",
            metrics.kept_last_good.clone(),
        );
        registry.register(
            "weft_mesh_config_reloads",
            "Mesh configs read, by whether they were applied or rejected (the last good one kept)",
            metrics.mesh_config_reloads.clone(),
        );
        for result in [MESH_CONFIG_APPLIED, MESH_CONFIG_REJECTED] {
            let _ = metrics
                .mesh_config_reloads
                .get_or_create(&MeshConfigLabels { result });
        }
        metrics
    }

    /// Records one apply: its errors, whether it changed the snapshot, and
    /// how many resources it kept at their last good version.
    pub fn record(&self, applied: &Applied) {
        for error in &applied.errors {
            let labels = ErrorLabels {
                kind: error
                    .resource
                    .as_ref()
                    .map_or(UNKNOWN_KIND, |r| r.kind.as_str()),
                reason: error.error.reason.kind(),
            };
            self.errors.get_or_create(&labels).inc();
        }
        self.applies
            .get_or_create(&ApplyLabels {
                changed: applied.changed,
            })
            .inc();
        self.kept_last_good
            .set(i64::try_from(applied.kept.len()).unwrap_or(i64::MAX));
    }

    /// Records one mesh config read: applied, or rejected.
    pub fn record_mesh_config(&self, applied: bool) {
        let result = if applied {
            MESH_CONFIG_APPLIED
        } else {
            MESH_CONFIG_REJECTED
        };
        self.mesh_config_reloads
            .get_or_create(&MeshConfigLabels { result })
            .inc();
    }

    /// Mesh config reads counted so far with `result`.
    pub fn mesh_config_reloads(&self, result: &'static str) -> u64 {
        self.mesh_config_reloads
            .get(&MeshConfigLabels { result })
            .map_or(0, |c| c.get())
    }

    /// Errors of `kind` and `reason` counted so far.
    pub fn errors(&self, kind: &'static str, reason: &'static str) -> u64 {
        self.errors
            .get(&ErrorLabels { kind, reason })
            .map_or(0, |c| c.get())
    }

    /// Applies counted so far, by `changed`.
    pub fn applies(&self, changed: bool) -> u64 {
        self.applies
            .get(&ApplyLabels { changed })
            .map_or(0, |c| c.get())
    }

    /// Resources the last apply kept at their last good version.
    pub fn kept_last_good(&self) -> i64 {
        self.kept_last_good.get()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;
    use crate::documents::parse_documents;
    use crate::{ConfigStore, ErrorReason, Input};

    const GOOD_VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
";

    const BAD_VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
      weight: 150
";

    fn mk_inputs(yaml: &str) -> Vec<Input> {
        parse_documents("vs.yaml", yaml)
    }

    #[test]
    fn applies_record_errors_by_kind_and_reason_and_the_kept_gauge() {
        let mut registry = Registry::default();
        let metrics = ConfigMetrics::register(&mut registry);
        let mut store = ConfigStore::default();

        let applied = store.apply(mk_inputs(GOOD_VS));
        assert!(applied.errors.is_empty(), "{:?}", applied.errors);
        metrics.record(&applied);
        assert_eq!(metrics.applies(true), 1);
        assert_eq!(metrics.kept_last_good(), 0);

        let applied = store.apply(mk_inputs(BAD_VS));
        assert!(!applied.errors.is_empty());
        metrics.record(&applied);
        let invalid = ErrorReason::Invalid.kind();
        assert!(metrics.errors("VirtualService", invalid) >= 1);
        assert_eq!(metrics.applies(false), 1, "the last good version stays");
        assert_eq!(metrics.kept_last_good(), 1);

        let applied = store.apply(mk_inputs("kind: [not a document"));
        metrics.record(&applied);
        assert_eq!(
            metrics.errors(UNKNOWN_KIND, ErrorReason::Unreadable.kind()),
            1
        );

        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("weft_config_errors_total{kind=\"VirtualService\",reason=\"invalid\"}"),
            "{text}"
        );
        assert!(
            text.contains("weft_config_applies_total{changed=\"true\"} 1"),
            "{text}"
        );
        assert!(text.contains("weft_config_kept_last_good "), "{text}");
        assert!(
            text.contains("weft_mesh_config_reloads_total{result=\"rejected\"} 0"),
            "both results are exported from the start: {text}"
        );
        assert!(!text.contains("vs.yaml"), "no file names: {text}");
    }

    #[test]
    fn mesh_config_reads_are_counted_by_result() {
        let mut registry = Registry::default();
        let metrics = ConfigMetrics::register(&mut registry);
        metrics.record_mesh_config(true);
        metrics.record_mesh_config(false);
        metrics.record_mesh_config(false);
        assert_eq!(metrics.mesh_config_reloads(MESH_CONFIG_APPLIED), 1);
        assert_eq!(metrics.mesh_config_reloads(MESH_CONFIG_REJECTED), 2);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("weft_mesh_config_reloads_total{result=\"applied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("weft_mesh_config_reloads_total{result=\"rejected\"} 2"),
            "{text}"
        );
    }
}
