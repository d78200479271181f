//! Route hash policies for DestinationRule `consistentHash`.

use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy;

use crate::model::{MeshSnapshot, RouteDestination};

/// The hash policies a route to `destination` needs so that its cluster's
/// ring-hash or maglev balancer sees the key the DestinationRule names.
pub fn build_hash_policies(
    _snapshot: &MeshSnapshot,
    _destination: &RouteDestination,
) -> Vec<HashPolicy> {
    Vec::new()
}
