use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, VirtualHost, header_matcher::HeaderMatchSpecifier, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

use super::*;
use crate::model::MeshSnapshot;
use crate::testing::*;

fn router_view(namespace: &str) -> ProxyView {
    ProxyView {
        namespace: namespace.to_string(),
        router_address: Some(("127.0.0.1".to_string(), 15080)),
        ..Default::default()
    }
}

fn reviews(http: &str) -> MeshSnapshot {
    mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service("reviews", http),
    ]))
}

fn vhost<'a>(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    storage: &'a mut Vec<VirtualHost>,
    name: &str,
) -> &'a VirtualHost {
    let mut configs = build_route_configs(snapshot, view);
    assert_eq!(configs.len(), 1);
    *storage = configs.remove(0).virtual_hosts;
    storage.iter().find(|v| v.name == name).unwrap()
}

fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(Action::Route(a)) => a,
        other => panic!("not a route action: {other:?}"),
    }
}

const REVIEWS: &str = "reviews.default.svc.cluster.local:9080";

#[test]
fn clusters_are_named_like_istio_and_one_per_subset() {
    let snapshot = reviews("  - route: [{destination: {host: reviews}}]\n");
    let clusters = build_clusters(&snapshot, &ProxyView::default());
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ],
        "sorted by name, bytewise"
    );
    let eds = ClusterDiscoveryType::Type(DiscoveryType::Eds as i32);
    assert!(
        clusters
            .iter()
            .all(|c| c.cluster_discovery_type == Some(eds.clone()))
    );
    assert!(
        clusters
            .iter()
            .all(|c| c.lb_policy == LbPolicy::LeastRequest as i32),
        "Istio's default"
    );
}

#[test]
fn load_balancers_and_dns_and_grpc_clusters() {
    let snapshot = mk_snapshot(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 8443, name: grpc, protocol: GRPC}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext}
spec:
  host: api.example.com
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
",
    );
    let clusters = build_clusters(&snapshot, &ProxyView::default());
    let c = &clusters[0];
    assert_eq!(c.name, "outbound|8443||api.example.com");
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin as i32);
    assert_eq!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
    );
    let endpoint = &c.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0];
    let Some(HostIdentifier::Endpoint(e)) = &endpoint.host_identifier else {
        panic!()
    };
    let Some(address::Address::SocketAddress(sa)) = &e.address.as_ref().unwrap().address else {
        panic!()
    };
    assert_eq!(sa.address, "api.example.com");
    assert!(
        c.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
    assert!(
        build_load_assignments(&snapshot, &ProxyView::default()).is_empty(),
        "DNS clusters carry their endpoints"
    );
}

#[test]
fn subset_endpoints_are_selected_by_labels_and_ports_by_name() {
    let snapshot = mk_snapshot(&docs(&[
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, ports: {http: 8080}, labels: {version: v2}, weight: 3}
"
        .to_string(),
        mk_destination_rule("reviews", &["v1", "v2"]),
    ]));
    let assignments = build_load_assignments(&snapshot, &ProxyView::default());
    let endpoints = |cluster: &str| -> Vec<(String, u32, Option<u32>)> {
        let cla = assignments
            .iter()
            .find(|a| a.cluster_name == cluster)
            .unwrap();
        cla.endpoints[0]
            .lb_endpoints
            .iter()
            .map(|e| {
                let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else { panic!() };
                let Some(address::Address::SocketAddress(sa)) = &ep.address.as_ref().unwrap().address else { panic!() };
                let Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else { panic!() };
                (sa.address.clone(), port, e.load_balancing_weight.as_ref().map(|w| w.value))
            })
            .collect()
    };
    assert_eq!(
        endpoints("outbound|9080||reviews.default.svc.cluster.local").len(),
        2
    );
    assert_eq!(
        endpoints("outbound|9080|v1|reviews.default.svc.cluster.local"),
        [("10.0.0.1".to_string(), 9080, None)]
    );
    assert_eq!(
        endpoints("outbound|9080|v2|reviews.default.svc.cluster.local"),
        [("10.0.0.2".to_string(), 8080, Some(3))]
    );
}

#[test]
fn virtual_hosts_answer_to_every_name_of_a_service() {
    let snapshot = reviews("  - route: [{destination: {host: reviews}}]\n");
    let mut storage = Vec::new();
    let vh = vhost(&snapshot, &router_view("default"), &mut storage, REVIEWS);
    let mut domains = vh.domains.clone();
    domains.sort();
    assert_eq!(
        domains,
        [
            "reviews",
            "reviews.default",
            "reviews.default.svc",
            "reviews.default.svc.cluster.local",
            "reviews.default.svc.cluster.local:9080",
            "reviews.default.svc:9080",
            "reviews.default:9080",
            "reviews:9080",
        ]
    );
    let vh = vhost(&snapshot, &router_view("prod"), &mut storage, REVIEWS);
    assert!(
        !vh.domains.iter().any(|d| d == "reviews"),
        "short names only resolve in the proxy's namespace"
    );
}

#[test]
fn no_router_no_listener_no_routes() {
    let snapshot = reviews("  - route: [{destination: {host: reviews}}]\n");
    assert!(build_listeners(&snapshot, &ProxyView::default()).is_empty());
    assert!(build_route_configs(&snapshot, &ProxyView::default()).is_empty());
    let listeners = build_listeners(&snapshot, &router_view("default"));
    assert_eq!(listeners[0].name, ROUTER_LISTENER);
}

