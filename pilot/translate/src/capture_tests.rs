//! Captured sidecars' config on fabricated meshes.

use prost::Message;
use weft_envoy_api::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use weft_envoy_api::pb::envoy::config::core::v3::address;
use weft_envoy_api::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use weft_envoy_api::pb::envoy::config::listener::v3::{Listener, filter};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier as TcpClusterSpecifier,
};

use super::super::{
    ProxyView, build_clusters, build_listeners, build_route_configs, check_consistency,
};
use weft_config::testing::mk_snapshot;
use weft_model::MeshSnapshot;

const MESH: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: ns1}
spec:
  hosts: [reviews.ns1.svc.cluster.local]
  addresses: [10.96.0.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.2, labels: {app: reviews, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: ns1}
spec:
  hosts: [db.ns1.svc.cluster.local]
  addresses: [10.96.0.20/32]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  endpoints:
  - {address: 10.0.0.5, ports: {tcp-pg: 15432}, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partners, namespace: ns1}
spec:
  hosts: [partners.example.com]
  addresses: [192.168.0.0/16]
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: ns1}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
";

fn mesh() -> MeshSnapshot {
    mk_snapshot(MESH)
}

fn captured(ips: &[&str], labels: &[(&str, &str)]) -> ProxyView {
    ProxyView {
        namespace: "ns1".to_string(),
        capture: true,
        instance_ips: ips.iter().map(|s| s.to_string()).collect(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn listener<'a>(listeners: &'a [Listener], name: &str) -> &'a Listener {
    listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

/// One line per listener and chain: what it matches and where it goes.
fn summary(listeners: &[Listener]) -> String {
    let mut out = String::new();
    for l in listeners {
        let Some(address::Address::SocketAddress(a)) =
            l.address.as_ref().and_then(|a| a.address.as_ref())
        else {
            panic!("{} has no socket address", l.name)
        };
        out += &format!(
            "{} {}:{:?} bind_to_port={:?} use_original_dst={:?} filters={:?}\n",
            l.name,
            a.address,
            a.port_specifier,
            l.bind_to_port.as_ref().map(|b| b.value),
            l.use_original_dst.as_ref().map(|b| b.value),
            l.listener_filters
                .iter()
                .map(|f| &f.name)
                .collect::<Vec<_>>(),
        );
        for c in &l.filter_chains {
            let m = c.filter_chain_match.clone().unwrap_or_default();
            out += &format!(
                "  chain {:?} port={:?} transport={:?} tls={} -> {}\n",
                c.name,
                m.destination_port.map(|p| p.value),
                m.transport_protocol,
                c.transport_socket.is_some(),
                target(c.filters.first().and_then(|f| f.config_type.as_ref())),
            );
        }
    }
    out
}

fn target(config: Option<&filter::ConfigType>) -> String {
    let Some(filter::ConfigType::TypedConfig(any)) = config else {
        return "?".to_string();
    };
    if any.type_url.ends_with("HttpConnectionManager") {
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        return match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => format!("http rds {}", rds.route_config_name),
            Some(RouteSpecifier::RouteConfig(rc)) => format!("http inline {}", rc.name),
            _ => "http ?".to_string(),
        };
    }
    let tcp = TcpProxy::decode(any.value.as_slice()).unwrap();
    match tcp.cluster_specifier {
        Some(TcpClusterSpecifier::Cluster(c)) => format!("tcp {c}"),
        other => format!("tcp {other:?}"),
    }
}

#[test]
fn capture_is_only_for_proxies_that_ask() {
    let snapshot = mesh();
    let plain = ProxyView {
        namespace: "ns1".to_string(),
        ..Default::default()
    };
    assert!(build_listeners(&snapshot, &plain).is_empty());
    assert!(build_route_configs(&snapshot, &plain).is_empty());
    assert!(
        build_clusters(&snapshot, &plain)
            .iter()
            .all(|c| c.name.starts_with("outbound|"))
    );
}

#[test]
fn capture_client_listeners_hand_off_by_original_destination() {
    let snapshot = mesh();
    let view = captured(&["10.0.0.9"], &[("app", "client")]);
    let listeners = build_listeners(&snapshot, &view);
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.0.0.0_9080",
            "10.96.0.20_5432",
            "virtualInbound",
            "virtualOutbound"
        ],
        "no listener for the CIDR range"
    );
    assert_eq!(
        listener(&listeners, "virtualOutbound").use_original_dst,
        Some(weft_envoy_api::pb::google::protobuf::BoolValue { value: true })
    );
    insta::assert_snapshot!(summary(&listeners));
    assert_eq!(check_consistency(&snapshot, &view), Vec::<String>::new());
}

