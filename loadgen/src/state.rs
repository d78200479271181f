//! A simulated Envoy's view of what it accepted: per xDS type the current
//! resources (name -> decoded message, or raw bytes for types it does not
//! know) and version, plus a timestamped history of accepted updates. Also
//! the pure functions that derive the follow-up subscriptions from it (the
//! EDS names CDS references, the RDS names LDS references), as Envoy does.
//! No I/O here: the stream loops in [`crate::client`] feed it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster, cluster::ClusterDiscoveryType, cluster::DiscoveryType,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

/// `type.googleapis.com/envoy.config.cluster.v3.Cluster`.
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// `type.googleapis.com/envoy.config.listener.v3.Listener`.
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment`.
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// `type.googleapis.com/envoy.config.route.v3.RouteConfiguration`.
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// One resource as the client holds it. The decoded messages sit behind
/// `Arc`s: clients that received the same bytes share one copy (see
/// [`crate::intern`]), and cloning a `Resource` is cheap.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Cluster(Arc<Cluster>),
    Listener(Arc<Listener>),
    Route(Arc<RouteConfiguration>),
    Endpoint(Arc<ClusterLoadAssignment>),
    /// A type the client does not decode: kept as sent (boxed, so that a
    /// `Resource` is two words: a client holds thousands).
    Raw(Box<Any>),
}

impl Resource {
    /// Whether resources of `type_url` are decoded (not kept [`Resource::Raw`]).
    pub fn decodes(type_url: &str) -> bool {
        matches!(
            type_url,
            CLUSTER_TYPE | LISTENER_TYPE | ROUTE_TYPE | ENDPOINT_TYPE
        )
    }

    /// The type URL of this resource (a raw one's own).
    pub fn type_url(&self) -> &str {
        match self {
            Self::Cluster(_) => CLUSTER_TYPE,
            Self::Listener(_) => LISTENER_TYPE,
            Self::Route(_) => ROUTE_TYPE,
            Self::Endpoint(_) => ENDPOINT_TYPE,
            Self::Raw(any) => &any.type_url,
        }
    }

    /// How many holders share this decoded resource (1 for raw ones).
    pub fn holders(&self) -> usize {
        match self {
            Self::Cluster(c) => Arc::strong_count(c),
            Self::Listener(l) => Arc::strong_count(l),
            Self::Route(r) => Arc::strong_count(r),
            Self::Endpoint(e) => Arc::strong_count(e),
            Self::Raw(_) => 1,
        }
    }
}

/// A resource that cannot be decoded (the client NACKs the response).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("resource of type {got} in a response for {expected}: the server mixed types")]
    WrongType { expected: String, got: String },
    #[error(
        "cannot decode a {type_url}: {source}; the server sent bytes that are not that message"
    )]
    Bytes {
        type_url: String,
        source: prost::DecodeError,
    },
}

impl DecodeError {
    /// A short label for metrics and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WrongType { .. } => "wrong_type",
            Self::Bytes { .. } => "bytes",
        }
    }
}

/// Decodes `any`, which must be of `type_url` (the response's type).
pub fn decode(type_url: &str, any: &Any) -> Result<Resource, DecodeError> {
    if any.type_url != type_url {
        return Err(DecodeError::WrongType {
            expected: type_url.to_string(),
            got: any.type_url.clone(),
        });
    }
    let bytes = |source| DecodeError::Bytes {
        type_url: type_url.to_string(),
        source,
    };
    Ok(match type_url {
        CLUSTER_TYPE => Resource::Cluster(Arc::new(
            Cluster::decode(any.value.as_slice()).map_err(bytes)?,
        )),
        LISTENER_TYPE => Resource::Listener(Arc::new(
            Listener::decode(any.value.as_slice()).map_err(bytes)?,
        )),
        ROUTE_TYPE => Resource::Route(Arc::new(
            RouteConfiguration::decode(any.value.as_slice()).map_err(bytes)?,
        )),
        ENDPOINT_TYPE => Resource::Endpoint(Arc::new(
            ClusterLoadAssignment::decode(any.value.as_slice()).map_err(bytes)?,
        )),
        _ => Resource::Raw(Box::new(any.clone())),
    })
}

/// The name a decoded resource carries (raw ones have none).
pub fn resource_name(resource: &Resource) -> Option<&str> {
    match resource {
        Resource::Cluster(c) => Some(&c.name),
        Resource::Listener(l) => Some(&l.name),
        Resource::Route(r) => Some(&r.name),
        Resource::Endpoint(e) => Some(&e.cluster_name),
        Resource::Raw(_) => None,
    }
}

/// The accepted resources of one type.
#[derive(Debug, Clone, Default)]
pub struct TypeState {
    /// The version of the last accepted response (SotW `version_info`;
    /// delta `system_version_info`, or the nonce when the server sends none).
    pub version: String,
    pub resources: BTreeMap<String, Resource>,
    /// Whether at least one response of this type was accepted.
    pub received: bool,
}

/// One accepted (ACKed) update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub at: Instant,
    pub type_url: String,
    pub version: String,
    /// Resources added or updated by the update.
    pub updated: usize,
    /// Resources removed by it.
    pub removed: usize,
}

/// Everything one client accepted.
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    pub types: BTreeMap<String, TypeState>,
    pub history: Vec<Accepted>,
    /// Per listener name: the listener last seen and the RDS names its
    /// HTTP connection managers reference (decoding those is the costly
    /// part of following LDS, so it is done once per new listener).
    rds_by_listener: BTreeMap<String, (Arc<Listener>, Vec<String>)>,
}

impl ClientState {
    /// The accepted resources of `type_url` (empty if none).
    pub fn resources(&self, type_url: &str) -> impl Iterator<Item = (&String, &Resource)> {
        self.types
            .get(type_url)
            .into_iter()
            .flat_map(|t| t.resources.iter())
    }

    /// The clusters, by name.
    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.resources(CLUSTER_TYPE).filter_map(|(_, r)| match r {
            Resource::Cluster(c) => Some(c.as_ref()),
            _ => None,
        })
    }

    /// The listeners, by name.
    pub fn listeners(&self) -> impl Iterator<Item = &Listener> {
        self.resources(LISTENER_TYPE).filter_map(|(_, r)| match r {
            Resource::Listener(l) => Some(l.as_ref()),
            _ => None,
        })
    }

    /// The route configurations, by name.
    pub fn routes(&self) -> impl Iterator<Item = &RouteConfiguration> {
        self.resources(ROUTE_TYPE).filter_map(|(_, r)| match r {
            Resource::Route(r) => Some(r.as_ref()),
            _ => None,
        })
    }

    /// The load assignments, by cluster name.
    pub fn endpoints(&self) -> impl Iterator<Item = &ClusterLoadAssignment> {
        self.resources(ENDPOINT_TYPE).filter_map(|(_, r)| match r {
            Resource::Endpoint(e) => Some(e.as_ref()),
            _ => None,
        })
    }

    /// Applies a state-of-the-world response. CDS and LDS responses hold
    /// every resource: what they leave out is removed. EDS and RDS
    /// responses may hold only what changed (istiod sends just the updated
    /// load assignments): Envoy keeps the others while it is subscribed to
    /// them, and so does this ([`ClientState::retain`] drops what is no
    /// longer subscribed).
    pub fn replace(
        &mut self,
        at: Instant,
        type_url: &str,
        version: &str,
        resources: BTreeMap<String, Resource>,
    ) {
        let entry = self.types.entry(type_url.to_string()).or_default();
        let updated = resources.len();
        let removed = if type_url == CLUSTER_TYPE || type_url == LISTENER_TYPE {
            let removed = entry
                .resources
                .keys()
                .filter(|k| !resources.contains_key(*k))
                .count();
            entry.resources = resources;
            removed
        } else {
            entry.resources.extend(resources);
            0
        };
        entry.version = version.to_string();
        entry.received = true;
        if type_url == LISTENER_TYPE {
            self.refresh_rds();
        }
        self.history.push(Accepted {
            at,
            type_url: type_url.to_string(),
            version: version.to_string(),
            updated,
            removed,
        });
    }

    /// Drops the resources of `type_url` not in `names` (the client
    /// unsubscribed from them).
    pub fn retain(&mut self, type_url: &str, names: &BTreeSet<String>) {
        if let Some(entry) = self.types.get_mut(type_url) {
            entry.resources.retain(|name, _| names.contains(name));
        }
    }

    /// Adds, updates and removes resources of `type_url` (a delta update).
    pub fn apply_delta(
        &mut self,
        at: Instant,
        type_url: &str,
        version: &str,
        updated: BTreeMap<String, Resource>,
        removed: &[String],
    ) {
        let entry = self.types.entry(type_url.to_string()).or_default();
        let (n_updated, mut n_removed) = (updated.len(), 0);
        entry.resources.extend(updated);
        for name in removed {
            n_removed += usize::from(entry.resources.remove(name).is_some());
        }
        entry.version = version.to_string();
        entry.received = true;
        if type_url == LISTENER_TYPE {
            self.refresh_rds();
        }
        self.history.push(Accepted {
            at,
            type_url: type_url.to_string(),
            version: version.to_string(),
            updated: n_updated,
            removed: n_removed,
        });
    }

    /// Whether the client holds CDS and LDS and every EDS / RDS name they
    /// reference (Envoy's "initialized").
    pub fn synced(&self) -> bool {
        let received = |t: &str| self.types.get(t).is_some_and(|s| s.received);
        if !received(CLUSTER_TYPE) || !received(LISTENER_TYPE) {
            return false;
        }
        // Checked name by name, stopping at the first one missing, the few
        // RDS names before the thousands of EDS ones: this runs after every
        // ACK until the client is synced.
        let (endpoints, routes) = (self.types.get(ENDPOINT_TYPE), self.types.get(ROUTE_TYPE));
        let held =
            |t: Option<&TypeState>, name: &str| t.is_some_and(|s| s.resources.contains_key(name));
        self.rds_by_listener
            .values()
            .flat_map(|(_, names)| names)
            .all(|n| held(routes, n))
            && self
                .clusters()
                .filter_map(eds_name)
                .all(|n| held(endpoints, n))
    }

    /// The EDS names the accepted clusters reference ([`eds_names`],
    /// borrowed: nothing is copied).
    pub fn eds_wanted(&self) -> BTreeSet<&str> {
        self.clusters().filter_map(eds_name).collect()
    }

    /// The RDS names the accepted listeners reference ([`rds_names`],
    /// from a cache refreshed when LDS changes).
    pub fn rds_wanted(&self) -> BTreeSet<&str> {
        self.rds_by_listener
            .values()
            .flat_map(|(_, names)| names.iter().map(String::as_str))
            .collect()
    }

    /// The names `type_url`'s follow-up subscription wants: EDS names
    /// after CDS, RDS names after LDS; `None` for other types.
    pub fn follow_up(&self, type_url: &str) -> Option<(&'static str, BTreeSet<&str>)> {
        match type_url {
            CLUSTER_TYPE => Some((ENDPOINT_TYPE, self.eds_wanted())),
            LISTENER_TYPE => Some((ROUTE_TYPE, self.rds_wanted())),
            _ => None,
        }
    }

    /// Re-derives the RDS names of listeners that are new or changed
    /// (a different `Arc`: interned listeners with the same bytes are
    /// the same `Arc`) and forgets removed ones.
    fn refresh_rds(&mut self) {
        let mut old = std::mem::take(&mut self.rds_by_listener);
        let listeners = self
            .types
            .get(LISTENER_TYPE)
            .into_iter()
            .flat_map(|t| t.resources.iter());
        for (name, resource) in listeners {
            let Resource::Listener(listener) = resource else {
                continue;
            };
            let cached = old
                .remove(name)
                .filter(|(seen, _)| Arc::ptr_eq(seen, listener));
            let entry = cached.unwrap_or_else(|| {
                let names = rds_names(std::iter::once(listener.as_ref()));
                (Arc::clone(listener), names.into_iter().collect())
            });
            self.rds_by_listener.insert(name.clone(), entry);
        }
    }

    /// How many resources the client holds of each type.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.types
            .iter()
            .map(|(t, s)| (t.clone(), s.resources.len()))
            .collect()
    }
}

/// The EDS names Envoy subscribes to for `clusters`: for each cluster of
/// type EDS its `eds_cluster_config.service_name`, or its name.
pub fn eds_names<'a>(clusters: impl Iterator<Item = &'a Cluster>) -> BTreeSet<String> {
    clusters.filter_map(eds_name).map(str::to_string).collect()
}

/// The EDS name Envoy subscribes to for `cluster`, if it is of type EDS.
pub fn eds_name(cluster: &Cluster) -> Option<&str> {
    if cluster.cluster_discovery_type != Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
    {
        return None;
    }
    Some(
        cluster
            .eds_cluster_config
            .as_ref()
            .map(|e| e.service_name.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or(&cluster.name),
    )
}

/// The RDS names Envoy subscribes to for `listeners`: the route config
/// names of every HTTP connection manager using RDS, in any filter chain
/// (including the default one).
pub fn rds_names<'a>(listeners: impl Iterator<Item = &'a Listener>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for listener in listeners {
        let chains = listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.iter());
        for filter in chains.flat_map(|c| c.filters.iter()) {
            let Some(filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
                continue;
            };
            if any.type_url != HttpConnectionManager::type_url() {
                continue;
            }
            let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
                continue;
            };
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                names.insert(rds.route_config_name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig;
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain};
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::Rds;
    use envoy_types::util::pack_any;

    fn mk_cluster(name: &str, eds_service: Option<&str>, kind: DiscoveryType) -> Cluster {
        Cluster {
            name: name.to_string(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
            eds_cluster_config: eds_service.map(|s| EdsClusterConfig {
                service_name: s.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn mk_hcm_filter(route: &str) -> Filter {
        let hcm = HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: route.to_string(),
                ..Default::default()
            })),
            ..Default::default()
        };
        Filter {
            name: "envoy.filters.network.http_connection_manager".to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
        }
    }

    #[test]
    fn eds_names_are_service_names_or_cluster_names_of_eds_clusters_only() {
        let clusters = [
            mk_cluster("a", Some("svc-a"), DiscoveryType::Eds),
            mk_cluster("b", None, DiscoveryType::Eds),
            mk_cluster("c", Some(""), DiscoveryType::Eds),
            mk_cluster("d", None, DiscoveryType::StrictDns),
        ];
        let names: Vec<_> = eds_names(clusters.iter()).into_iter().collect();
        assert_eq!(names, ["b", "c", "svc-a"]);
    }

    fn mk_listener(name: &str, routes: &[&str]) -> (String, Resource) {
        let listener = Listener {
            name: name.to_string(),
            filter_chains: routes
                .iter()
                .map(|r| FilterChain {
                    filters: vec![mk_hcm_filter(r)],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        (name.to_string(), Resource::Listener(Arc::new(listener)))
    }

    #[test]
    fn follow_ups_track_listener_and_cluster_changes() {
        let now = Instant::now();
        let mut state = ClientState::default();
        assert_eq!(state.follow_up(ENDPOINT_TYPE), None);
        let (a, b) = (
            mk_listener("a", &["r1", "r2"]),
            mk_listener("b", &["r2", "r3"]),
        );
        state.replace(now, LISTENER_TYPE, "1", BTreeMap::from([a.clone(), b]));
        let want = |s: &ClientState, t| {
            s.follow_up(t)
                .map(|(ft, n)| (ft, n.into_iter().map(str::to_string).collect::<Vec<_>>()))
        };
        assert_eq!(
            want(&state, LISTENER_TYPE),
            Some((ROUTE_TYPE, vec!["r1".into(), "r2".into(), "r3".into()]))
        );
        // b changes (a new Arc), a stays (the same Arc, its names cached).
        let b2 = mk_listener("b", &["r4"]);
        state.apply_delta(now, LISTENER_TYPE, "2", BTreeMap::from([b2]), &[]);
        assert_eq!(
            want(&state, LISTENER_TYPE),
            Some((ROUTE_TYPE, vec!["r1".into(), "r2".into(), "r4".into()]))
        );
        state.apply_delta(now, LISTENER_TYPE, "3", BTreeMap::new(), &["a".to_string()]);
        assert_eq!(
            want(&state, LISTENER_TYPE),
            Some((ROUTE_TYPE, vec!["r4".into()]))
        );
        let cluster = mk_cluster("c", Some("svc-c"), DiscoveryType::Eds);
        state.replace(
            now,
            CLUSTER_TYPE,
            "1",
            BTreeMap::from([("c".to_string(), Resource::Cluster(Arc::new(cluster)))]),
        );
        assert_eq!(
            want(&state, CLUSTER_TYPE),
            Some((ENDPOINT_TYPE, vec!["svc-c".into()]))
        );
        assert_eq!(want(&state, ROUTE_TYPE), None);
    }

    #[test]
    fn rds_names_come_from_every_filter_chain_and_the_default_one() {
        let listener = Listener {
            name: "l".to_string(),
            filter_chains: vec![
                FilterChain {
                    filters: vec![mk_hcm_filter("9080")],
                    ..Default::default()
                },
                FilterChain {
                    filters: vec![mk_hcm_filter("router")],
                    ..Default::default()
                },
            ],
            default_filter_chain: Some(FilterChain {
                filters: vec![mk_hcm_filter("default")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let names: Vec<_> = rds_names(std::iter::once(&listener)).into_iter().collect();
        assert_eq!(names, ["9080", "default", "router"]);
    }

    #[test]
    fn a_resource_is_two_words() {
        assert_eq!(
            std::mem::size_of::<Resource>(),
            2 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn decode_rejects_garbage_and_mixed_types() {
        let garbage = Any {
            type_url: CLUSTER_TYPE.to_string(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert_eq!(decode(CLUSTER_TYPE, &garbage).unwrap_err().kind(), "bytes");
        let listener = pack_any(Listener::default());
        assert_eq!(
            decode(CLUSTER_TYPE, &listener).unwrap_err().kind(),
            "wrong_type"
        );
        assert!(matches!(
            decode(LISTENER_TYPE, &listener).unwrap(),
            Resource::Listener(_)
        ));
    }

    #[test]
    fn synced_needs_cds_lds_and_every_referenced_name() {
        let now = Instant::now();
        let mut state = ClientState::default();
        let cluster = mk_cluster("a", None, DiscoveryType::Eds);
        state.replace(
            now,
            CLUSTER_TYPE,
            "1",
            BTreeMap::from([("a".to_string(), Resource::Cluster(Arc::new(cluster)))]),
        );
        assert!(!state.synced());
        state.replace(now, LISTENER_TYPE, "1", BTreeMap::new());
        assert!(!state.synced(), "EDS for cluster a is still missing");
        state.apply_delta(
            now,
            ENDPOINT_TYPE,
            "1",
            BTreeMap::from([(
                "a".to_string(),
                Resource::Endpoint(Arc::new(ClusterLoadAssignment {
                    cluster_name: "a".to_string(),
                    ..Default::default()
                })),
            )]),
            &[],
        );
        assert!(state.synced());
        assert_eq!(state.history.len(), 3);
        state.apply_delta(now, ENDPOINT_TYPE, "2", BTreeMap::new(), &["a".to_string()]);
        assert!(!state.synced());
        assert_eq!(state.history.last().map(|h| h.removed), Some(1));
    }

    #[test]
    fn sotw_cds_replaces_while_eds_keeps_what_a_response_leaves_out() {
        let now = Instant::now();
        let mut state = ClientState::default();
        let cla = |name: &str| {
            let assignment = ClusterLoadAssignment {
                cluster_name: name.to_string(),
                ..Default::default()
            };
            BTreeMap::from([(name.to_string(), Resource::Endpoint(Arc::new(assignment)))])
        };
        let cluster = |name: &str| {
            let cluster = mk_cluster(name, None, DiscoveryType::Eds);
            BTreeMap::from([(name.to_string(), Resource::Cluster(Arc::new(cluster)))])
        };
        state.replace(now, ENDPOINT_TYPE, "1", cla("a"));
        state.replace(now, ENDPOINT_TYPE, "2", cla("b"));
        assert_eq!(state.counts().get(ENDPOINT_TYPE), Some(&2));
        state.replace(now, CLUSTER_TYPE, "1", cluster("a"));
        state.replace(now, CLUSTER_TYPE, "2", cluster("b"));
        assert_eq!(state.counts().get(CLUSTER_TYPE), Some(&1));
        state.retain(ENDPOINT_TYPE, &BTreeSet::from(["b".to_string()]));
        assert_eq!(
            state
                .resources(ENDPOINT_TYPE)
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
    }
}
