//! Transparent capture: the listeners, routes and clusters of a sidecar
//! whose pod's traffic `weft agent iptables` redirects to Envoy
//! ([`ProxyView::capture`], Istio's `INTERCEPTION_MODE: REDIRECT`), as
//! Istio builds them:
//!
//! ```text
//!  app ─connect(VIP:9080)─▶ iptables ─▶ virtualOutbound :15001 (use_original_dst)
//!        ├─ ADDR_P      (TCP service address, bind_to_port false) ─▶ outbound|P||host
//!        ├─ 0.0.0.0_P   (HTTP port, bind_to_port false) ─▶ RDS "P" ─▶ by Host / VIP
//!        └─ otherwise ─▶ PassthroughCluster (ORIGINAL_DST; ALLOW_ANY)
//!                        or BlackHoleCluster (REGISTRY_ONLY; HTTP: 502)
//!  peer ─▶ iptables ─▶ virtualInbound :15006 (original_dst, tls_inspector)
//!        ├─ destination_port P (a port of a service this workload serves)
//!        │     STRICT / PERMISSIVE / DISABLE chains as `inbound` builds them
//!        │     ─▶ inbound|P|| ─▶ 127.0.0.1:P
//!        └─ other ports ─▶ InboundPassthroughCluster (ORIGINAL_DST)
//! ```
//!
//! Inbound forwards to `127.0.0.1:P` (Istio before 1.10; since then the pod
//! IP), so the application must listen on all addresses or loopback.
//! The workload's ports are those of services with an endpoint that is
//! this proxy: by address when the proxy said its `INSTANCE_IPS`, else an
//! endpoint of a service of its namespace carrying all its labels.
//! Service addresses that are CIDR ranges get no TCP listener.

use std::collections::{BTreeMap, BTreeSet};

use weft_envoy_api::pb::envoy::config::cluster::v3::{
    Cluster,
    cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy},
};
use weft_envoy_api::pb::envoy::config::listener::v3::{
    Filter, FilterChain, Listener, ListenerFilter, filter, listener_filter,
};
use weft_envoy_api::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
    route::Action, route_action::ClusterSpecifier, route_match::PathSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier as TcpClusterSpecifier,
};
use weft_envoy_api::pb::google::protobuf::{BoolValue, UInt32Value};
use weft_envoy_api::util::pack_any;

use super::inbound::{build_chains, build_cluster, build_mode_chains, tls_inspector};
use super::inbound_policy::inbound_http_filters;
use super::l4::{SniClaims, chain_match, weighted_tcp_proxy};
use super::listener::rds_http_listener;
use super::route::{mesh_route_config, mesh_virtual_hosts, single_address, virtual_services_for};
use super::telemetry::ListenerTelemetry;
use super::{ProxyView, inbound_mode, outbound_cluster_name, pb_duration, socket_address};
use weft_model::{
    Endpoint, IngressListener, L4Match, MeshSnapshot, OutboundTrafficPolicy, Protocol,
    RouteContext, Service, ServicePort, Side,
};