#[test]
fn capture_port_routes_match_the_service_address_and_pass_the_rest_through() {
    let snapshot = mesh();
    let view = captured(&["10.0.0.9"], &[]);
    let configs = build_route_configs(&snapshot, &view);
    let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["9080"]);
    let hosts = &configs[0].virtual_hosts;
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0].name, "reviews.ns1.svc.cluster.local:9080");
    for domain in [
        "reviews.ns1.svc.cluster.local",
        "reviews.ns1.svc.cluster.local:9080",
        "reviews:9080",
        "reviews",
        "10.96.0.10:9080",
        "10.96.0.10",
    ] {
        assert!(
            hosts[0].domains.iter().any(|d| d == domain),
            "{domain} in {:?}",
            hosts[0].domains
        );
    }
    assert_eq!(hosts[1].name, "allow_any");
    assert_eq!(hosts[1].domains, ["*"]);
}

#[test]
fn capture_server_inbound_follows_peer_authentication_to_localhost() {
    let snapshot = mesh();
    let view = captured(&["10.0.0.2"], &[("app", "reviews")]);
    let listeners = build_listeners(&snapshot, &view);
    let inbound = listener(&listeners, "virtualInbound");
    let chains: Vec<&str> = inbound
        .filter_chains
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        chains,
        ["9080_mtls", "virtualInbound-passthrough-mtls"],
        "the workload's STRICT holds on its other ports too"
    );
    insta::assert_snapshot!(summary(std::slice::from_ref(inbound)));

    let clusters = build_clusters(&snapshot, &view);
    let inbound_cluster = clusters
        .iter()
        .find(|c| c.name == "inbound|9080||")
        .unwrap();
    let endpoint = &inbound_cluster.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0];
    let Some(HostIdentifier::Endpoint(e)) = &endpoint.host_identifier else {
        panic!("{endpoint:?}")
    };
    let Some(address::Address::SocketAddress(a)) = e.address.as_ref().unwrap().address.as_ref()
    else {
        panic!("{e:?}")
    };
    assert_eq!(a.address, "127.0.0.1");
    for name in ["PassthroughCluster", "InboundPassthroughCluster"] {
        let c = clusters.iter().find(|c| c.name == name).unwrap();
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32
            ))
        );
        assert_eq!(c.lb_policy, LbPolicy::ClusterProvided as i32);
    }
    assert_eq!(check_consistency(&snapshot, &view), Vec::<String>::new());
}

#[test]
fn capture_workload_ports_by_labels_use_the_endpoints_target_port() {
    let snapshot = mesh();
    let by_labels = captured(&[], &[("app", "db")]);
    let listeners = build_listeners(&snapshot, &by_labels);
    let ports: Vec<u32> = listener(&listeners, "virtualInbound")
        .filter_chains
        .iter()
        .filter_map(|c| {
            c.filter_chain_match
                .as_ref()?
                .destination_port
                .map(|p| p.value)
        })
        .collect();
    assert_eq!(ports, [15432, 15432], "PERMISSIVE: tls + plain");
    assert!(
        build_clusters(&snapshot, &by_labels)
            .iter()
            .any(|c| c.name == "inbound|15432||")
    );
    // Another namespace's proxy with the same labels is not the endpoint.
    let elsewhere = ProxyView {
        namespace: "ns2".to_string(),
        ..by_labels.clone()
    };
    let listeners = build_listeners(&snapshot, &elsewhere);
    assert!(
        listener(&listeners, "virtualInbound")
            .filter_chains
            .iter()
            .all(|c| c.name.starts_with("virtualInbound-passthrough"))
    );
}

