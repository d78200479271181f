//! Recomputing only what a change touches.
//!
//! [`diff`] compares two snapshots and says, per resource type, which
//! service hosts changed. [`ViewResources::update`] then rebuilds only the
//! clusters, load assignments and router virtual hosts of those hosts, by
//! running the same pure `build_*` functions on a snapshot narrowed to them,
//! and reuses everything else from the previous resources. Endpoint churn
//! therefore touches EDS only, and an edited VirtualService rebuilds only
//! the virtual hosts of the hosts it names. Tests check that an update
//! always equals a full build.

use std::collections::{BTreeMap, BTreeSet};

use weft_model::{MeshSnapshot, Resolution, ResourceId, Service, VirtualService, host_matches};

/// What changed between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Rebuild everything: a change this module does not narrow down.
    pub full: bool,
    /// Hosts whose clusters must be rebuilt.
    pub clusters: BTreeSet<String>,
    /// Hosts whose load assignments must be rebuilt.
    pub endpoints: BTreeSet<String>,
    /// Hosts whose router virtual hosts must be rebuilt.
    pub routes: BTreeSet<String>,
    /// Every route must be rebuilt (a rule for a wildcard host changed, or
    /// a DestinationRule, which routes read for hash policies).
    pub all_routes: bool,
    /// Listeners must be rebuilt.
    pub listeners: bool,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        *self == ChangeSet::default()
    }
}

/// Compares `old` and `new`.
pub fn diff(old: &MeshSnapshot, new: &MeshSnapshot) -> ChangeSet {
    let mut changes = ChangeSet::default();
    if !same_beyond_services_and_rules(old, new) {
        changes.full = true;
        return changes;
    }
    for host in union(old.services.keys(), new.services.keys()) {
        match (old.services.get(host), new.services.get(host)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) if endpoints_only(a, b) => {
                changes.endpoints.insert(host.clone());
            }
            _ => {
                changes.clusters.insert(host.clone());
                changes.endpoints.insert(host.clone());
                changes.routes.insert(host.clone());
                changes.listeners = true;
            }
        }
    }
    for host in union(old.destination_rules.keys(), new.destination_rules.keys()) {
        if old.destination_rules.get(host) != new.destination_rules.get(host) {
            changes.clusters.insert(host.clone());
            changes.endpoints.insert(host.clone());
            // Routes read rules for hash policies, gateway listeners too.
            changes.all_routes = true;
            changes.listeners = true;
        }
    }
    let (old_vs, new_vs) = (virtual_services_by_id(old), virtual_services_by_id(new));
    for id in union(old_vs.keys(), new_vs.keys()) {
        let (a, b) = (old_vs.get(id).copied(), new_vs.get(id).copied());
        if a == b {
            continue;
        }
        changes.listeners = true;
        for vs in a.into_iter().chain(b) {
            touched_hosts(vs, &mut changes);
        }
    }
    changes
}

fn virtual_services_by_id(s: &MeshSnapshot) -> BTreeMap<&ResourceId, &VirtualService> {
    s.virtual_services.iter().map(|vs| (&vs.id, vs)).collect()
}

fn union<'a, T: Ord + 'a, I: Iterator<Item = &'a T>>(a: I, b: I) -> BTreeSet<&'a T> {
    a.chain(b).collect()
}

/// Whether only the endpoints of a statically resolved service differ
/// (DNS services carry their endpoints in the cluster), and not in what
/// clusters read from them: mesh mTLS (the sidecar marker of auto mTLS,
/// the service accounts SAN checks name).
fn endpoints_only(a: &Service, b: &Service) -> bool {
    a.resolution == Resolution::Static
        && b.resolution == Resolution::Static
        && mtls_facts(a) == mtls_facts(b)
        && Service {
            endpoints: b.endpoints.clone(),
            ..a.clone()
        } == *b
}

/// What clusters read from endpoints: the service accounts, and the
/// labels of the endpoints marked as having a sidecar (subsets select
/// them by label).
fn mtls_facts(s: &Service) -> (BTreeSet<&str>, BTreeSet<&BTreeMap<String, String>>) {
    let accounts = s
        .endpoints
        .iter()
        .filter_map(|e| e.service_account.as_deref())
        .collect();
    let marked = s
        .endpoints
        .iter()
        .filter(|e| e.labels.contains_key(weft_translate::TLS_MODE_LABEL))
        .map(|e| &e.labels)
        .collect();
    (accounts, marked)
}

