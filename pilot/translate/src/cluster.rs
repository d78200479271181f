//! CDS: one cluster per service port, and one per DestinationRule subset,
//! each with the DestinationRule policy that applies to it (see
//! [`weft_model::DestinationRule::policy_for`] for the merge rules).

use super::telemetry;
use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as PbOutlier, UpstreamConnectionOptions,
    circuit_breakers::Thresholds,
    cluster::{
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, EdsClusterConfig,
        LbConfig, LbPolicy, LeastRequestLbConfig, MaglevLbConfig, RingHashLbConfig,
        RoundRobinLbConfig, SlowStartConfig,
    },
};
use weft_envoy_api::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CoreHttpOptions,
    RuntimeDouble, TcpKeepalive as PbKeepalive, UpstreamHttpProtocolOptions,
};
use weft_envoy_api::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, UseDownstreamHttpConfig, explicit_http_config,
    },
};
use weft_envoy_api::pb::envoy::r#type::v3::Percent;
use weft_envoy_api::pb::google::protobuf::{Any, UInt32Value, UInt64Value};
use weft_envoy_api::util::pack_any;

use super::applicable_rule::{applicable_rule, cluster_policy};
use super::{
    ProxyView, ads_config_source, endpoint, mtls, outbound_cluster_name, pb_duration, upstream_tls,
};
use weft_model::{
    ConnectionPool, HashAlgorithm, LbPolicy as ModelLb, MeshSnapshot, OutlierDetection,
    PolicySettings, Resolution, Service, ServicePort, Subset, TlsMode, Warmup,
};

/// Istio's default `connectTimeout`.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Istio's default ring size for ring hash.
const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Every outbound cluster the proxy may use, sorted by name.
pub fn build_clusters(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Cluster> {
    let mut clusters = Vec::new();
    for service in super::visible_services(snapshot, view) {
        let rule = applicable_rule(snapshot, view, &service.hostname);
        for port in &service.ports {
            let p = cluster_policy(rule, port.number, None);
            let mut built = vec![build_cluster(snapshot, service, port, None, &p)];
            for subset in rule.map(|r| r.subsets.as_slice()).unwrap_or_default() {
                let p = cluster_policy(rule, port.number, Some(subset));
                built.push(build_cluster(snapshot, service, port, Some(subset), &p));
            }
            if let Some(rule) = rule {
                for cluster in &mut built {
                    cluster.metadata = Some(super::config_metadata::with_config(
                        cluster.metadata.take(),
                        &rule.id,
                    ));
                }
            }
            clusters.extend(built);
        }
    }
    clusters.extend(super::inbound::build_inbound_clusters(snapshot, view));
    clusters.extend(super::capture::build_capture_clusters(snapshot, view));
    // A Sidecar ingress port's `inbound|P||` wins over the captured
    // workload port's (stable sort: it came first).
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters.dedup_by(|later, first| later.name == first.name);
    clusters
}

/// Whether the cluster for this policy and service forwards to the
/// caller's original destination rather than to known endpoints.
pub(super) fn is_passthrough(service: &Service, policy: &PolicySettings) -> bool {
    service.resolution == Resolution::Passthrough
        || matches!(
            policy.load_balancer.as_ref().map(|lb| &lb.policy),
            Some(ModelLb::Passthrough)
        )
}

fn build_cluster(
    snapshot: &MeshSnapshot,
    service: &Service,
    port: &ServicePort,
    subset: Option<&Subset>,
    policy: &PolicySettings,
) -> Cluster {
    let name = outbound_cluster_name(
        port.number,
        subset.map(|s| s.name.as_str()),
        &service.hostname,
    );
    let pool = policy.connection_pool.clone().unwrap_or_default();
    let mut cluster = Cluster {
        connect_timeout: Some(pb_duration(pool.connect_timeout.unwrap_or(CONNECT_TIMEOUT))),
        circuit_breakers: Some(circuit_breakers(&pool)),
        ..Default::default()
    };
    apply_load_balancer(&mut cluster, policy);
    cluster.metadata = Some(telemetry::metadata::cluster_metadata(
        cluster.metadata.take(),
        service,
    ));
    let discovery = if is_passthrough(service, policy) {
        cluster.lb_policy = LbPolicy::ClusterProvided as i32;
        cluster.lb_config = None;
        DiscoveryType::OriginalDst
    } else {
        match service.resolution {
            Resolution::Static | Resolution::Passthrough => {
                cluster.eds_cluster_config = Some(EdsClusterConfig {
                    eds_config: Some(ads_config_source()),
                    service_name: String::new(),
                });
                DiscoveryType::Eds
            }
            Resolution::Dns | Resolution::DnsRoundRobin => {
                cluster.dns_lookup_family = DnsLookupFamily::V4Only as i32;
                cluster.load_assignment = Some(endpoint::build_load_assignment(
                    &name, service, port, subset, snapshot,
                ));
                if service.resolution == Resolution::Dns {
                    DiscoveryType::StrictDns
                } else {
                    DiscoveryType::LogicalDns
                }
            }
        }
    };
    cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(discovery as i32));
    if let Some(outlier) = &policy.outlier_detection {
        apply_outlier_detection(&mut cluster, outlier);
    }
    if let Some(k) = pool.tcp_keepalive {
        cluster.upstream_connection_options = Some(UpstreamConnectionOptions {
            tcp_keepalive: Some(PbKeepalive {
                keepalive_probes: k.probes.map(|value| UInt32Value { value }),
                keepalive_time: k.time.map(|value| UInt32Value { value }),
                keepalive_interval: k.interval.map(|value| UInt32Value { value }),
            }),
            ..Default::default()
        });
    }
    apply_tls(&mut cluster, snapshot, service, port, subset, policy);
    if port.protocol.is_http() {
        cluster.typed_extension_protocol_options = http_options(port, &pool, policy);
    }
    cluster.name = name;
    cluster
}