#[test]
fn capture_proxies_share_resources_when_their_addresses_serve_the_same_ports() {
    use super::super::{build_load_assignments, sharing_key};
    let mesh = mesh();
    let build = |view: &ProxyView| {
        (
            build_clusters(&mesh, view),
            build_load_assignments(&mesh, view),
            build_listeners(&mesh, view),
            build_route_configs(&mesh, view),
        )
    };
    // Two clients at addresses no service has: one key, equal resources.
    let (a, b) = (captured(&["10.9.0.1"], &[]), captured(&["10.9.0.2"], &[]));
    assert_eq!(sharing_key(&mesh, &a), sharing_key(&mesh, &b));
    assert_eq!(build(&a), build(&b));
    // The reviews endpoint serves 9080: its own key, its own resources.
    let server = captured(&["10.0.0.2"], &[]);
    assert_ne!(sharing_key(&mesh, &server), sharing_key(&mesh, &a));
    assert_ne!(build(&server), build(&a));
    // By labels, without addresses, the same workload is not confused
    // with an address-less client either.
    let by_labels = captured(&[], &[("app", "reviews")]);
    assert_ne!(
        sharing_key(&mesh, &by_labels),
        sharing_key(&mesh, &captured(&[], &[]))
    );
}

const MESH_L4_RULES: &str = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: ns1}
spec:
  host: db.ns1.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: ns1}
spec:
  hosts: [db.ns1.svc.cluster.local]
  tcp:
  - match: [{sourceLabels: {app: batch}}]
    route: [{destination: {host: db.ns1.svc.cluster.local, subset: v1}}]
  - route:
    - {destination: {host: db.ns1.svc.cluster.local, subset: v2}, weight: 90}
    - {destination: {host: db.ns1.svc.cluster.local, subset: v1}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mail, namespace: ns1}
spec:
  hosts: [mail.ns1.svc.cluster.local]
  addresses: [10.96.0.30]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: 10.0.0.7}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mail, namespace: ns1}
spec:
  hosts: [mail.ns1.svc.cluster.local]
  tls:
  - match: [{sniHosts: [smtp.mail.example]}]
    route: [{destination: {host: db.ns1.svc.cluster.local, subset: v1}}]
  - match: [{sniHosts: [smtp.mail.example, imap.mail.example], sourceLabels: {app: client}}]
    route: [{destination: {host: db.ns1.svc.cluster.local, subset: v2}}]
";

