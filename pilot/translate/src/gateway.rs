//! LDS for gateway proxies: one listener per bound address and port of the
//! Gateway servers that select the proxy, named like Istio's
//! (`0.0.0.0_443`).
//!
//! - Plain HTTP servers on a port share one HTTP connection manager whose
//!   route configuration is `http.<port>`.
//! - HTTPS servers that terminate TLS get a filter chain each, matched by
//!   SNI (`server_names`), with their certificate and a route
//!   configuration `https.<port>.<portName>.<gateway>.<namespace>`.
//! - TLS PASSTHROUGH servers get one filter chain per VirtualService `tls`
//!   match, by SNI, forwarding with `tcp_proxy`; TLS servers that terminate
//!   and TCP servers forward with the first `tcp` rule that applies.
//!
//! HTTP routes come from the same code as the sidecars' router
//! ([`super::route::build_http_routes`]), in the gateway's
//! [`RouteContext`]. The route configurations are sent inline in the
//! listener (see [`build_gateway_route_configs`]).

use super::telemetry::ListenerTelemetry;
use std::collections::{BTreeMap, BTreeSet};
use weft_model::Side;

use weft_envoy_api::pb::envoy::config::listener::v3::{
    Filter, FilterChain, Listener, ListenerFilter, filter, listener_filter,
};
use weft_envoy_api::pb::envoy::config::route::v3::{
    RouteConfiguration, VirtualHost, virtual_host::TlsRequirementType,
};
use weft_envoy_api::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds,
    http_connection_manager::{RouteSpecifier, StripPortMode},
};
use weft_envoy_api::pb::google::protobuf::{BoolValue, UInt32Value};
use weft_envoy_api::util::pack_any;

use super::inbound_policy::gateway_http_filters;
use super::jwt_authn::local_reply_config;
use super::l4::{SniClaims, chain_match, weighted_tcp_proxy};
use super::route::build_http_routes;
use super::{ProxyView, gateway_tls, socket_address};
use weft_model::{
    Gateway, GatewayServer, HostSelector, MeshSnapshot, NamespaceSelector, Protocol, RouteContext,
    RouteDestination, ServerTls, VirtualService, host_intersection, is_exported,
};

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// Where a gateway listener binds when its server has no `bind`.
pub const DEFAULT_BIND: &str = "0.0.0.0";

/// A server of a gateway that selects the proxy.
struct Bound<'a> {
    gateway: &'a Gateway,
    /// `<namespace>/<name>`.
    key: String,
    server: &'a GatewayServer,
}

impl Bound<'_> {
    fn context(&self) -> RouteContext<'_> {
        RouteContext {
            gateway: Some(&self.key),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    PlainHttp,
    HttpsTerminate,
    TlsPassthrough,
    TlsTerminate,
    Tcp,
}

impl Kind {
    fn of(server: &GatewayServer) -> Kind {
        match (&server.tls, server.protocol) {
            (None, p) if p.is_http() => Kind::PlainHttp,
            (Some(ServerTls::Passthrough), _) => Kind::TlsPassthrough,
            (Some(ServerTls::Terminate(_)), Protocol::Https) => Kind::HttpsTerminate,
            (Some(ServerTls::Terminate(_)), _) => Kind::TlsTerminate,
            (None, _) => Kind::Tcp,
        }
    }

    /// Servers of one family can share a listener.
    fn family(self) -> u8 {
        match self {
            Kind::PlainHttp => 0,
            Kind::HttpsTerminate | Kind::TlsPassthrough | Kind::TlsTerminate => 1,
            Kind::Tcp => 2,
        }
    }
}

/// The servers of every Gateway whose selector picks the proxy, in
/// gateway (namespace, name) then server order.
fn bound_servers<'a>(snapshot: &'a MeshSnapshot, view: &ProxyView) -> Vec<Bound<'a>> {
    snapshot
        .gateways
        .iter()
        .filter(|g| g.selects(&view.labels))
        .flat_map(|gateway| {
            gateway.servers.iter().map(move |server| Bound {
                gateway,
                key: gateway.key(),
                server,
            })
        })
        .collect()
}