/// The upstream TLS of the cluster: the DestinationRule's `tls` when one
/// applies (ISTIO_MUTUAL with SDS certificates, Istio's SNI and the
/// destination's SPIFFE IDs), else auto mTLS when some endpoint speaks
/// mesh mTLS (see [`mtls::endpoint_speaks_mtls`]), else plain text.
fn apply_tls(
    cluster: &mut Cluster,
    snapshot: &MeshSnapshot,
    service: &Service,
    port: &ServicePort,
    subset: Option<&Subset>,
    policy: &PolicySettings,
) {
    let sni = || {
        mtls::istio_sni(
            port.number,
            subset.map(|s| s.name.as_str()),
            &service.hostname,
        )
    };
    let http = port.protocol.is_http().then(|| port.protocol.is_http2());
    let trust_domain = &snapshot.mesh_config.trust_domain;
    match &policy.tls {
        Some(tls) if tls.mode == TlsMode::IstioMutual => {
            let identities = if tls.subject_alt_names.is_empty() {
                mtls::service_identities(trust_domain, service)
            } else {
                tls.subject_alt_names.clone()
            };
            let sni = tls.sni.clone().unwrap_or_else(sni);
            cluster.transport_socket = Some(mtls::istio_mutual_socket(
                trust_domain,
                sni,
                &identities,
                http,
            ));
        }
        Some(tls) => cluster.transport_socket = upstream_tls::build_transport_socket(tls),
        None => {
            let any_mtls = service
                .endpoints
                .iter()
                .filter(|e| subset.is_none_or(|s| e.matches(&s.labels)))
                .any(|e| mtls::endpoint_speaks_mtls(snapshot, service, e, port));
            if any_mtls && !is_passthrough(service, policy) {
                let identities = mtls::service_identities(trust_domain, service);
                cluster.transport_socket_matches =
                    mtls::auto_mtls_matches(trust_domain, sni(), &identities, http);
            }
        }
    }
}

/// Istio sets every threshold to the maximum unless `connectionPool`
/// lowers it (Envoy's own defaults, e.g. 3 concurrent retries, are too
/// low for a mesh).
fn circuit_breakers(pool: &ConnectionPool) -> CircuitBreakers {
    let limit = |v: Option<u32>| {
        Some(UInt32Value {
            value: v.unwrap_or(u32::MAX),
        })
    };
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: limit(pool.max_connections),
            max_pending_requests: limit(pool.http1_max_pending_requests),
            max_requests: limit(pool.http2_max_requests),
            max_retries: limit(pool.max_retries),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn apply_load_balancer(cluster: &mut Cluster, policy: &PolicySettings) {
    let lb = policy.load_balancer.as_ref();
    let slow_start = lb.and_then(|lb| lb.warmup.as_ref()).map(slow_start_config);
    let (lb_policy, lb_config) = match lb.map(|lb| &lb.policy) {
        Some(ModelLb::RoundRobin) => (
            LbPolicy::RoundRobin,
            slow_start.map(|s| {
                LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
                    slow_start_config: Some(s),
                })
            }),
        ),
        Some(ModelLb::Random) => (LbPolicy::Random, None),
        Some(ModelLb::Passthrough) => (LbPolicy::ClusterProvided, None),
        Some(ModelLb::ConsistentHash(hash)) => match hash.algorithm {
            HashAlgorithm::RingHash { minimum_ring_size } => (
                LbPolicy::RingHash,
                Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                    minimum_ring_size: Some(UInt64Value {
                        value: minimum_ring_size.unwrap_or(DEFAULT_MINIMUM_RING_SIZE),
                    }),
                    ..Default::default()
                })),
            ),
            HashAlgorithm::Maglev { table_size } => (
                LbPolicy::Maglev,
                Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                    table_size: table_size.map(|value| UInt64Value { value }),
                })),
            ),
        },
        // Istio's default is LEAST_REQUEST.
        Some(ModelLb::LeastRequest | ModelLb::Default) | None => (
            LbPolicy::LeastRequest,
            slow_start.map(|s| {
                LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                    slow_start_config: Some(s),
                    ..Default::default()
                })
            }),
        ),
    };
    cluster.lb_policy = lb_policy as i32;
    cluster.lb_config = lb_config;
}