fn touched_hosts(vs: &VirtualService, changes: &mut ChangeSet) {
    // A delegate (no hosts) or a wildcard rule can reach any host.
    if vs.hosts.is_empty() || vs.hosts.iter().any(|h| h.starts_with('*')) {
        changes.all_routes = true;
    }
    changes.routes.extend(vs.hosts.iter().cloned());
}

/// Whether the snapshots agree on everything but services, virtual services
/// and destination rules (whose changes [`diff`] narrows down).
fn same_beyond_services_and_rules(old: &MeshSnapshot, new: &MeshSnapshot) -> bool {
    // Named field by field, so that a new field is a compile error here
    // until someone decides how its changes narrow down.
    let MeshSnapshot {
        version: _,
        services: _,
        virtual_services: _,
        destination_rules: _,
        gateways,
        sidecars,
        peer_authentications,
        request_authentications,
        authorization_policies,
        quotas,
        telemetries,
        mesh_config,
        fetched_jwks,
    } = old;
    *gateways == new.gateways
        && *sidecars == new.sidecars
        && *peer_authentications == new.peer_authentications
        && *request_authentications == new.request_authentications
        && *authorization_policies == new.authorization_policies
        && *quotas == new.quotas
        && *telemetries == new.telemetries
        && *mesh_config == new.mesh_config
        && *fetched_jwks == new.fetched_jwks
}

/// The input for rebuilding the clusters or load assignments of `hosts`:
/// their services and destination rules, and what scopes them.
pub fn narrowed_to_hosts(snapshot: &MeshSnapshot, hosts: &BTreeSet<String>) -> MeshSnapshot {
    MeshSnapshot {
        version: snapshot.version,
        services: pick(&snapshot.services, hosts),
        virtual_services: Vec::new(),
        destination_rules: pick(&snapshot.destination_rules, hosts),
        gateways: snapshot.gateways.clone(),
        sidecars: snapshot.sidecars.clone(),
        peer_authentications: snapshot.peer_authentications.clone(),
        request_authentications: snapshot.request_authentications.clone(),
        authorization_policies: snapshot.authorization_policies.clone(),
        quotas: snapshot.quotas.clone(),
        telemetries: snapshot.telemetries.clone(),
        mesh_config: snapshot.mesh_config.clone(),
        fetched_jwks: snapshot.fetched_jwks.clone(),
    }
}

/// The input for rebuilding the router virtual hosts of `hosts`: their
/// services, the rules that name them (and delegates), and the services
/// and destination rules those rules route to.
pub fn narrowed_to_routes(snapshot: &MeshSnapshot, hosts: &BTreeSet<String>) -> MeshSnapshot {
    let virtual_services: Vec<VirtualService> = snapshot
        .virtual_services
        .iter()
        .filter(|vs| {
            vs.hosts.is_empty()
                || vs
                    .hosts
                    .iter()
                    .any(|p| hosts.iter().any(|h| host_matches(p, h)))
        })
        .cloned()
        .collect();
    let mut needed = hosts.clone();
    needed.extend(virtual_services.iter().flat_map(referenced_hosts));
    MeshSnapshot {
        version: snapshot.version,
        services: pick(&snapshot.services, &needed),
        virtual_services,
        destination_rules: pick(&snapshot.destination_rules, &needed),
        gateways: snapshot.gateways.clone(),
        sidecars: snapshot.sidecars.clone(),
        peer_authentications: snapshot.peer_authentications.clone(),
        request_authentications: snapshot.request_authentications.clone(),
        authorization_policies: snapshot.authorization_policies.clone(),
        quotas: snapshot.quotas.clone(),
        telemetries: snapshot.telemetries.clone(),
        mesh_config: snapshot.mesh_config.clone(),
        fetched_jwks: snapshot.fetched_jwks.clone(),
    }
}

/// Every host a virtual service's HTTP rules send or mirror traffic to.
fn referenced_hosts(vs: &VirtualService) -> impl Iterator<Item = String> + '_ {
    vs.http.iter().flat_map(|r| {
        let mirrors = r.mirrors.iter().map(|m| &m.destination);
        r.destinations.iter().chain(mirrors).map(|d| d.host.clone())
    })
}

fn pick<T: Clone>(map: &BTreeMap<String, T>, keys: &BTreeSet<String>) -> BTreeMap<String, T> {
    keys.iter()
        .filter_map(|k| map.get_key_value(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
