//! Gateways (listeners, routes, TLS, TCP and TLS routes) and the Sidecar
//! scope.

use std::collections::BTreeMap;

use prost::Message;
use weft_envoy_api::pb::envoy::config::core::v3::DataSource;
use weft_envoy_api::pb::envoy::config::core::v3::data_source::Specifier;
use weft_envoy_api::pb::envoy::config::core::v3::transport_socket;
use weft_envoy_api::pb::envoy::config::listener::v3::{FilterChain, Listener, filter};
use weft_envoy_api::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, route::Action,
    route_action::ClusterSpecifier as RouteCluster, virtual_host::TlsRequirementType,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, common_tls_context::ValidationContextType, tls_parameters::TlsProtocol,
};

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

fn gateway_view(labels: &[(&str, &str)]) -> ProxyView {
    ProxyView {
        role: ProxyRole::Gateway,
        namespace: "istio-system".to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        // A gateway asks for no router; if it did, it gets none.
        router_address: Some(("127.0.0.1".to_string(), 15080)),
        ..Default::default()
    }
}

fn ingress() -> ProxyView {
    gateway_view(&[("istio", "ingressgateway")])
}

fn mk_gateway(name: &str, servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
{servers}"
    )
}

fn mk_vs(name: &str, hosts: &str, gateways: &str, rules: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: {hosts}
  gateways: {gateways}
{rules}"
    )
}

fn mesh(extra: &[String]) -> MeshSnapshot {
    let mut parts = vec![
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
    ];
    parts.extend_from_slice(extra);
    mk_snapshot(&docs(&parts))
}

fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(Action::Route(a)) => a,
        other => panic!("not a route action: {other:?}"),
    }
}

fn route_cluster(route: &Route) -> String {
    match &action(route).cluster_specifier {
        Some(RouteCluster::Cluster(c)) => c.clone(),
        other => panic!("one cluster: {other:?}"),
    }
}

fn hcm(chain: &FilterChain) -> HttpConnectionManager {
    assert_eq!(
        chain.filters[0].name,
        "envoy.filters.network.http_connection_manager"
    );
    let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
        panic!("typed config")
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

/// The route configuration a chain's HTTP connection manager names over
/// RDS, from those the gateway proxy is sent.
fn route_config(snapshot: &MeshSnapshot, chain: &FilterChain) -> RouteConfiguration {
    let name = match hcm(chain).route_specifier {
        Some(RouteSpecifier::Rds(rds)) => rds.route_config_name,
        other => panic!("RDS expected: {other:?}"),
    };
    build_route_configs(snapshot, &ingress())
        .into_iter()
        .find(|rc| rc.name == name)
        .unwrap_or_else(|| panic!("route configuration {name} is served"))
}

fn tcp_proxy(chain: &FilterChain) -> TcpProxy {
    assert_eq!(chain.filters[0].name, "envoy.filters.network.tcp_proxy");
    let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
        panic!("typed config")
    };
    TcpProxy::decode(any.value.as_slice()).unwrap()
}

fn tcp_cluster(chain: &FilterChain) -> String {
    match tcp_proxy(chain).cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => c,
        other => panic!("one cluster: {other:?}"),
    }
}

fn tls_context(chain: &FilterChain) -> DownstreamTlsContext {
    let socket = chain.transport_socket.as_ref().expect("transport socket");
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else {
        panic!("typed config")
    };
    DownstreamTlsContext::decode(any.value.as_slice()).unwrap()
}

fn filename(source: Option<&DataSource>) -> &str {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::Filename(f)) => f,
        other => panic!("a file: {other:?}"),
    }
}

fn listener<'a>(listeners: &'a [Listener], name: &str) -> &'a Listener {
    listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}: {listeners:#?}"))
}

fn server_names(chain: &FilterChain) -> Vec<String> {
    chain
        .filter_chain_match
        .as_ref()
        .map(|m| m.server_names.clone())
        .unwrap_or_default()
}

