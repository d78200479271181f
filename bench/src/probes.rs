//! The predicates the scenario's changes are measured by, over what a
//! simulated Envoy accepted: a route sends a weight to a cluster; a load
//! assignment holds some addresses and not others. Pure.

use std::sync::Arc;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_loadgen::measure::{Predicate, addresses, weighted_clusters};
use weft_loadgen::state::{ClientState, ENDPOINT_TYPE, Resource};

use crate::world::EndpointChange;

/// "Some route sends weight `weight` to cluster `cluster`."
pub fn sends_weight(cluster: &str, weight: u32) -> Predicate {
    let cluster = cluster.to_string();
    Arc::new(move |state: &ClientState| {
        state
            .routes()
            .flat_map(weighted_clusters)
            .any(|(name, w)| name == cluster && w == Some(weight))
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
            let held: Vec<&str> = addresses(assignment).collect();
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
