//! The gRPC handler of the quota service and its metrics.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use envoy_types::pb::envoy::service::ratelimit::v3::{
    RateLimitRequest, RateLimitResponse,
    rate_limit_response::{Code, DescriptorStatus},
    rate_limit_service_server::{RateLimitService, RateLimitServiceServer},
};
use envoy_types::pb::google::protobuf::Duration;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::counter::Counter;
use weft_model::MeshSnapshot;
use weft_translate::quota::{QUOTA_DOMAIN, override_name, parse_descriptor};

/// `weft_quota_requests_total` labels: the quota (`ns/name`), the override
/// (`o<i>` or `default`) and whether the call was admitted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QuotaLabels {
    pub quota: String,
    pub r#override: String,
    pub allowed: String,
}

/// The quota service's metrics.
#[derive(Clone, Debug, Default)]
pub struct QuotaMetrics {
    requests: Family<QuotaLabels, PromCounter>,
}

impl QuotaMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_quota_requests",
            "Calls counted by the quota service (Global quotas), by quota, override and outcome",
            metrics.requests.clone(),
        );
        metrics
    }
}

/// The counted windows, and the snapshot version whose quotas they were
/// last pruned to.
#[derive(Debug, Default)]
struct Windows {
    counter: Counter,
    pruned_for: Option<u64>,
}

impl Windows {
    /// The counter, first rid of deleted quotas' windows when `snapshot`
    /// is newer than the last one seen (not on every call).
    fn current_for(&mut self, snapshot: &MeshSnapshot) -> &mut Counter {
        if self.pruned_for != Some(snapshot.version) {
            self.counter
                .retain(|key| snapshot.quotas.iter().any(|q| q.key() == key));
            self.pruned_for = Some(snapshot.version);
        }
        &mut self.counter
    }
}

/// Answers `ShouldRateLimit` from the newest snapshot's quotas.
#[derive(Debug)]
pub struct QuotaService {
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    windows: Mutex<Windows>,
    origin: Instant,
    metrics: QuotaMetrics,
}

impl QuotaService {
    pub fn new(snapshots: watch::Receiver<Arc<MeshSnapshot>>, metrics: QuotaMetrics) -> Self {
        Self {
            snapshots,
            windows: Mutex::new(Windows::default()),
            origin: Instant::now(),
            metrics,
        }
    }

    /// The tonic service.
    pub fn into_service(self) -> RateLimitServiceServer<Self> {
        RateLimitServiceServer::new(self)
    }

    /// The answer to one request (every descriptor counted; over limit
    /// if any is).
    pub fn decide(&self, request: &RateLimitRequest) -> RateLimitResponse {
        let snapshot = self.snapshots.borrow().clone();
        let now = self.origin.elapsed();
        let mut statuses = Vec::new();
        let mut over = false;
        let Ok(mut windows) = self.windows.lock() else {
            return RateLimitResponse {
                overall_code: Code::Unknown as i32,
                ..Default::default()
            };
        };
        let counter = windows.current_for(&snapshot);
        for descriptor in &request.descriptors {
            let found = (request.domain == QUOTA_DOMAIN)
                .then(|| {
                    parse_descriptor(
                        descriptor
                            .entries
                            .iter()
                            .map(|e| (e.key.as_str(), e.value.as_str())),
                    )
                })
                .flatten()
                .and_then(|(key, index)| {
                    let quota = snapshot.quotas.iter().find(|q| q.key() == key)?;
                    Some((key, index, quota.amount(index)))
                });
            let Some((key, index, amount)) = found else {
                statuses.push(DescriptorStatus {
                    code: Code::Ok as i32,
                    ..Default::default()
                });
                continue;
            };
            let decision = counter.hit(&key, index, amount, now);
            over |= !decision.allowed;
            self.metrics
                .requests
                .get_or_create(&QuotaLabels {
                    quota: key,
                    r#override: index.map_or_else(|| "default".to_string(), override_name),
                    allowed: decision.allowed.to_string(),
                })
                .inc();
            let unit = envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit::Second;
            statuses.push(DescriptorStatus {
                code: if decision.allowed { Code::Ok } else { Code::OverLimit } as i32,
                current_limit: Some(
                    envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::RateLimit {
                        requests_per_unit: amount.max_amount,
                        unit: unit as i32,
                        ..Default::default()
                    },
                ),
                limit_remaining: decision.remaining,
                duration_until_reset: Some(Duration {
                    seconds: i64::try_from(decision.reset.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(decision.reset.subsec_nanos()).unwrap_or(0),
                }),
                ..Default::default()
            });
        }
        RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
            ..Default::default()
        }
    }
}

#[tonic::async_trait]
impl RateLimitService for QuotaService {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.decide(request.get_ref())))
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
        RateLimitDescriptor, rate_limit_descriptor::Entry,
    };

    use super::*;
    use weft_config::testing::mk_snapshot;

    const QUOTA: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: prod}
spec:
  hosts: [ratings.prod.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: policy.weft.dev/v1alpha1
kind: Quota
metadata: {name: ratings, namespace: prod}
spec:
  destination: {host: ratings}
  maxAmount: 2
  validDuration: 1h
  scope: Global
  overrides:
  - match: {sourceLabels: {version: v3}}
    maxAmount: 1
    validDuration: 1h
";

    fn request(entries: &[(&str, &str)]) -> RateLimitRequest {
        RateLimitRequest {
            domain: QUOTA_DOMAIN.to_string(),
            descriptors: vec![RateLimitDescriptor {
                entries: entries
                    .iter()
                    .map(|(k, v)| Entry {
                        key: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn counts_the_quota_s_default_and_overrides_and_counts_metrics() {
        let (_tx, rx) = watch::channel(Arc::new(mk_snapshot(QUOTA)));
        let mut registry = Registry::default();
        let service = QuotaService::new(rx, QuotaMetrics::register(&mut registry));
        let default = request(&[("quota", "prod/ratings"), ("not", "o0")]);
        let v3 = request(&[("quota", "prod/ratings"), ("override", "o0")]);
        let code = |r: &RateLimitRequest| service.decide(r).overall_code;
        assert_eq!(code(&default), Code::Ok as i32);
        assert_eq!(code(&default), Code::Ok as i32);
        assert_eq!(code(&default), Code::OverLimit as i32);
        assert_eq!(code(&v3), Code::Ok as i32);
        let refused = service.decide(&v3);
        assert_eq!(refused.overall_code, Code::OverLimit as i32);
        assert_eq!(refused.statuses[0].limit_remaining, 0);
        // Unknown quotas and other domains are not limited.
        assert_eq!(code(&request(&[("quota", "prod/nope")])), Code::Ok as i32);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"weft_quota_requests_total{quota="prod/ratings",override="default",allowed="false"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"weft_quota_requests_total{quota="prod/ratings",override="o0",allowed="true"} 1"#
            ),
            "{text}"
        );
    }
}
