//! Which remote key sets a snapshot needs, and how long fetching each may
//! take (the shortest `timeout` of the rules naming it).

use std::collections::BTreeMap;
use std::time::Duration;

use weft_model::{JwksLocation, JwksSource, MeshSnapshot};

/// Every remote key set a RequestAuthentication of `snapshot` names,
/// except those Envoy fetches itself ([`MeshSnapshot::envoy_fetched_jwks`]).
pub fn wanted(snapshot: &MeshSnapshot) -> BTreeMap<JwksLocation, Duration> {
    let mut wanted: BTreeMap<JwksLocation, Duration> = BTreeMap::new();
    let rules = snapshot
        .request_authentications
        .iter()
        .flat_map(|p| &p.jwt_rules);
    for rule in rules {
        if let JwksSource::Remote(location) = &rule.keys {
            if let JwksLocation::Uri(uri) = location
                && snapshot.envoy_fetched_jwks(uri).is_some()
            {
                continue;
            }
            wanted
                .entry(location.clone())
                .and_modify(|t| *t = (*t).min(rule.timeout))
                .or_insert(rule.timeout);
        }
    }
    wanted
}