/// The listener `weft agent iptables` redirects outbound connections to.
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
/// The listener `weft agent iptables` redirects inbound connections to.
pub const VIRTUAL_INBOUND: &str = "virtualInbound";
/// `--outbound-capture-port`'s default.
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
/// `--inbound-capture-port`'s default.
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
/// Outbound connections to no known service go where they were headed.
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// Inbound connections to a port no service names go where they were
/// headed.
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
/// Where `REGISTRY_ONLY` sends connections to unknown destinations.
pub const BLACK_HOLE_CLUSTER: &str = "BlackHoleCluster";

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `virtualOutbound`, `virtualInbound` and the per-port outbound
/// listeners (not bound: `virtualOutbound` hands connections to them).
pub(super) fn build_capture_listeners(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Listener> {
    if !view.capture {
        return Vec::new();
    }
    let client = ListenerTelemetry::new(snapshot, view, Side::Client);
    let server = ListenerTelemetry::new(snapshot, view, Side::Server);
    let catch_all = match outbound_policy(snapshot, view) {
        OutboundTrafficPolicy::AllowAny => PASSTHROUGH_CLUSTER,
        OutboundTrafficPolicy::RegistryOnly => BLACK_HOLE_CLUSTER,
    };
    let mut listeners = vec![
        virtual_outbound(&client, catch_all),
        virtual_inbound(snapshot, view, &server),
    ];
    listeners.extend(
        http_ports(snapshot, view)
            .into_iter()
            .map(|port| http_listener(&client, port)),
    );
    listeners.extend(tcp_listeners(snapshot, view, &client));
    listeners
}

/// One route configuration per HTTP port, named by the port.
pub(super) fn build_capture_route_configs(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
) -> Vec<RouteConfiguration> {
    let unknown_hosts = match outbound_policy(snapshot, view) {
        OutboundTrafficPolicy::AllowAny => allow_any(),
        OutboundTrafficPolicy::RegistryOnly => block_all(),
    };
    http_ports(snapshot, view)
        .into_iter()
        .map(|port| {
            let mut hosts = mesh_virtual_hosts(snapshot, view, Some(port));
            hosts.push(unknown_hosts.clone());
            mesh_route_config(&port.to_string(), view, hosts)
        })
        .collect()
}

/// The two passthrough clusters, the black hole and `inbound|P||` per
/// workload port.
pub(super) fn build_capture_clusters(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Cluster> {
    if !view.capture {
        return Vec::new();
    }
    let mut clusters = vec![
        original_dst_cluster(PASSTHROUGH_CLUSTER),
        original_dst_cluster(INBOUND_PASSTHROUGH_CLUSTER),
        black_hole_cluster(),
    ];
    clusters.extend(
        workload_ports(snapshot, view)
            .iter()
            .map(|l| build_cluster(l, inbound_service(snapshot, view, l.port))),
    );
    clusters
}

/// The HTTP ports of the services the proxy sees.
fn http_ports(snapshot: &MeshSnapshot, view: &ProxyView) -> BTreeSet<u16> {
    if !view.capture {
        return BTreeSet::new();
    }
    super::visible_services(snapshot, view)
        .flat_map(|s| &s.ports)
        .filter(|p| p.protocol.is_http())
        .map(|p| p.number)
        .collect()
}

/// `virtualOutbound`: connections no port listener takes go to
/// `catch_all` (the passthrough or the black hole, [`outbound_policy`]).
fn virtual_outbound(telemetry: &ListenerTelemetry<'_>, catch_all: &str) -> Listener {
    Listener {
        name: VIRTUAL_OUTBOUND.to_string(),
        address: Some(socket_address("0.0.0.0", OUTBOUND_CAPTURE_PORT)),
        use_original_dst: Some(BoolValue { value: true }),
        filter_chains: vec![FilterChain {
            name: "virtualOutbound-catchall-tcp".to_string(),
            filters: vec![tcp_proxy(telemetry, catch_all, catch_all)],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Where the proxy sends traffic to destinations outside the registry:
/// its Sidecar's `outboundTrafficPolicy`, else the mesh config's.
fn outbound_policy(snapshot: &MeshSnapshot, view: &ProxyView) -> OutboundTrafficPolicy {
    super::scope::sidecar_for(snapshot, view)
        .and_then(|sidecar| sidecar.outbound_traffic_policy)
        .unwrap_or(snapshot.mesh_config.outbound_traffic_policy)
}

fn http_listener(telemetry: &ListenerTelemetry<'_>, port: u16) -> Listener {
    let name = format!("0.0.0.0_{port}");
    Listener {
        bind_to_port: Some(BoolValue { value: false }),
        ..rds_http_listener(
            telemetry,
            &name,
            &format!("outbound_{name}"),
            "0.0.0.0",
            port,
            &port.to_string(),
        )
    }
}

/// `ADDR_P` for every address of every non-HTTP port of the services the
/// proxy sees; the first service (by hostname) wins an address. Its filter
/// chains are [`mesh_l4_chains`].
fn tcp_listeners(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    telemetry: &ListenerTelemetry<'_>,
) -> Vec<Listener> {
    let mut by_name = BTreeMap::new();
    for service in super::visible_services(snapshot, view) {
        for port in service.ports.iter().filter(|p| !p.protocol.is_http()) {
            let (chains, by_sni) = mesh_l4_chains(snapshot, view, service, port, telemetry);
            for address in service.addresses.iter().filter_map(|a| single_address(a)) {
                let name = format!("{address}_{}", port.number);
                by_name.entry(name.clone()).or_insert_with(|| Listener {
                    name,
                    address: Some(socket_address(address, port.number)),
                    bind_to_port: Some(BoolValue { value: false }),
                    filter_chains: chains.clone(),
                    listener_filters: if by_sni {
                        vec![tls_inspector()]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                });
            }
        }
    }
    by_name.into_values().collect()
}

/// Where connections to `service`'s `port` go, as the service's mesh
/// VirtualServices say for this proxy: on a TLS or HTTPS port, a chain per
/// SNI name of each `tls` rule's matches that hold (the first rule to name
/// an SNI has it); then, for the rest, the first `tcp` rule with a match
/// that holds (or no match), else the service itself. Returns the chains
/// and whether any matches on SNI.
fn mesh_l4_chains(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    service: &Service,
    port: &ServicePort,
    telemetry: &ListenerTelemetry<'_>,
) -> (Vec<FilterChain>, bool) {
    let rules = || virtual_services_for(snapshot, view, &service.hostname, RouteContext::MESH);
    let holds = |m: &L4Match| {
        m.applies_to(
            &view.namespace,
            &view.labels,
            RouteContext::MESH,
            port.number,
        )
    };
    let mut chains = Vec::new();
    if matches!(port.protocol, Protocol::Tls | Protocol::Https) {
        let mut sni = SniClaims::default();
        for rule in rules().flat_map(|vs| &vs.tls) {
            for m in rule.matches.iter().filter(|m| holds(&m.l4)) {
                let Some(names) = sni.claim(Some(m.sni_hosts.clone())) else {
                    continue;
                };
                chains.push(FilterChain {
                    filter_chain_match: chain_match(names),
                    filters: vec![weighted_tcp_proxy(snapshot, telemetry, &rule.destinations)],
                    ..Default::default()
                });
            }
        }
    }
    let by_sni = !chains.is_empty();
    let tcp_rule = rules()
        .flat_map(|vs| &vs.tcp)
        .find(|rule| rule.applies(holds));
    let fallback = match tcp_rule {
        Some(rule) => weighted_tcp_proxy(snapshot, telemetry, &rule.destinations),
        None => {
            let cluster = outbound_cluster_name(port.number, None, &service.hostname);
            tcp_proxy(telemetry, &cluster, &cluster)
        }
    };
    chains.push(FilterChain {
        filters: vec![fallback],
        ..Default::default()
    });
    (chains, by_sni)
}

fn virtual_inbound(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    telemetry: &ListenerTelemetry<'_>,
) -> Listener {
    let mut filter_chains = Vec::new();
    for l in workload_ports(snapshot, view) {
        let filters = inbound_http_filters(snapshot, view, l.port);
        let mode = inbound_mode(snapshot, view, l.port);
        let (chains, _) = build_chains(&l, mode, &filters, telemetry);
        filter_chains.extend(chains.into_iter().map(|mut chain| {
            chain.name = format!("{}_{}", l.port, chain.name);
            let mut m = chain.filter_chain_match.take().unwrap_or_default();
            m.destination_port = Some(UInt32Value {
                value: u32::from(l.port),
            });
            chain.filter_chain_match = Some(m);
            chain
        }));
    }
    // Ports no service names: the workload-wide mode, then where the
    // connection was headed.
    let (passthrough, _) = build_mode_chains(inbound_mode(snapshot, view, 0), false, |_| {
        tcp_proxy(
            telemetry,
            INBOUND_PASSTHROUGH_CLUSTER,
            INBOUND_PASSTHROUGH_CLUSTER,
        )
    });
    filter_chains.extend(passthrough.into_iter().map(|mut chain| {
        chain.name = format!("virtualInbound-passthrough-{}", chain.name);
        chain
    }));
    Listener {
        name: VIRTUAL_INBOUND.to_string(),
        address: Some(socket_address("0.0.0.0", INBOUND_CAPTURE_PORT)),
        listener_filters: vec![original_dst(), tls_inspector()],
        filter_chains,
        ..Default::default()
    }
}

/// What a view's resources depend on in `snapshot`. A captured proxy's
/// addresses (`instance_ips`) matter only through the ports its workload
/// serves ([`workload_ports`]), so the key holds those instead: replicas of
/// one deployment, or proxies whose addresses are no service's endpoint,
/// share one computation although every address differs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SharingKey {
    view: ProxyView,
    workload: Vec<IngressListener>,
    /// The services those ports serve (inbound clusters name them).
    services: Vec<String>,
}

/// The [`SharingKey`] of `view` in `snapshot`. Only captured proxies have
/// workload ports (by address, or by labels when they sent no address);
/// nothing else reads `instance_ips`.
pub fn sharing_key(snapshot: &MeshSnapshot, view: &ProxyView) -> SharingKey {
    let workload = if view.capture {
        workload_ports(snapshot, view)
    } else {
        Vec::new()
    };
    SharingKey {
        services: workload
            .iter()
            .filter_map(|l| inbound_service(snapshot, view, l.port))
            .map(|s| s.hostname.clone())
            .collect(),
        workload,
        view: ProxyView {
            instance_ips: Vec::new(),
            ..view.clone()
        },
    }
}

/// The ports this workload serves: per service with an endpoint that is
/// this proxy, each port's target port on that endpoint (sorted; the first
/// service by hostname wins a port).
fn workload_ports(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<IngressListener> {
    let mut ports = BTreeMap::new();
    for service in snapshot.services.values() {
        let Some(endpoint) = service
            .endpoints
            .iter()
            .find(|e| is_this_proxy(service, e, view))
        else {
            continue;
        };
        for port in &service.ports {
            let target = endpoint.port_for(port);
            ports.entry(target).or_insert_with(|| IngressListener {
                port: target,
                protocol: port.protocol,
                name: port.name.clone(),
                bind: "0.0.0.0".to_string(),
                endpoint: ("127.0.0.1".to_string(), target),
            });
        }
    }
    ports.into_values().collect()
}

/// The service whose port `port` of this workload serves (the first by
/// hostname, as [`workload_ports`] picks): `destination_service` of the
/// inbound cluster.
pub(super) fn inbound_service<'a>(
    snapshot: &'a MeshSnapshot,
    view: &ProxyView,
    port: u16,
) -> Option<&'a Service> {
    snapshot.services.values().find(|service| {
        service.endpoints.iter().any(|e| {
            is_this_proxy(service, e, view) && service.ports.iter().any(|p| e.port_for(p) == port)
        })
    })
}

fn is_this_proxy(service: &Service, endpoint: &Endpoint, view: &ProxyView) -> bool {
    if !view.instance_ips.is_empty() {
        return view.instance_ips.contains(&endpoint.address);
    }
    !view.labels.is_empty() && service.namespace == view.namespace && endpoint.matches(&view.labels)
}

/// Istio's `allow_any` virtual host: HTTP to unknown hosts passes through.
fn allow_any() -> VirtualHost {
    VirtualHost {
        name: "allow_any".to_string(),
        domains: vec!["*".to_string()],
        routes: vec![Route {
            name: "allow_any".to_string(),
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
                ..Default::default()
            }),
            action: Some(Action::Route(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(PASSTHROUGH_CLUSTER.to_string())),
                timeout: Some(pb_duration(std::time::Duration::ZERO)),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Istio's `block_all` virtual host (`REGISTRY_ONLY`): HTTP to unknown
/// hosts is answered 502.
fn block_all() -> VirtualHost {
    VirtualHost {
        name: "block_all".to_string(),
        domains: vec!["*".to_string()],
        routes: vec![Route {
            name: "block_all".to_string(),
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
                ..Default::default()
            }),
            action: Some(Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn tcp_proxy(telemetry: &ListenerTelemetry<'_>, stat_prefix: &str, cluster: &str) -> Filter {
    let mut tcp = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(TcpClusterSpecifier::Cluster(cluster.to_string())),
        ..Default::default()
    };
    telemetry.apply_to_tcp(&mut tcp);
    Filter {
        name: "envoy.filters.network.tcp_proxy".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(tcp))),
    }
}

fn original_dst() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.original_dst".to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            OriginalDst::default(),
        ))),
        ..Default::default()
    }
}

/// Istio's `BlackHoleCluster`: no endpoints, so every connection to it
/// is closed (`REGISTRY_ONLY`).
fn black_hole_cluster() -> Cluster {
    Cluster {
        name: BLACK_HOLE_CLUSTER.to_string(),
        connect_timeout: Some(pb_duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        ..Default::default()
    }
}

fn original_dst_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        connect_timeout: Some(pb_duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
