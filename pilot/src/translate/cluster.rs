//! CDS: one cluster per service port, and one per DestinationRule subset.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster,
    cluster::{ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, EdsClusterConfig, LbPolicy},
};
use envoy_types::pb::envoy::config::core::v3::Http2ProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config},
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use super::{ProxyView, ads_config_source, endpoint, outbound_cluster_name, pb_duration};
use crate::model::{LoadBalancer, MeshSnapshot, Resolution, Service, ServicePort, Subset};

/// Istio's default `connectTimeout`.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every outbound cluster the proxy may use, sorted by name.
pub fn build_clusters(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Cluster> {
    let mut clusters = Vec::new();
    for service in super::visible_services(snapshot, view) {
        let rule = snapshot.destination_rules.get(&service.hostname);
        for port in &service.ports {
            let default_lb = rule.and_then(|r| r.load_balancer_for(None));
            clusters.push(build_cluster(service, port, None, default_lb));
            for subset in rule.map(|r| r.subsets.as_slice()).unwrap_or_default() {
                let lb = rule.and_then(|r| r.load_balancer_for(Some(subset)));
                clusters.push(build_cluster(service, port, Some(subset), lb));
            }
        }
    }
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters
}

fn build_cluster(
    service: &Service,
    port: &ServicePort,
    subset: Option<&Subset>,
    lb: Option<LoadBalancer>,
) -> Cluster {
    let name = outbound_cluster_name(
        port.number,
        subset.map(|s| s.name.as_str()),
        &service.hostname,
    );
    let mut cluster = Cluster {
        connect_timeout: Some(pb_duration(CONNECT_TIMEOUT)),
        lb_policy: lb_policy(lb) as i32,
        ..Default::default()
    };
    let discovery = match (lb, service.resolution) {
        (Some(LoadBalancer::Passthrough), _) | (_, Resolution::Passthrough) => {
            cluster.lb_policy = LbPolicy::ClusterProvided as i32;
            DiscoveryType::OriginalDst
        }
        (_, Resolution::Static) => {
            cluster.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(ads_config_source()),
                service_name: String::new(),
            });
            DiscoveryType::Eds
        }
        (_, Resolution::Dns | Resolution::DnsRoundRobin) => {
            cluster.dns_lookup_family = DnsLookupFamily::V4Only as i32;
            cluster.load_assignment = Some(endpoint::build_load_assignment(
                &name, service, port, subset,
            ));
            if service.resolution == Resolution::Dns {
                DiscoveryType::StrictDns
            } else {
                DiscoveryType::LogicalDns
            }
        }
    };
    cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(discovery as i32));
    if port.protocol.is_http2() {
        cluster.typed_extension_protocol_options = http2_options();
    }
    cluster.name = name;
    cluster
}

fn lb_policy(lb: Option<LoadBalancer>) -> LbPolicy {
    match lb {
        Some(LoadBalancer::RoundRobin) => LbPolicy::RoundRobin,
        Some(LoadBalancer::Random) => LbPolicy::Random,
        Some(LoadBalancer::Passthrough) => LbPolicy::ClusterProvided,
        // Istio's default is LEAST_REQUEST.
        Some(LoadBalancer::LeastRequest) | None => LbPolicy::LeastRequest,
    }
}

fn http2_options() -> HashMap<String, Any> {
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    HashMap::from([(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
        pack_any(options),
    )])
}