const HTTP_GATEWAY: &str = "  - port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}
    hosts: ['*']
  - port: {number: 81, name: http-redirect, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
";

#[test]
fn a_gateway_listens_on_its_server_ports_with_routes_of_bound_virtual_services() {
    let snapshot = mesh(&[
        mk_gateway("edge", HTTP_GATEWAY),
        mk_vs(
            "edge-reviews",
            "[reviews.example.com, secure.example.com]",
            "[istio-system/edge]",
            "  http:
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
",
        ),
        mk_vs(
            "mesh-only",
            "[other.example.com]",
            "[mesh]",
            "  http: [{route: [{destination: {host: reviews}}]}]\n",
        ),
    ]);
    let listeners = build_listeners(&snapshot, &ingress());
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["0.0.0.0_8080", "0.0.0.0_81"],
        "no router on a gateway; targetPort is where it listens"
    );
    let l80 = listener(&listeners, "0.0.0.0_8080");
    let rc = route_config(&snapshot, &l80.filter_chains[0]);
    assert_eq!(rc.name, "http.80", "named by the server's port number");
    let domains: Vec<&str> = rc
        .virtual_hosts
        .iter()
        .flat_map(|v| v.domains.iter().map(String::as_str))
        .collect();
    assert_eq!(
        domains,
        ["reviews.example.com", "secure.example.com"],
        "a VirtualService bound to mesh only is not on the gateway"
    );
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.name, "reviews.example.com:80");
    assert_eq!(vh.routes.len(), 2, "{vh:#?}");
    assert_eq!(
        route_cluster(&vh.routes[0]),
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        route_cluster(&vh.routes[1]),
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        hcm(&l80.filter_chains[0]).http_filters,
        super::http_filters::build_http_filters(),
        "the same HTTP filters as every HCM"
    );

    let l81 = listener(&listeners, "0.0.0.0_81");
    let rc = route_config(&snapshot, &l81.filter_chains[0]);
    assert_eq!(rc.name, "http.81");
    assert_eq!(rc.virtual_hosts.len(), 1);
    assert_eq!(rc.virtual_hosts[0].domains, ["secure.example.com"]);
    assert_eq!(
        rc.virtual_hosts[0].require_tls,
        TlsRequirementType::All as i32,
        "httpsRedirect"
    );
    let configs = build_gateway_route_configs(&snapshot, &ingress());
    let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["http.80", "http.81"]);
}

#[test]
fn gateway_rules_stay_off_sidecars_and_mesh_rules_off_gateways() {
    let snapshot = mesh(&[
        mk_gateway("edge", HTTP_GATEWAY),
        mk_vs(
            "edge-only",
            "[reviews]",
            "[istio-system/edge]",
            "  http: [{route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]}]\n",
        ),
        mk_vs(
            "mesh-only",
            "[reviews.example.com]",
            "[mesh]",
            "  http: [{route: [{destination: {host: reviews, subset: v1}}]}]\n",
        ),
    ]);
    let configs = build_route_configs(&snapshot, &router_view("default"));
    let vh = configs[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .unwrap();
    assert_eq!(vh.routes.len(), 1);
    assert_eq!(
        vh.routes[0].name, "default",
        "the gateway's rule is not on sidecars"
    );
    let listeners = build_listeners(&snapshot, &ingress());
    let rc = route_config(
        &snapshot,
        &listener(&listeners, "0.0.0.0_8080").filter_chains[0],
    );
    let domains: Vec<&str> = rc
        .virtual_hosts
        .iter()
        .flat_map(|v| v.domains.iter().map(String::as_str))
        .collect();
    assert_eq!(
        domains,
        ["reviews.default.svc.cluster.local"],
        "the mesh-only VirtualService's host is not on the gateway"
    );
    assert_eq!(
        route_cluster(&rc.virtual_hosts[0].routes[0]),
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
}

#[test]
fn gateways_apply_only_to_proxies_their_selector_picks() {
    let snapshot = mesh(&[mk_gateway("edge", HTTP_GATEWAY)]);
    assert!(build_listeners(&snapshot, &gateway_view(&[("istio", "egressgateway")])).is_empty());
    assert!(build_listeners(&snapshot, &gateway_view(&[])).is_empty());
    let sidecar = ProxyView {
        labels: BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]),
        ..router_view("default")
    };
    let names: Vec<String> = build_listeners(&snapshot, &sidecar)
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(
        names,
        [ROUTER_LISTENER],
        "a sidecar gets no gateway listeners"
    );
}

