//! TCP proxies to the weighted destinations of VirtualService `tcp` and
//! `tls` rules, shared by gateways' TCP and TLS servers
//! ([`super::gateway`]) and captured sidecars' service listeners
//! ([`super::capture`]), and the SNI bookkeeping of their filter chains.

use std::collections::BTreeSet;

use weft_envoy_api::pb::envoy::config::listener::v3::{Filter, FilterChainMatch, filter};
use weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy,
    tcp_proxy::{ClusterSpecifier, WeightedCluster, weighted_cluster::ClusterWeight},
};
use weft_envoy_api::util::pack_any;

use super::outbound_cluster_name;
use super::telemetry::ListenerTelemetry;
use weft_model::{MeshSnapshot, RouteDestination};

/// SNI names already matched by an earlier filter chain of the listener:
/// Envoy refuses two chains with the same match, and the first server (or
/// rule) wins, as in Istio.
#[derive(Default)]
pub(super) struct SniClaims {
    names: BTreeSet<String>,
    catch_all: bool,
}

impl SniClaims {
    /// The names of `wanted` not yet claimed, claiming them; `Some(empty)`
    /// is the catch-all (no SNI condition), `None` nothing left.
    pub(super) fn claim(&mut self, wanted: Option<Vec<String>>) -> Option<Vec<String>> {
        match wanted {
            None if self.catch_all => None,
            None => {
                self.catch_all = true;
                Some(Vec::new())
            }
            Some(names) => {
                let fresh: Vec<String> = names
                    .into_iter()
                    .filter(|n| self.names.insert(n.clone()))
                    .collect();
                (!fresh.is_empty()).then_some(fresh)
            }
        }
    }
}

/// A filter chain match on `names`; none (any name) when empty.
pub(super) fn chain_match(names: Vec<String>) -> Option<FilterChainMatch> {
    (!names.is_empty()).then(|| FilterChainMatch {
        server_names: names,
        ..Default::default()
    })
}

/// The cluster of an L4 destination: its port, else the service's only
/// port (the config store rejects anything else).
fn l4_cluster(snapshot: &MeshSnapshot, d: &RouteDestination) -> Option<String> {
    let port = d
        .port
        .or_else(|| match snapshot.services.get(&d.host)?.ports.as_slice() {
            [only] => Some(only.number),
            _ => None,
        })?;
    Some(outbound_cluster_name(port, d.subset.as_deref(), &d.host))
}

/// A TCP proxy to `destinations` (weights summing to 100; one cluster
/// when one has weight), reporting through `telemetry`.
pub(super) fn weighted_tcp_proxy(
    snapshot: &MeshSnapshot,
    telemetry: &ListenerTelemetry<'_>,
    destinations: &[RouteDestination],
) -> Filter {
    let weighted: Vec<(String, u32)> = destinations
        .iter()
        .filter(|d| d.weight > 0)
        .filter_map(|d| Some((l4_cluster(snapshot, d)?, d.weight)))
        .collect();
    let (stat_prefix, specifier) = match weighted.as_slice() {
        [(cluster, _)] => (cluster.clone(), ClusterSpecifier::Cluster(cluster.clone())),
        _ => (
            "weighted".to_string(),
            ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters: weighted
                    .into_iter()
                    .map(|(name, weight)| ClusterWeight {
                        name,
                        weight,
                        ..Default::default()
                    })
                    .collect(),
            }),
        ),
    };
    let mut tcp = TcpProxy {
        stat_prefix,
        cluster_specifier: Some(specifier),
        ..Default::default()
    };
    telemetry.apply_to_tcp(&mut tcp);
    Filter {
        name: "envoy.filters.network.tcp_proxy".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(tcp))),
    }
}
