//! The xDS server's metrics, named as istiod names them so that existing
//! dashboards and alerts fit:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `pilot_xds` | gauge: connected proxies | `protocol` = `sotw` \| `delta` |
//! | `pilot_xds_pushes` | counter: responses sent | `type` = `cds` \| `eds` \| `lds` \| `rds` |
//! | `pilot_xds_push_time` | histogram: seconds to build and queue a response | `type` |
//! | `pilot_total_xds_rejects` | counter: NACKs | `type` |
//!
//! (OpenMetrics text appends `_total` to counter samples.) Labels are typed
//! and bounded: never a proxy id, never Envoy's error text.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{RequestOutcome, TypeUrl};

/// Which ADS flavour a stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdsProtocol {
    /// State of the world.
    Sotw,
    /// Incremental.
    Delta,
}

impl XdsProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            XdsProtocol::Sotw => "sotw",
            XdsProtocol::Delta => "delta",
        }
    }
}

impl EncodeLabelValue for XdsProtocol {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// A resource type by its short name, as istiod labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XdsType(pub TypeUrl);

impl XdsType {
    pub fn as_str(self) -> &'static str {
        match self.0 {
            TypeUrl::Cluster => "cds",
            TypeUrl::ClusterLoadAssignment => "eds",
            TypeUrl::Listener => "lds",
            TypeUrl::RouteConfiguration => "rds",
        }
    }
}

impl EncodeLabelValue for XdsType {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: XdsProtocol,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TypeLabels {
    pub r#type: XdsType,
}

type HistogramConstructor = fn() -> Histogram;

fn push_time_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The xDS server's metrics. [`Default`] makes them unregistered (they
/// count, but nothing exports them); [`XdsMetrics::register`] exports them.
#[derive(Clone, Debug)]
pub struct XdsMetrics {
    connected: Family<ProtocolLabels, Gauge>,
    pushes: Family<TypeLabels, Counter>,
    push_time: Family<TypeLabels, Histogram, HistogramConstructor>,
    rejects: Family<TypeLabels, Counter>,
}

impl Default for XdsMetrics {
    /// Connections, pushes and rejects start at 0 for every label value, so
    /// that their series exist (and alerts on them work) before the first
    /// proxy connects.
    fn default() -> Self {
        let metrics = Self {
            connected: Family::default(),
            pushes: Family::default(),
            push_time: Family::new_with_constructor(push_time_histogram),
            rejects: Family::default(),
        };
        for protocol in [XdsProtocol::Sotw, XdsProtocol::Delta] {
            let _ = metrics
                .connected
                .get_or_create(&ProtocolLabels { protocol });
        }
        for type_url in TypeUrl::ALL {
            let labels = TypeLabels {
                r#type: XdsType(type_url),
            };
            let _ = metrics.pushes.get_or_create(&labels);
            let _ = metrics.rejects.get_or_create(&labels);
        }
        metrics
    }
}

impl XdsMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "pilot_xds",
            "Connected xDS clients (proxies), by protocol",
            metrics.connected.clone(),
        );
        registry.register(
            "pilot_xds_pushes",
            "xDS responses sent, by type",
            metrics.pushes.clone(),
        );
        // Seconds, without the `_seconds` suffix a unit would add: istiod's
        // name.
        registry.register(
            "pilot_xds_push_time",
            "Seconds from building an xDS response to having queued it to the proxy, by type",
            metrics.push_time.clone(),
        );
        registry.register(
            "pilot_total_xds_rejects",
            "xDS responses a proxy rejected (NACK), by type",
            metrics.rejects.clone(),
        );
        metrics
    }

    /// Counts a connected proxy until the returned guard is dropped.
    pub fn connected(&self, protocol: XdsProtocol) -> ConnectionGuard {
        let gauge = self
            .connected
            .get_or_create_owned(&ProtocolLabels { protocol });
        gauge.inc();
        ConnectionGuard { gauge }
    }

    /// Records one response of `type_url`, built and queued in `elapsed`.
    pub fn record_push(&self, type_url: TypeUrl, elapsed: Duration) {
        let labels = TypeLabels {
            r#type: XdsType(type_url),
        };
        self.pushes.get_or_create(&labels).inc();
        self.push_time
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Records what a request of `type_url` meant: a NACK is a reject.
    pub fn record_outcome(&self, type_url: &str, outcome: &RequestOutcome) {
        if let (RequestOutcome::Nack { .. }, Some(type_url)) = (outcome, TypeUrl::parse(type_url)) {
            let labels = TypeLabels {
                r#type: XdsType(type_url),
            };
            self.rejects.get_or_create(&labels).inc();
        }
    }

    /// Connected proxies speaking `protocol`.
    pub fn connected_count(&self, protocol: XdsProtocol) -> i64 {
        self.connected
            .get(&ProtocolLabels { protocol })
            .map_or(0, |g| g.get())
    }

    /// Responses of `type_url` sent so far.
    pub fn pushes(&self, type_url: TypeUrl) -> u64 {
        let labels = TypeLabels {
            r#type: XdsType(type_url),
        };
        self.pushes.get(&labels).map_or(0, |c| c.get())
    }

    /// NACKs of `type_url` so far.
    pub fn rejects(&self, type_url: TypeUrl) -> u64 {
        let labels = TypeLabels {
            r#type: XdsType(type_url),
        };
        self.rejects.get(&labels).map_or(0, |c| c.get())
    }
}