#[test]
fn https_servers_terminate_tls_by_sni_with_their_certificates() {
    let snapshot = mesh(&[
        mk_gateway(
            "edge",
            "  - port: {number: 443, name: https, protocol: HTTPS}
    bind: 127.0.0.61
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: /certs/a.pem, privateKey: /certs/a-key.pem, minProtocolVersion: TLSV1_3, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    bind: 127.0.0.61
    hosts: ['*.b.example.com']
    tls:
      mode: MUTUAL
      serverCertificate: /certs/b.pem
      privateKey: /certs/b-key.pem
      caCertificates: /certs/ca.pem
      caCrl: /certs/crl.pem
      verifyCertificateSpki: [c3BraQ==]
      verifyCertificateHash: [abcd]
      subjectAltNames: [spiffe://cluster.local/ns/a/sa/client, client.example.com]
  - port: {number: 443, name: https-c, protocol: HTTPS}
    bind: 127.0.0.61
    hosts: [c.example.com, a.example.com]
    tls: {mode: OPTIONAL_MUTUAL, serverCertificate: /certs/c.pem, privateKey: /certs/c-key.pem, caCertificates: /certs/ca.pem}
",
        ),
        mk_vs(
            "edge",
            "['*.example.com']",
            "[istio-system/edge]",
            "  http: [{route: [{destination: {host: reviews, subset: v1}}]}]\n",
        ),
    ]);
    let listeners = build_listeners(&snapshot, &ingress());
    let l = listener(&listeners, "127.0.0.61_443");
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    assert_eq!(l.filter_chains.len(), 3);
    let a = &l.filter_chains[0];
    assert_eq!(server_names(a), ["a.example.com"]);
    let rc = route_config(&snapshot, a);
    assert_eq!(rc.name, "https.443.https.edge.istio-system");
    assert_eq!(rc.virtual_hosts[0].domains, ["a.example.com"]);
    let ctx = tls_context(a);
    let common = ctx.common_tls_context.as_ref().unwrap();
    assert_eq!(
        filename(common.tls_certificates[0].certificate_chain.as_ref()),
        "/certs/a.pem"
    );
    assert_eq!(
        filename(common.tls_certificates[0].private_key.as_ref()),
        "/certs/a-key.pem"
    );
    assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);
    let params = common.tls_params.as_ref().unwrap();
    assert_eq!(
        params.tls_minimum_protocol_version,
        TlsProtocol::TlSv13 as i32
    );
    assert_eq!(params.cipher_suites, ["ECDHE-RSA-AES128-GCM-SHA256"]);
    assert!(ctx.require_client_certificate.is_none(), "SIMPLE");
    assert!(common.validation_context_type.is_none());

    let b = &l.filter_chains[1];
    assert_eq!(server_names(b), ["*.b.example.com"]);
    assert_eq!(
        route_config(&snapshot, b).name,
        "https.443.https-b.edge.istio-system"
    );
    assert_eq!(
        route_config(&snapshot, b).virtual_hosts[0].domains,
        ["*.b.example.com"]
    );
    let ctx = tls_context(b);
    assert_eq!(ctx.require_client_certificate.map(|v| v.value), Some(true));
    let common = ctx.common_tls_context.as_ref().unwrap();
    let Some(ValidationContextType::ValidationContext(validation)) =
        &common.validation_context_type
    else {
        panic!("MUTUAL verifies clients")
    };
    assert_eq!(filename(validation.trusted_ca.as_ref()), "/certs/ca.pem");
    assert_eq!(filename(validation.crl.as_ref()), "/certs/crl.pem");
    assert_eq!(validation.verify_certificate_spki, ["c3BraQ=="]);
    assert_eq!(validation.verify_certificate_hash, ["abcd"]);
    assert_eq!(validation.match_typed_subject_alt_names.len(), 2);
    assert_eq!(
        common
            .tls_params
            .as_ref()
            .unwrap()
            .tls_minimum_protocol_version,
        TlsProtocol::TlSv12 as i32,
        "Istio's default"
    );

    let c = &l.filter_chains[2];
    assert_eq!(
        server_names(c),
        ["c.example.com"],
        "a.example.com belongs to the first server"
    );
    let ctx = tls_context(c);
    assert_eq!(
        ctx.require_client_certificate.map(|v| v.value),
        Some(false),
        "OPTIONAL_MUTUAL asks for, but does not require, a client certificate"
    );
}