/// The listeners of a gateway proxy, sorted by name.
pub fn build_gateway_listeners(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Listener> {
    build_gateway(snapshot, view).0
}

/// The route configurations of a gateway proxy, sorted by name: the
/// `http.<port>` and `https.<port>.<portName>.<gateway>.<namespace>` that
/// its HTTP connection managers name (served over RDS).
pub fn build_gateway_route_configs(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
) -> Vec<RouteConfiguration> {
    build_gateway(snapshot, view).1
}

/// A gateway proxy's listeners and the route configurations they name.
fn build_gateway(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let bound = bound_servers(snapshot, view);
    let mut by_address: BTreeMap<(String, u16), Vec<&Bound<'_>>> = BTreeMap::new();
    for b in &bound {
        let bind = b
            .server
            .bind
            .clone()
            .unwrap_or_else(|| DEFAULT_BIND.to_string());
        by_address
            .entry((bind, b.server.listen_port))
            .or_default()
            .push(b);
    }
    let mut routes = Vec::new();
    let mut listeners: Vec<Listener> = by_address
        .into_iter()
        .filter_map(|((bind, port), servers)| {
            build_listener(snapshot, view, &bind, port, &servers, &mut routes)
        })
        .collect();
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    routes.dedup_by(|a, b| a.name == b.name);
    (listeners, routes)
}

fn build_listener(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    bind: &str,
    listen_port: u16,
    servers: &[&Bound<'_>],
    routes: &mut Vec<RouteConfiguration>,
) -> Option<Listener> {
    let first = servers.first()?;
    let family = Kind::of(first.server).family();
    // Servers that cannot share this port with the first are left out
    // (the config store reports such conflicts inside one Gateway).
    let servers: Vec<&Bound<'_>> = servers
        .iter()
        .copied()
        .filter(|b| Kind::of(b.server).family() == family)
        .collect();
    let mut chains = Vec::new();
    let mut tls_inspector = false;
    match Kind::of(first.server) {
        Kind::PlainHttp => {
            let name = format!("http.{}", first.server.port);
            routes.push(build_http_route_config(snapshot, view, &name, &servers));
            chains.push(FilterChain {
                filters: vec![build_hcm(
                    snapshot,
                    view,
                    &format!("outbound_{bind}_{listen_port}"),
                    &name,
                )],
                ..Default::default()
            });
        }
        Kind::Tcp => {
            // TCP servers cannot share a port: the first one has it (the
            // config store reports the others).
            chains.extend(
                first_tcp_route(snapshot, view, first).map(|destinations| FilterChain {
                    filters: vec![build_tcp_proxy(snapshot, view, destinations)],
                    ..Default::default()
                }),
            );
        }
        Kind::HttpsTerminate | Kind::TlsPassthrough | Kind::TlsTerminate => {
            tls_inspector = true;
            let mut sni = SniClaims::default();
            for b in &servers {
                chains.extend(build_tls_chains(snapshot, view, b, &mut sni, routes));
            }
        }
    }
    if chains.is_empty() {
        return None;
    }
    Some(Listener {
        name: format!("{bind}_{listen_port}"),
        address: Some(socket_address(bind, listen_port)),
        filter_chains: chains,
        listener_filters: if tls_inspector {
            vec![ListenerFilter {
                name: "envoy.filters.listener.tls_inspector".to_string(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                    TlsInspector::default(),
                ))),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    })
}

/// The SNI names a server's hosts stand for; `None` when one host is `*`
/// (any name, no SNI condition).
fn server_names(server: &GatewayServer) -> Option<Vec<String>> {
    if server.hosts.iter().any(|h| h.host == "*") {
        return None;
    }
    let names: BTreeSet<String> = server.hosts.iter().map(|h| h.host.clone()).collect();
    Some(names.into_iter().collect())
}

fn build_tls_chains(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    b: &Bound<'_>,
    sni: &mut SniClaims,
    routes: &mut Vec<RouteConfiguration>,
) -> Vec<FilterChain> {
    let server = b.server;
    match (&server.tls, Kind::of(server)) {
        (Some(ServerTls::Terminate(tls)), Kind::HttpsTerminate) => {
            let Some(names) = sni.claim(server_names(server)) else {
                return Vec::new();
            };
            let name = format!(
                "https.{}.{}.{}.{}",
                server.port, server.port_name, b.gateway.id.name, b.gateway.id.namespace
            );
            routes.push(build_http_route_config(snapshot, view, &name, &[b]));
            vec![FilterChain {
                name: name.clone(),
                filter_chain_match: chain_match(names),
                filters: vec![build_hcm(snapshot, view, &name, &name)],
                transport_socket: Some(gateway_tls::build_transport_socket(
                    tls,
                    &["h2", "http/1.1"],
                )),
                ..Default::default()
            }]
        }
        (Some(ServerTls::Terminate(tls)), _) => {
            let Some(destinations) = first_tcp_route(snapshot, view, b) else {
                return Vec::new();
            };
            let Some(names) = sni.claim(server_names(server)) else {
                return Vec::new();
            };
            vec![FilterChain {
                filter_chain_match: chain_match(names),
                filters: vec![build_tcp_proxy(snapshot, view, destinations)],
                transport_socket: Some(gateway_tls::build_transport_socket(tls, &[])),
                ..Default::default()
            }]
        }
        _ => {
            let mut chains = Vec::new();
            for vs in bound_virtual_services(snapshot, view, b) {
                for rule in &vs.tls {
                    for m in &rule.matches {
                        if !m
                            .l4
                            .applies_to(&view.namespace, &view.labels, b.context(), server.port)
                        {
                            continue;
                        }
                        let wanted = sni_for(&m.sni_hosts, &server.hosts, &vs.id.namespace);
                        if wanted.is_empty() {
                            continue;
                        }
                        let Some(names) = sni.claim(Some(wanted)) else {
                            continue;
                        };
                        chains.push(FilterChain {
                            filter_chain_match: chain_match(names),
                            filters: vec![build_tcp_proxy(snapshot, view, &rule.destinations)],
                            ..Default::default()
                        });
                    }
                }
            }
            chains
        }
    }
}

/// The SNI names of a TLS match that a server exposes to a VirtualService
/// of `namespace`: each SNI host narrowed by the server hosts.
fn sni_for(sni_hosts: &[String], server_hosts: &[HostSelector], namespace: &str) -> Vec<String> {
    let names: BTreeSet<String> = sni_hosts
        .iter()
        .flat_map(|sni| {
            server_hosts
                .iter()
                .filter(|h| namespace_allows(h, namespace))
                .filter_map(move |h| host_intersection(sni, &h.host))
        })
        .filter(|n| n != "*")
        .collect();
    names.into_iter().collect()
}

fn namespace_allows(host: &HostSelector, namespace: &str) -> bool {
    match &host.namespace {
        NamespaceSelector::Any => true,
        NamespaceSelector::Named(ns) => ns == namespace,
        NamespaceSelector::Nowhere => false,
    }
}

/// The VirtualServices bound to the server's gateway that may use the
/// server: exported to the proxy's namespace, not delegates, with a host
/// the server exposes to their namespace. In (namespace, name) order.
fn bound_virtual_services<'a>(
    snapshot: &'a MeshSnapshot,
    view: &'a ProxyView,
    b: &'a Bound<'_>,
) -> impl Iterator<Item = &'a VirtualService> + 'a {
    snapshot.virtual_services.iter().filter(move |vs| {
        !vs.is_delegate()
            && vs.binds(b.context())
            && is_exported(&vs.export_to, &vs.id.namespace, &view.namespace)
            && vs.hosts.iter().any(|vh| {
                b.server.hosts.iter().any(|sh| {
                    namespace_allows(sh, &vs.id.namespace)
                        && host_intersection(vh, &sh.host).is_some()
                })
            })
    })
}

/// The destinations of the first `tcp` rule with a match that holds on
/// this server (a rule without matches always holds).
fn first_tcp_route<'a>(
    snapshot: &'a MeshSnapshot,
    view: &'a ProxyView,
    b: &'a Bound<'_>,
) -> Option<&'a [RouteDestination]> {
    bound_virtual_services(snapshot, view, b)
        .flat_map(|vs| &vs.tcp)
        .find(|rule| {
            rule.applies(|m| {
                m.applies_to(&view.namespace, &view.labels, b.context(), b.server.port)
            })
        })
        .map(|rule| rule.destinations.as_slice())
}

