//! `consistent()`: every name one resource references exists among the
//! resources a proxy is sent, so Envoy never waits for or routes to
//! something that is not there. Run by tests on every generated config.

use std::collections::BTreeSet;

use prost::{Message, Name};
use weft_envoy_api::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType,
};
use weft_envoy_api::pb::envoy::config::listener::v3::{Listener, filter};
use weft_envoy_api::pb::envoy::config::route::v3::{
    RouteConfiguration, route::Action, route_action::ClusterSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier as TcpClusterSpecifier,
};
use weft_envoy_api::pb::google::protobuf::Any;

use super::{
    ProxyView, build_clusters, build_listeners, build_load_assignments, build_route_configs,
};
use weft_model::MeshSnapshot;

/// What is inconsistent in the config of `view`; empty when all is well.
pub fn check_consistency(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<String> {
    let clusters = build_clusters(snapshot, view);
    let assignments = build_load_assignments(snapshot, view);
    let listeners = build_listeners(snapshot, view);
    let routes = build_route_configs(snapshot, view);

    let mut problems = Vec::new();
    let cluster_names: BTreeSet<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    let assignment_names: BTreeSet<&str> = assignments
        .iter()
        .map(|a| a.cluster_name.as_str())
        .collect();
    let route_names: BTreeSet<&str> = routes.iter().map(|r| r.name.as_str()).collect();

    let eds = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
    for cluster in clusters.iter().filter(|c| c.cluster_discovery_type == eds) {
        let service_name = cluster
            .eds_cluster_config
            .as_ref()
            .map(|e| e.service_name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(&cluster.name);
        if !assignment_names.contains(service_name) {
            problems.push(format!(
                "EDS cluster {} has no load assignment {service_name}",
                cluster.name
            ));
        }
    }
    for name in &assignment_names {
        if !cluster_names.contains(name) {
            problems.push(format!("load assignment {name} belongs to no cluster"));
        }
    }
    let mut cluster_refs = Vec::new();
    for listener in &listeners {
        listener_references(listener, &route_names, &mut cluster_refs, &mut problems);
    }
    for route_config in &routes {
        route_references(route_config, &mut cluster_refs);
    }
    for (owner, cluster) in cluster_refs {
        if !cluster_names.contains(cluster.as_str()) {
            problems.push(format!(
                "{owner} references cluster {cluster}, which does not exist"
            ));
        }
    }
    problems
}

fn decode<T: Message + Name + Default>(any: &Any) -> Option<T> {
    (any.type_url == T::type_url())
        .then(|| T::decode(any.value.as_slice()).ok())
        .flatten()
}

fn listener_references(
    listener: &Listener,
    route_names: &BTreeSet<&str>,
    clusters: &mut Vec<(String, String)>,
    problems: &mut Vec<String>,
) {
    let chains = listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.iter());
    for filter in chains.flat_map(|c| &c.filters) {
        let Some(filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
            continue;
        };
        if let Some(hcm) = decode::<HttpConnectionManager>(any) {
            match &hcm.route_specifier {
                Some(RouteSpecifier::Rds(rds))
                    if !route_names.contains(rds.route_config_name.as_str()) =>
                {
                    problems.push(format!(
                        "listener {} names route configuration {}, which does not exist",
                        listener.name, rds.route_config_name
                    ));
                }
                Some(RouteSpecifier::RouteConfig(inline)) => route_references(inline, clusters),
                _ => {}
            }
        }
        if let Some(tcp) = decode::<TcpProxy>(any) {
            let owner = format!("listener {}", listener.name);
            match &tcp.cluster_specifier {
                Some(TcpClusterSpecifier::Cluster(c)) => clusters.push((owner, c.clone())),
                Some(TcpClusterSpecifier::WeightedClusters(w)) => {
                    clusters.extend(w.clusters.iter().map(|c| (owner.clone(), c.name.clone())))
                }
                None => {}
            }
        }
    }
}

fn route_references(config: &RouteConfiguration, clusters: &mut Vec<(String, String)>) {
    for vhost in &config.virtual_hosts {
        for route in &vhost.routes {
            let Some(Action::Route(action)) = &route.action else {
                continue;
            };
            let owner = format!("route {}/{}/{}", config.name, vhost.name, route.name);
            match &action.cluster_specifier {
                Some(ClusterSpecifier::Cluster(c)) => clusters.push((owner.clone(), c.clone())),
                Some(ClusterSpecifier::WeightedClusters(w)) => {
                    clusters.extend(w.clusters.iter().map(|c| (owner.clone(), c.name.clone())))
                }
                _ => {}
            }
            for mirror in &action.request_mirror_policies {
                clusters.push((owner.clone(), mirror.cluster.clone()));
            }
        }
    }
}