/// Holds one count in `pilot_xds`; releases it on drop, however the stream
/// ends.
#[derive(Debug)]
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn mk_nack() -> RequestOutcome {
        RequestOutcome::Nack {
            version: "v2".into(),
            kept: Some("v1".into()),
            message: "invalid repetition size: {1,50}".into(),
        }
    }

    fn encoded(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn a_nack_increments_the_rejects_of_its_type_without_the_error_text() {
        let mut registry = Registry::default();
        let metrics = XdsMetrics::register(&mut registry);
        metrics.record_outcome(TypeUrl::RouteConfiguration.as_str(), &mk_nack());
        metrics.record_outcome(
            TypeUrl::RouteConfiguration.as_str(),
            &RequestOutcome::Ack {
                version: "v1".into(),
            },
        );
        metrics.record_outcome("type.googleapis.com/unknown", &mk_nack());
        assert_eq!(metrics.rejects(TypeUrl::RouteConfiguration), 1);
        assert_eq!(metrics.rejects(TypeUrl::Cluster), 0);
        let text = encoded(&registry);
        assert!(
            text.contains("pilot_total_xds_rejects_total{type=\"rds\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pilot_total_xds_rejects_total{type=\"cds\"} 0"),
            "every type has a series from the start: {text}"
        );
        assert!(!text.contains("repetition"), "no error text: {text}");
        assert!(!text.contains("unknown"), "no unknown type: {text}");
    }

    #[test]
    fn pushes_are_counted_and_timed_by_type() {
        let mut registry = Registry::default();
        let metrics = XdsMetrics::register(&mut registry);
        metrics.record_push(TypeUrl::Cluster, Duration::from_millis(3));
        metrics.record_push(TypeUrl::Cluster, Duration::from_millis(1));
        metrics.record_push(TypeUrl::Listener, Duration::from_millis(2));
        let text = encoded(&registry);
        assert!(
            text.contains("pilot_xds_pushes_total{type=\"cds\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("pilot_xds_pushes_total{type=\"lds\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pilot_xds_push_time_count{type=\"cds\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE pilot_xds_push_time histogram"),
            "{text}"
        );
    }

    #[test]
    fn the_connection_gauge_follows_guards() {
        let mut registry = Registry::default();
        let metrics = XdsMetrics::register(&mut registry);
        let a = metrics.connected(XdsProtocol::Sotw);
        let b = metrics.connected(XdsProtocol::Delta);
        let c = metrics.connected(XdsProtocol::Sotw);
        assert_eq!(metrics.connected_count(XdsProtocol::Sotw), 2);
        drop(a);
        let text = encoded(&registry);
        assert!(text.contains("pilot_xds{protocol=\"sotw\"} 1"), "{text}");
        assert!(text.contains("pilot_xds{protocol=\"delta\"} 1"), "{text}");
        drop((b, c));
        assert_eq!(metrics.connected_count(XdsProtocol::Sotw), 0);
        assert_eq!(metrics.connected_count(XdsProtocol::Delta), 0);
    }

    #[test]
    fn unregistered_metrics_still_count() {
        let metrics = XdsMetrics::default();
        metrics.record_outcome(TypeUrl::Cluster.as_str(), &mk_nack());
        assert_eq!(metrics.rejects(TypeUrl::Cluster), 1);
    }
}