#[test]
fn passthrough_routes_by_sni_and_tcp_servers_forward_with_weights() {
    let snapshot = mesh(&[
        mk_gateway(
            "edge",
            "  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ['*.example.com']
    tls: {mode: PASSTHROUGH}
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ['*']
",
        ),
        mk_vs(
            "l4",
            "['*.example.com']",
            "[istio-system/edge]",
            "  tls:
  - match: [{sniHosts: [a.example.com], port: 443}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{sniHosts: [a.example.com, b.example.com]}, {sniHosts: [c.example.com], port: 9999}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{sniHosts: [d.example.com], sourceLabels: {app: other}}]
    route: [{destination: {host: reviews, subset: v2}}]
  tcp:
  - match: [{port: 9999}]
    route: [{destination: {host: reviews}}]
  - match: [{port: 31400, gateways: [istio-system/edge]}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 25}
    - {destination: {host: reviews, subset: v2}, weight: 75}
",
        ),
    ]);
    let listeners = build_listeners(&snapshot, &ingress());
    let tls = listener(&listeners, "0.0.0.0_443");
    assert_eq!(
        tls.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    let chains: Vec<(Vec<String>, String)> = tls
        .filter_chains
        .iter()
        .map(|c| (server_names(c), tcp_cluster(c)))
        .collect();
    assert_eq!(
        chains,
        [
            (
                vec!["a.example.com".to_string()],
                "outbound|9080|v1|reviews.default.svc.cluster.local".to_string()
            ),
            (
                vec!["b.example.com".to_string()],
                "outbound|9080|v2|reviews.default.svc.cluster.local".to_string()
            ),
        ],
        "the first rule wins a.example.com; matches for another port or other \
         source labels do not apply"
    );
    assert!(
        tls.filter_chains
            .iter()
            .all(|c| c.transport_socket.is_none()),
        "not terminated"
    );

    let tcp = listener(&listeners, "0.0.0.0_31400");
    assert!(tcp.listener_filters.is_empty());
    let Some(ClusterSpecifier::WeightedClusters(weighted)) =
        tcp_proxy(&tcp.filter_chains[0]).cluster_specifier
    else {
        panic!("weighted")
    };
    let split: Vec<(&str, u32)> = weighted
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(
        split,
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 25),
            ("outbound|9080|v2|reviews.default.svc.cluster.local", 75)
        ]
    );
}

