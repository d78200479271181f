//! EDS: the endpoints of each statically resolved cluster, grouped by
//! locality (WorkloadEntry `locality` -> Envoy `Locality`), with weights.

use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::core::v3::Locality as PbLocality;
use weft_envoy_api::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints,
    lb_endpoint::HostIdentifier,
};
use weft_envoy_api::pb::google::protobuf::UInt32Value;

use super::applicable_rule::{applicable_rule, cluster_policy};
use super::cluster::is_passthrough;
use super::mtls::{endpoint_speaks_mtls, mtls_endpoint_metadata};
use super::telemetry::metadata::endpoint_metadata;
use super::{ProxyView, outbound_cluster_name, socket_address};
use weft_model::{Locality, MeshSnapshot, Resolution, Service, ServicePort, Subset};

/// A load assignment for every EDS cluster [`super::build_clusters`] emits,
/// sorted by cluster name.
pub fn build_load_assignments(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
) -> Vec<ClusterLoadAssignment> {
    let mut assignments = Vec::new();
    for service in super::visible_services(snapshot, view) {
        if service.resolution != Resolution::Static {
            continue;
        }
        let rule = applicable_rule(snapshot, view, &service.hostname);
        let subsets = rule.map(|r| r.subsets.as_slice()).unwrap_or_default();
        for port in &service.ports {
            let passthrough = |subset: Option<&Subset>| {
                is_passthrough(service, &cluster_policy(rule, port.number, subset))
            };
            if !passthrough(None) {
                let name = outbound_cluster_name(port.number, None, &service.hostname);
                assignments.push(build_load_assignment(&name, service, port, None, snapshot));
            }
            for subset in subsets.iter().filter(|s| !passthrough(Some(s))) {
                let name =
                    outbound_cluster_name(port.number, Some(&subset.name), &service.hostname);
                assignments.push(build_load_assignment(
                    &name,
                    service,
                    port,
                    Some(subset),
                    snapshot,
                ));
            }
        }
    }
    assignments.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    assignments
}

/// The endpoints of `service` on `port`, narrowed to `subset`'s labels;
/// those that speak mesh mTLS carry the metadata auto mTLS matches on.
pub(super) fn build_load_assignment(
    cluster_name: &str,
    service: &Service,
    port: &ServicePort,
    subset: Option<&Subset>,
    snapshot: &MeshSnapshot,
) -> ClusterLoadAssignment {
    let mut by_locality: BTreeMap<Option<&Locality>, Vec<LbEndpoint>> = BTreeMap::new();
    for e in service
        .endpoints
        .iter()
        .filter(|e| subset.is_none_or(|s| e.matches(&s.labels)))
    {
        by_locality
            .entry(e.locality.as_ref())
            .or_default()
            .push(LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(PbEndpoint {
                    address: Some(socket_address(&e.address, e.port_for(port))),
                    ..Default::default()
                })),
                load_balancing_weight: e.weight.map(|value| UInt32Value { value }),
                metadata: endpoint_metadata(
                    endpoint_speaks_mtls(snapshot, service, e, port).then(mtls_endpoint_metadata),
                    service,
                    e,
                ),
                ..Default::default()
            });
    }
    // Envoy wants one (possibly empty) group even without endpoints.
    if by_locality.is_empty() {
        by_locality.insert(None, Vec::new());
    }
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints: by_locality
            .into_iter()
            .map(|(locality, lb_endpoints)| LocalityLbEndpoints {
                locality: locality.map(|l| PbLocality {
                    region: l.region.clone(),
                    zone: l.zone.clone(),
                    sub_zone: l.sub_zone.clone(),
                }),
                lb_endpoints,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
