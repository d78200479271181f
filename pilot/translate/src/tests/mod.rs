use weft_envoy_api::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use weft_envoy_api::pb::envoy::config::core::v3::address;
use weft_envoy_api::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use weft_envoy_api::pb::envoy::config::route::v3::{
    Route, RouteAction, VirtualHost, header_matcher::HeaderMatchSpecifier, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier,
};
use weft_envoy_api::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

use super::*;
use weft_config::testing::*;
use weft_model::MeshSnapshot;

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
                let Some(weft_envoy_api::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else { panic!() };
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
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
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

fn hashed_reviews(dr_extra: &str) -> MeshSnapshot {
    mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
{dr_extra}  trafficPolicy:
    loadBalancer: {{consistentHash: {{httpCookie: {{name: user, ttl: 10s}}, maglev: {{tableSize: 65537}}}}}}
    tls: {{mode: SIMPLE, caCertificates: /ca.pem, subjectAltNames: [reviews.example]}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
"
        ),
        mk_virtual_service(
            "reviews",
            "  - route: [{destination: {host: reviews, subset: v1}}]\n",
        ),
    ]))
}

#[test]
fn consistent_hash_sets_cluster_balancer_route_hash_and_tls() {
    let snapshot = hashed_reviews("");
    let clusters = build_clusters(&snapshot, &router_view("default"));
    let v1 = clusters
        .iter()
        .find(|c| c.name == "outbound|9080|v1|reviews.default.svc.cluster.local")
        .unwrap();
    assert_eq!(v1.lb_policy, LbPolicy::Maglev as i32);
    let socket = v1.transport_socket.as_ref().unwrap();
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    // Explicit SANs: Envoy sets SNI from Host but does not auto-validate.
    assert!(
        v1.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
    let routes = build_route_configs(&snapshot, &router_view("default"));
    let Some(Action::Route(action)) = &routes[0].virtual_hosts[0].routes[0].action else {
        panic!("a route action");
    };
    assert_eq!(action.hash_policy.len(), 1, "{action:#?}");
}

#[test]
fn destination_rules_apply_only_where_exported_and_selected() {
    let snapshot =
        hashed_reviews("  exportTo: ['.']\n  workloadSelector: {matchLabels: {app: front}}\n");
    let subset_cluster = |view: &ProxyView| {
        build_clusters(&snapshot, view)
            .iter()
            .any(|c| c.name == "outbound|9080|v1|reviews.default.svc.cluster.local")
    };
    let mut front = router_view("default");
    front.labels.insert("app".into(), "front".into());
    assert!(subset_cluster(&front));
    assert!(!subset_cluster(&router_view("default")), "not selected");
    let mut other_ns = front.clone();
    other_ns.namespace = "other".into();
    assert!(!subset_cluster(&other_ns), "not exported");
}

#[test]
fn workload_selectors_do_not_cross_namespaces() {
    let snapshot = hashed_reviews("  workloadSelector: {matchLabels: {app: front}}\n");
    let mut front = router_view("other");
    front.labels.insert("app".into(), "front".into());
    assert!(
        !build_clusters(&snapshot, &front)
            .iter()
            .any(|c| c.name == "outbound|9080|v1|reviews.default.svc.cluster.local"),
        "a selector in default does not select proxies in other"
    );
}

#[test]
fn each_hash_key_becomes_its_route_hash_policy() {
    use weft_envoy_api::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
    let policy_for = |hash: &str| {
        let snapshot = mk_snapshot(&docs(&[
            mk_service_entry("reviews", &["v1"]),
            format!(
                "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  trafficPolicy: {{loadBalancer: {{consistentHash: {hash}}}}}
"
            ),
        ]));
        let destination = weft_model::RouteDestination {
            host: "reviews.default.svc.cluster.local".into(),
            subset: None,
            port: None,
            weight: 100,
            headers: Default::default(),
        };
        let mut policies = hash_policy::build_hash_policies(&snapshot, &destination);
        assert_eq!(policies.len(), 1, "{hash}");
        policies.remove(0).policy_specifier.unwrap()
    };
    assert!(matches!(
        policy_for("{httpHeaderName: X-User}"),
        PolicySpecifier::Header(h) if h.header_name == "x-user"
    ));
    assert!(matches!(
        policy_for("{httpCookie: {name: s, path: /a, ttl: 0s}}"),
        PolicySpecifier::Cookie(c) if c.name == "s" && c.path == "/a" && c.ttl.is_some()
    ));
    assert!(matches!(
        policy_for("{useSourceIp: true}"),
        PolicySpecifier::ConnectionProperties(c) if c.source_ip
    ));
    assert!(matches!(
        policy_for("{httpQueryParameterName: user}"),
        PolicySpecifier::QueryParameter(q) if q.name == "user"
    ));
}

#[test]
fn consistent_hash_applies_without_a_virtual_service() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("ratings", &["v1"]),
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
"
        .to_string(),
    ]));
    let mut storage = Vec::new();
    let vh = vhost(
        &snapshot,
        &router_view("default"),
        &mut storage,
        "ratings.default.svc.cluster.local:9080",
    );
    assert_eq!(vh.routes[0].name, "default");
    assert_eq!(
        action(&vh.routes[0]).hash_policy.len(),
        1,
        "the default route hashes on x-user"
    );
}

mod http_features;
mod mtls;