#[test]
fn tls_servers_that_terminate_forward_with_tcp_rules() {
    let snapshot = mesh(&[
        mk_gateway(
            "edge",
            "  - port: {number: 9443, name: tls, protocol: TLS}
    hosts: [db.example.com]
    tls: {mode: SIMPLE, serverCertificate: /certs/db.pem, privateKey: /certs/db-key.pem}
",
        ),
        mk_vs(
            "db",
            "[db.example.com]",
            "[istio-system/edge]",
            "  tcp: [{route: [{destination: {host: reviews, subset: v1}}]}]\n",
        ),
    ]);
    let listeners = build_listeners(&snapshot, &ingress());
    let chain = &listener(&listeners, "0.0.0.0_9443").filter_chains[0];
    assert_eq!(server_names(chain), ["db.example.com"]);
    assert_eq!(
        tcp_cluster(chain),
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    let ctx = tls_context(chain);
    let common = ctx.common_tls_context.as_ref().unwrap();
    assert!(common.alpn_protocols.is_empty(), "not HTTP");
    assert_eq!(
        filename(common.tls_certificates[0].certificate_chain.as_ref()),
        "/certs/db.pem"
    );
}

#[test]
fn servers_expose_virtual_services_only_from_the_namespaces_they_name() {
    let snapshot = mesh(&[
        mk_gateway(
            "edge",
            "  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [prod/*, '*/open.example.com']
",
        ),
        mk_vs(
            "in-default",
            "[shop.example.com, open.example.com]",
            "[istio-system/edge]",
            "  http: [{route: [{destination: {host: reviews, subset: v1}}]}]\n",
        ),
    ]);
    let listeners = build_listeners(&snapshot, &ingress());
    let rc = route_config(
        &snapshot,
        &listener(&listeners, "0.0.0.0_80").filter_chains[0],
    );
    let domains: Vec<&str> = rc
        .virtual_hosts
        .iter()
        .flat_map(|v| v.domains.iter().map(String::as_str))
        .collect();
    assert_eq!(
        domains,
        ["open.example.com"],
        "prod/* does not take a VirtualService of namespace default"
    );
}

#[test]
fn gateway_translation_is_deterministic() {
    let snapshot = mesh(&[mk_gateway("edge", HTTP_GATEWAY)]);
    assert_eq!(
        build_listeners(&snapshot, &ingress()),
        build_listeners(&snapshot, &ingress())
    );
}

fn mk_sidecar(namespace: &str, name: &str, selector: Option<&str>, hosts: &str) -> String {
    let selector = selector
        .map(|s| format!("  workloadSelector: {{labels: {s}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{selector}  egress: [{{hosts: {hosts}}}]
"
    )
}

fn cluster_hosts(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<String> {
    let mut hosts: Vec<String> = build_clusters(snapshot, view)
        .into_iter()
        .filter_map(|c| c.name.rsplit('|').next().map(str::to_string))
        .collect();
    hosts.dedup();
    hosts
}

fn view_with(namespace: &str, labels: &[(&str, &str)]) -> ProxyView {
    ProxyView {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..router_view(namespace)
    }
}

#[test]
fn a_sidecar_resource_narrows_what_its_proxies_receive() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_service_entry("ratings", &["v1"]),
        mk_service_entry("details", &["v1"]),
        mk_sidecar(
            "default",
            "all-reviews",
            None,
            "['./reviews.default.svc.cluster.local']",
        ),
        mk_sidecar(
            "default",
            "ratings-app",
            Some("{app: ratings}"),
            "['*/details.default.svc.cluster.local', './ratings.default.svc.cluster.local']",
        ),
        mk_sidecar("istio-system", "default", None, "['~/*']"),
        mk_gateway("edge", HTTP_GATEWAY),
    ]));
    // Namespace-wide Sidecar.
    assert_eq!(
        cluster_hosts(&snapshot, &view_with("default", &[("app", "web")])),
        ["reviews.default.svc.cluster.local"]
    );
    // The selected one wins over the namespace-wide one.
    let ratings = view_with("default", &[("app", "ratings")]);
    assert_eq!(
        cluster_hosts(&snapshot, &ratings),
        [
            "details.default.svc.cluster.local",
            "ratings.default.svc.cluster.local"
        ]
    );
    let endpoints: Vec<String> = build_load_assignments(&snapshot, &ratings)
        .into_iter()
        .map(|c| c.cluster_name)
        .collect();
    assert!(
        endpoints.iter().all(|c| !c.contains("reviews")),
        "{endpoints:?}"
    );
    let vhosts: Vec<String> = build_route_configs(&snapshot, &ratings)[0]
        .virtual_hosts
        .iter()
        .map(|v| v.name.clone())
        .collect();
    assert!(vhosts.iter().all(|v| !v.contains("reviews")), "{vhosts:?}");
    // Other namespaces fall back to the root namespace's default (`~/*`).
    assert!(cluster_hosts(&snapshot, &view_with("prod", &[])).is_empty());
    // Gateways are not scoped by Sidecars.
    assert_eq!(
        cluster_hosts(&snapshot, &ingress()),
        [
            "details.default.svc.cluster.local",
            "ratings.default.svc.cluster.local",
            "reviews.default.svc.cluster.local",
        ]
    );
    assert_eq!(
        sidecar_for(&snapshot, &ratings).map(|s| s.id.name.as_str()),
        Some("ratings-app")
    );
}