/// A gateway's TCP proxy, reporting as Istio's gateways do (the client
/// side: `reporter="source"`).
fn build_tcp_proxy(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    destinations: &[RouteDestination],
) -> Filter {
    let telemetry = ListenerTelemetry::new(snapshot, view, Side::Client);
    weighted_tcp_proxy(snapshot, &telemetry, destinations)
}

fn build_hcm(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    stat_prefix: &str,
    route_config_name: &str,
) -> Filter {
    let http_filters = gateway_http_filters(snapshot, view);
    let mut hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(super::ads_config_source()),
            route_config_name: route_config_name.to_string(),
        })),
        local_reply_config: local_reply_config(&http_filters),
        http_filters,
        // Gateways route by host whatever port the client put in `Host`.
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        use_remote_address: Some(BoolValue { value: true }),
        ..Default::default()
    };
    ListenerTelemetry::new(snapshot, view, Side::Client).apply_to_hcm(&mut hcm);
    Filter {
        name: HCM.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}

/// A route configuration with one virtual host per host the servers expose
/// and a bound VirtualService routes (the more specific of the two names),
/// sorted by host. Routes of several gateways sharing the port follow
/// each other in gateway order.
fn build_http_route_config(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    name: &str,
    servers: &[&Bound<'_>],
) -> RouteConfiguration {
    let port = servers.first().map_or(0, |b| b.server.port);
    // domain -> (gateway keys, redirect to HTTPS)
    let mut domains: BTreeMap<String, (Vec<&str>, bool)> = BTreeMap::new();
    for b in servers {
        for vs in bound_virtual_services(snapshot, view, b) {
            for vh in &vs.hosts {
                for sh in &b.server.hosts {
                    if !namespace_allows(sh, &vs.id.namespace) {
                        continue;
                    }
                    let Some(domain) = host_intersection(vh, &sh.host) else {
                        continue;
                    };
                    let entry = domains.entry(domain).or_default();
                    if !entry.0.contains(&b.key.as_str()) {
                        entry.0.push(&b.key);
                    }
                    entry.1 |= b.server.https_redirect;
                }
            }
        }
    }
    let virtual_hosts = domains
        .into_iter()
        .filter_map(|(domain, (keys, redirect))| {
            let routes: Vec<_> = keys
                .iter()
                .flat_map(|key| {
                    build_http_routes(
                        snapshot,
                        view,
                        &domain,
                        port,
                        RouteContext { gateway: Some(key) },
                    )
                })
                .collect();
            (!routes.is_empty()).then(|| VirtualHost {
                name: format!("{domain}:{port}"),
                domains: vec![domain],
                routes,
                require_tls: if redirect {
                    TlsRequirementType::All as i32
                } else {
                    TlsRequirementType::None as i32
                },
                ..Default::default()
            })
        })
        .collect();
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: super::route::MAX_DIRECT_RESPONSE_BODY_BYTES,
        }),
        ..Default::default()
    }
}