#[test]
fn matches_become_envoy_matchers_one_route_per_match() {
    let snapshot = reviews(
        "  - match:
    - uri: {exact: /exact}
      method: {exact: POST}
    - uri: {regex: '/r[0-9]+'}
      headers: {end-user: {prefix: ja}, x-present: {prefix: ''}}
      ignoreUriCase: true
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
",
    );
    let mut storage = Vec::new();
    let vh = vhost(&snapshot, &router_view("default"), &mut storage, REVIEWS);
    assert_eq!(
        vh.routes.len(),
        3,
        "two matches, then the catch-all rule; no default added"
    );
    let first = vh.routes[0].r#match.as_ref().unwrap();
    assert_eq!(
        first.path_specifier,
        Some(PathSpecifier::Path("/exact".into()))
    );
    assert_eq!(first.headers[0].name, ":method");
    let second = vh.routes[1].r#match.as_ref().unwrap();
    assert!(
        matches!(&second.path_specifier, Some(PathSpecifier::SafeRegex(r)) if r.regex == "/r[0-9]+")
    );
    assert_eq!(second.case_sensitive.as_ref().map(|b| b.value), Some(false));
    assert!(matches!(
        &second.headers[0].header_match_specifier,
        Some(HeaderMatchSpecifier::StringMatch(m)) if m.match_pattern == Some(MatchPattern::Prefix("ja".into()))
    ));
    assert_eq!(
        second.headers[1].header_match_specifier,
        Some(HeaderMatchSpecifier::PresentMatch(true))
    );
    assert_eq!(
        action(&vh.routes[0]).cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|9080|v2|reviews.default.svc.cluster.local".into()
        ))
    );
}

#[test]
fn weights_become_weighted_clusters() {
    let snapshot = reviews(
        "  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
",
    );
    let mut storage = Vec::new();
    let vh = vhost(&snapshot, &router_view("default"), &mut storage, REVIEWS);
    let Some(ClusterSpecifier::WeightedClusters(w)) = &action(&vh.routes[0]).cluster_specifier
    else {
        panic!("weighted clusters expected")
    };
    let split: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.as_ref().unwrap().value))
        .collect();
    assert_eq!(
        split,
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 80),
            ("outbound|9080|v2|reviews.default.svc.cluster.local", 20)
        ]
    );
}

#[test]
fn timeouts_and_retries_follow_istio_defaults() {
    let snapshot = reviews(
        "  - match: [{uri: {prefix: /none}}]
    route: [{destination: {host: reviews}}]
    retries: {attempts: 0}
  - match: [{uri: {prefix: /codes}}]
    route: [{destination: {host: reviews}}]
    timeout: 0.5s
    retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 'gateway-error,503'}
  - route: [{destination: {host: reviews}}]
",
    );
    let mut storage = Vec::new();
    let vh = vhost(&snapshot, &router_view("default"), &mut storage, REVIEWS);
    let none = action(&vh.routes[0]);
    assert_eq!(none.retry_policy, None);
    assert_eq!(
        none.timeout.as_ref().map(|t| (t.seconds, t.nanos)),
        Some((0, 0)),
        "Istio disables the timeout"
    );
    let codes = action(&vh.routes[1]);
    let retry = codes.retry_policy.as_ref().unwrap();
    assert_eq!(retry.retry_on, "gateway-error,retriable-status-codes");
    assert_eq!(retry.retriable_status_codes, [503]);
    assert_eq!(retry.num_retries.as_ref().unwrap().value, 2);
    assert_eq!(
        retry.per_try_timeout.as_ref().map(|t| t.nanos),
        Some(100_000_000)
    );
    assert_eq!(codes.timeout.as_ref().map(|t| t.nanos), Some(500_000_000));
    let default = action(&vh.routes[2]).retry_policy.as_ref().unwrap();
    assert_eq!(
        default.retry_on,
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    assert_eq!(default.num_retries.as_ref().unwrap().value, 2);
}

#[test]
fn services_without_rules_get_a_default_route() {
    let snapshot = mk_snapshot(&mk_service_entry("ratings", &["v1"]));
    let mut storage = Vec::new();
    let vh = vhost(
        &snapshot,
        &router_view("default"),
        &mut storage,
        "ratings.default.svc.cluster.local:9080",
    );
    assert_eq!(vh.routes.len(), 1);
    assert_eq!(
        action(&vh.routes[0]).cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|9080||ratings.default.svc.cluster.local".into()
        ))
    );
}

#[test]
fn rules_bound_only_to_gateways_do_not_reach_sidecars() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_destination_rule("reviews", &["v1"]),
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: [reviews]
  gateways: [ingress]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
"
        .to_string(),
    ]));
    let mut storage = Vec::new();
    let vh = vhost(&snapshot, &router_view("default"), &mut storage, REVIEWS);
    assert_eq!(vh.routes.len(), 1);
    assert_eq!(vh.routes[0].name, "default");
}

#[test]
fn translation_is_deterministic() {
    let snapshot = reviews("  - route: [{destination: {host: reviews, subset: v1}}]\n");
    let view = router_view("default");
    assert_eq!(
        build_clusters(&snapshot, &view),
        build_clusters(&snapshot, &view)
    );
    assert_eq!(
        build_route_configs(&snapshot, &view),
        build_route_configs(&snapshot, &view)
    );
}
