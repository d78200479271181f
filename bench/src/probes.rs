//! The predicates the scenario's changes are measured by, over what a
//! simulated Envoy accepted: a route sends a weight to a cluster; a load
//! assignment holds some addresses and not others. Pure.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::config::route::v3::{route::Action, route_action::ClusterSpecifier};
use weft_loadgen::measure::Predicate;
use weft_loadgen::state::{ClientState, ENDPOINT_TYPE, Resource};

use crate::world::EndpointChange;

/// "Some route sends weight `weight` to cluster `cluster`."
pub fn sends_weight(cluster: &str, weight: u32) -> Predicate {
    let cluster = cluster.to_string();
    Arc::new(move |state: &ClientState| {
        state
            .routes()
            .flat_map(|r| r.virtual_hosts.iter())
            .flat_map(|vh| vh.routes.iter())
            .filter_map(|r| match &r.action {
                Some(Action::Route(action)) => action.cluster_specifier.as_ref(),
                _ => None,
            })
            .any(|spec| match spec {
                ClusterSpecifier::WeightedClusters(w) => w.clusters.iter().any(|c| {
                    c.name == cluster && c.weight.as_ref().map(|w| w.value) == Some(weight)
                }),
                _ => false,
            })
    })
}

/// "Every change holds: each load assignment has its added addresses and
/// none of its removed ones."
pub fn endpoints_changed(changes: Vec<EndpointChange>) -> Predicate {
    Arc::new(move |state: &ClientState| {
        changes.iter().all(|change| {
            let Some(assignment) = load_assignment(state, &change.cluster) else {
                return false;
            };
            let held = addresses(assignment);
            change.added.iter().all(|a| held.contains(&a.as_str()))
                && !change.removed.iter().any(|r| held.contains(&r.as_str()))
        })
    })
}

fn load_assignment<'a>(state: &'a ClientState, cluster: &str) -> Option<&'a ClusterLoadAssignment> {
    match state.types.get(ENDPOINT_TYPE)?.resources.get(cluster)? {
        Resource::Endpoint(assignment) => Some(assignment),
        _ => None,
    }
}

fn addresses(assignment: &ClusterLoadAssignment) -> Vec<&str> {
    assignment
        .endpoints
        .iter()
        .flat_map(|l| l.lb_endpoints.iter())
        .filter_map(|lb| match &lb.host_identifier {
            Some(HostIdentifier::Endpoint(ep)) => ep.address.as_ref(),
            _ => None,
        })
        .filter_map(|a| match &a.address {
            Some(address::Address::SocketAddress(sa)) => Some(sa.address.as_str()),
            _ => None,
        })
        .collect()
}