#[test]
fn capture_tcp_listeners_follow_the_mesh_tcp_and_tls_rules() {
    let snapshot = mk_snapshot(&format!("{MESH}{MESH_L4_RULES}"));
    let client = captured(&["10.0.0.9"], &[("app", "client")]);
    let listeners = build_listeners(&snapshot, &client);
    let text = summary(&listeners);
    // The first tcp rule is for app=batch only: the client gets the split.
    let db = summary(std::slice::from_ref(listener(
        &listeners,
        "10.96.0.20_5432",
    )));
    assert!(db.contains("WeightedClusters"), "{db}");
    assert!(
        db.contains("outbound|5432|v2|db.ns1.svc.cluster.local"),
        "{db}"
    );
    assert!(db.contains("weight: 90"), "{db}");
    // TLS: a chain per SNI name (the first rule keeps smtp), then the
    // service itself; the listener inspects TLS.
    let mail = listener(&listeners, "10.96.0.30_443");
    assert_eq!(
        mail.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    let names: Vec<Vec<String>> = mail
        .filter_chains
        .iter()
        .map(|c| {
            c.filter_chain_match
                .clone()
                .unwrap_or_default()
                .server_names
        })
        .collect();
    assert_eq!(
        names,
        [
            vec!["smtp.mail.example".to_string()],
            vec!["imap.mail.example".to_string()],
            vec![]
        ],
        "{text}"
    );
    let targets: Vec<String> = mail
        .filter_chains
        .iter()
        .map(|c| target(c.filters.first().and_then(|f| f.config_type.as_ref())))
        .collect();
    assert_eq!(
        targets,
        [
            "tcp outbound|5432|v1|db.ns1.svc.cluster.local",
            "tcp outbound|5432|v2|db.ns1.svc.cluster.local",
            "tcp outbound|443||mail.ns1.svc.cluster.local",
        ]
    );
    assert_eq!(check_consistency(&snapshot, &client), Vec::<String>::new());

    // A batch workload matches the first tcp rule; its TLS rule for
    // app=client does not hold.
    let batch = captured(&["10.0.0.10"], &[("app", "batch")]);
    let listeners = build_listeners(&snapshot, &batch);
    let db = summary(std::slice::from_ref(listener(
        &listeners,
        "10.96.0.20_5432",
    )));
    assert!(
        db.contains("-> tcp outbound|5432|v1|db.ns1.svc.cluster.local"),
        "{db}"
    );
    assert_eq!(
        listener(&listeners, "10.96.0.30_443").filter_chains.len(),
        2
    );
}

/// The catch-all of `virtualOutbound` and the last virtual host of each
/// port's routes.
fn unknown_destinations(snapshot: &MeshSnapshot, view: &ProxyView) -> (String, Vec<String>) {
    let listeners = build_listeners(snapshot, view);
    let outbound = listener(&listeners, "virtualOutbound");
    let catch_all = target(
        outbound.filter_chains[0]
            .filters
            .first()
            .and_then(|f| f.config_type.as_ref()),
    );
    let fallbacks = build_route_configs(snapshot, view)
        .iter()
        .filter_map(|rc| rc.virtual_hosts.last().map(|vh| vh.name.clone()))
        .collect();
    assert_eq!(check_consistency(snapshot, view), Vec::<String>::new());
    (catch_all, fallbacks)
}

#[test]
fn capture_outbound_traffic_policy_passes_or_blocks_unknown_destinations() {
    let client = captured(&["10.0.0.9"], &[("app", "client")]);
    // Istio's default: ALLOW_ANY.
    let mut snapshot = mesh();
    assert_eq!(
        unknown_destinations(&snapshot, &client),
        (
            "tcp PassthroughCluster".to_string(),
            vec!["allow_any".to_string()]
        )
    );
    // The mesh config says REGISTRY_ONLY.
    snapshot.mesh_config = std::sync::Arc::new(weft_model::MeshConfig {
        outbound_traffic_policy: weft_model::OutboundTrafficPolicy::RegistryOnly,
        ..(*snapshot.mesh_config).clone()
    });
    assert_eq!(
        unknown_destinations(&snapshot, &client),
        (
            "tcp BlackHoleCluster".to_string(),
            vec!["block_all".to_string()]
        )
    );
    // A Sidecar of the namespace overrides the mesh config.
    let snapshot = mk_snapshot(&format!(
        "{MESH}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: ns1}}
spec:
  egress: [{{hosts: ['*/*']}}]
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
"
    ));
    assert_eq!(
        unknown_destinations(&snapshot, &client),
        (
            "tcp BlackHoleCluster".to_string(),
            vec!["block_all".to_string()]
        )
    );
    let clusters = build_clusters(&snapshot, &client);
    assert!(clusters.iter().any(|c| c.name == "BlackHoleCluster"));
}