fn slow_start_config(w: &Warmup) -> SlowStartConfig {
    SlowStartConfig {
        slow_start_window: Some(pb_duration(w.duration)),
        aggression: w.aggression.map(|a| RuntimeDouble {
            default_value: a,
            runtime_key: "upstream.weft.slow_start.aggression".to_string(),
        }),
        min_weight_percent: w.minimum_percent.map(|value| Percent { value }),
    }
}

/// Istio's mapping: success-rate ejection off; each consecutive-error
/// detector enforced 100% when its threshold is non-zero; the panic
/// threshold is `minHealthPercent` (default 0: off).
fn apply_outlier_detection(cluster: &mut Cluster, o: &OutlierDetection) {
    let enforcing = |v: u32| UInt32Value {
        value: if v > 0 { 100 } else { 0 },
    };
    let mut out = PbOutlier {
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        interval: o.interval.map(pb_duration),
        base_ejection_time: o.base_ejection_time.map(pb_duration),
        max_ejection_percent: o.max_ejection_percent.map(|value| UInt32Value { value }),
        ..Default::default()
    };
    if let Some(v) = o.consecutive_5xx_errors {
        out.consecutive_5xx = Some(UInt32Value { value: v });
        out.enforcing_consecutive_5xx = Some(enforcing(v));
    }
    if let Some(v) = o.consecutive_gateway_errors {
        out.consecutive_gateway_failure = Some(UInt32Value { value: v });
        out.enforcing_consecutive_gateway_failure = Some(enforcing(v));
    }
    if o.split_external_local_origin_errors {
        out.split_external_local_origin_errors = true;
        if let Some(v) = o.consecutive_local_origin_failures.filter(|v| *v > 0) {
            out.consecutive_local_origin_failure = Some(UInt32Value { value: v });
            out.enforcing_consecutive_local_origin_failure = Some(UInt32Value { value: 100 });
        }
        out.enforcing_local_origin_success_rate = Some(UInt32Value { value: 0 });
    }
    cluster.outlier_detection = Some(out);
    cluster.common_lb_config = Some(CommonLbConfig {
        healthy_panic_threshold: Some(Percent {
            value: f64::from(o.min_health_percent),
        }),
        ..Default::default()
    });
}

/// The upstream HTTP options of an HTTP port's cluster: the protocol
/// (HTTP/2 for `HTTP2`/`GRPC` ports or `h2UpgradePolicy: UPGRADE`, the
/// client's with `useClientProtocol`), connection limits, and automatic
/// SNI for TLS without `sni`. Empty when all are Envoy's defaults.
fn http_options(
    port: &ServicePort,
    pool: &ConnectionPool,
    policy: &PolicySettings,
) -> BTreeMap<String, Any> {
    let http2 = port.protocol.is_http2() || pool.h2_upgrade == Some(true);
    let http2_options = || Http2ProtocolOptions {
        max_concurrent_streams: pool
            .max_concurrent_streams
            .map(|value| UInt32Value { value }),
        ..Default::default()
    };
    let protocol = if pool.use_client_protocol {
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(
            UseDownstreamHttpConfig {
                http_protocol_options: Some(Http1ProtocolOptions::default()),
                http2_protocol_options: Some(http2_options()),
                ..Default::default()
            },
        ))
    } else if http2 {
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                    http2_options(),
                )),
            },
        ))
    } else {
        None
    };
    let idle_timeout = pool.http_idle_timeout.or(pool.tcp_idle_timeout);
    let common = (idle_timeout.is_some()
        || pool.max_requests_per_connection.is_some()
        || pool.max_connection_duration.is_some())
    .then(|| CoreHttpOptions {
        idle_timeout: idle_timeout.map(pb_duration),
        max_connection_duration: pool.max_connection_duration.map(pb_duration),
        max_requests_per_connection: pool
            .max_requests_per_connection
            .map(|value| UInt32Value { value }),
        ..Default::default()
    });
    let upstream_http = policy
        .tls
        .as_ref()
        .filter(|t| upstream_tls::auto_sni(t))
        .map(|t| UpstreamHttpProtocolOptions {
            auto_sni: true,
            auto_san_validation: upstream_tls::auto_san_validation(t),
            ..Default::default()
        });
    if protocol.is_none() && common.is_none() && upstream_http.is_none() {
        return BTreeMap::new();
    }
    let protocol = protocol.unwrap_or_else(|| {
        UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                Http1ProtocolOptions::default(),
            )),
        })
    });
    let options = HttpProtocolOptions {
        common_http_protocol_options: common,
        upstream_http_protocol_options: upstream_http,
        upstream_protocol_options: Some(protocol),
        ..Default::default()
    };
    BTreeMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), pack_any(options))])
}
