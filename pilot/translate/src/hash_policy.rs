//! Route hash policies for DestinationRule `consistentHash`.
//!
//! A consistent hash needs two halves: the cluster's RING_HASH / MAGLEV
//! balancer ([`super::cluster`]) and, on the route, what to hash. The
//! route builder asks for the second half here.

use weft_envoy_api::pb::envoy::config::route::v3::route_action::{
    HashPolicy,
    hash_policy::{ConnectionProperties, Cookie, Header, PolicySpecifier, QueryParameter},
};

use super::pb_duration;
use weft_model::{HashKey, LbPolicy, MeshSnapshot, RouteDestination};

/// The hash policies a route to `destination` needs so that its cluster's
/// ring-hash or maglev balancer sees the key the DestinationRule names.
///
/// Without a destination port, port-level settings apply only when the
/// service has exactly one port. The proxy's view is not known here, so a
/// rule's `exportTo` / `workloadSelector` is not consulted: a hash policy
/// on a route whose cluster does not hash is ignored by Envoy.
pub fn build_hash_policies(
    snapshot: &MeshSnapshot,
    destination: &RouteDestination,
) -> Vec<HashPolicy> {
    let Some(rule) = snapshot.destination_rules.get(&destination.host) else {
        return Vec::new();
    };
    let port = destination.port.or_else(|| {
        match snapshot.services.get(&destination.host)?.ports.as_slice() {
            [only] => Some(only.number),
            _ => None,
        }
    });
    let subset = destination
        .subset
        .as_deref()
        .and_then(|name| rule.subsets.iter().find(|s| s.name == name));
    let policy = rule.policy_for(port, subset);
    let Some(LbPolicy::ConsistentHash(hash)) = policy.load_balancer.map(|lb| lb.policy) else {
        return Vec::new();
    };
    let specifier = match hash.key {
        HashKey::Header(header_name) => PolicySpecifier::Header(Header {
            header_name,
            ..Default::default()
        }),
        HashKey::Cookie { name, path, ttl } => PolicySpecifier::Cookie(Cookie {
            name,
            path: path.unwrap_or_default(),
            ttl: ttl.map(pb_duration),
            ..Default::default()
        }),
        HashKey::SourceIp => {
            PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
        }
        HashKey::QueryParameter(name) => PolicySpecifier::QueryParameter(QueryParameter { name }),
    };
    vec![HashPolicy {
        policy_specifier: Some(specifier),
        terminal: false,
    }]
}
