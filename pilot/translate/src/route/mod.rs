//! RDS: one route configuration whose virtual hosts match each service by
//! its hostname, `host:port`, and the short forms Kubernetes DNS accepts.
//!
//! - [`build_http_routes`] turns the VirtualServices for a host into Envoy
//!   routes for one proxy in one [`RouteContext`] (the mesh's sidecars or a
//!   gateway), so gateways reuse it.
//! - `matching`: Istio's match conditions -> Envoy route matches.
//! - `action`: forward (weighted clusters, rewrites, retries, mirrors),
//!   redirect, direct response, and header rules.
//! - `filters`: per-route config of the fault and CORS filters.

mod action;
mod filters;
mod matching;

use super::telemetry::WorkloadLabels;
use super::telemetry::peer::peer_header;
use std::collections::BTreeSet;
use weft_model::Location;

use weft_envoy_api::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option,
};
use weft_envoy_api::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch as PbRouteMatch, VirtualHost, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier,
};
use weft_envoy_api::pb::google::protobuf::{BoolValue, UInt32Value};

use super::{ProxyView, outbound_cluster_name, pb_duration};
use weft_model::{
    CLUSTER_DOMAIN, HttpRoute, MeshSnapshot, RouteContext, Service, VirtualService, host_matches,
    is_exported,
};

/// The name of the router listener's route configuration.
pub const ROUTER_ROUTE_CONFIG: &str = "router";

/// The largest `directResponse` body a route configuration allows (Istio's
/// 1 MiB; Envoy's own default is 4 KiB). Conversion rejects larger bodies;
/// every route configuration with VirtualService routes must set it.
pub const MAX_DIRECT_RESPONSE_BODY_BYTES: u32 = weft_model::MAX_DIRECT_RESPONSE_BODY_BYTES;

/// The route configurations the proxy's listeners name, sorted by name.
pub fn build_route_configs(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<RouteConfiguration> {
    if view.role == super::ProxyRole::Gateway {
        return super::gateway::build_gateway_route_configs(snapshot, view);
    }
    let mut configs = Vec::new();
    if view.router_address.is_some() {
        configs.push(mesh_route_config(
            ROUTER_ROUTE_CONFIG,
            view,
            mesh_virtual_hosts(snapshot, view, None),
        ));
    }
    if view.capture {
        configs.extend(super::capture::build_capture_route_configs(snapshot, view));
    }
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    configs
}

/// A route configuration of the mesh's sidecars.
pub(super) fn mesh_route_config(
    name: &str,
    view: &ProxyView,
    virtual_hosts: Vec<VirtualHost>,
) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        // Who is calling, for the destination's Quota overrides: the app
        // cannot set it (removed first), the sidecar always does.
        request_headers_to_remove: vec![super::quota::SOURCE_HEADER.to_string()],
        request_headers_to_add: source_header(view),
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY_BYTES,
        }),
        ..Default::default()
    }
}

/// One virtual host per visible service and HTTP port: every port for the
/// router (`only_port` `None`); with `Some(port)`, that port's, for the
/// captured proxy's listener of that port, where the port is known, so the
/// names match without `:port` too, and so do the service's addresses
/// (`Host: 10.96.0.10:9080`).
pub(super) fn mesh_virtual_hosts(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    only_port: Option<u16>,
) -> Vec<VirtualHost> {
    let mut taken = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    // Mesh workloads learn who calls them (see telemetry::peer).
    let peer = peer_header(&WorkloadLabels::of_proxy(view));
    for service in super::visible_services(snapshot, view) {
        let default_port = service.default_http_port();
        let ports = service
            .ports
            .iter()
            .filter(|p| p.protocol.is_http() && only_port.is_none_or(|o| o == p.number));
        for port in ports {
            let names = match only_port {
                None => domains(service, port.number, default_port, view),
                Some(_) => {
                    let mut names = domains(service, port.number, Some(port.number), view);
                    for address in service.addresses.iter().filter_map(|a| single_address(a)) {
                        names.push(format!("{address}:{}", port.number));
                        names.push(address.to_string());
                    }
                    names
                }
            };
            let domains: Vec<String> = names
                .into_iter()
                .filter(|d| taken.insert(d.clone()))
                .collect();
            if domains.is_empty() {
                continue;
            }
            virtual_hosts.push(VirtualHost {
                name: format!("{}:{}", service.hostname, port.number),
                domains,
                routes: build_mesh_routes(snapshot, view, service, port.number),
                request_headers_to_add: (service.location == Location::MeshInternal)
                    .then(|| peer.clone())
                    .into_iter()
                    .collect(),
                ..Default::default()
            });
        }
    }
    virtual_hosts
}

/// A service address that is one IP (`10.96.0.10`, `10.96.0.10/32`), not
/// a range.
pub(crate) fn single_address(address: &str) -> Option<&str> {
    let ip = match address.split_once('/') {
        Some((ip, "32")) => ip,
        Some(_) => return None,
        None => address,
    };
    ip.parse::<std::net::Ipv4Addr>().is_ok().then_some(ip)
}

/// `x-weft-source: <labels>` for a sidecar with labels.
fn source_header(view: &ProxyView) -> Vec<HeaderValueOption> {
    if view.labels.is_empty() {
        return Vec::new();
    }
    vec![HeaderValueOption {
        header: Some(HeaderValue {
            key: super::quota::SOURCE_HEADER.to_string(),
            value: super::quota::source_header_value(&view.labels),
            ..Default::default()
        }),
        append_action: header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }]
}

/// The names a client may use for `service` on `port`: each with `:port`,
/// and without it on the service's default HTTP port.
fn domains(
    service: &Service,
    port: u16,
    default_port: Option<u16>,
    view: &ProxyView,
) -> Vec<String> {
    let host = &service.hostname;
    let mut names = vec![host.clone()];
    if let Some(name_ns) = host.strip_suffix(&format!(".{CLUSTER_DOMAIN}")) {
        names.push(format!("{name_ns}.svc"));
        names.push(name_ns.to_string());
        if let Some((name, ns)) = name_ns.split_once('.')
            && ns == view.namespace
        {
            names.push(name.to_string());
        }
    }
    let mut domains: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
    if default_port == Some(port) {
        domains.extend(names);
    }
    domains
}

/// The VirtualServices that route `hostname` for `view` in `context`, in
/// merge order (namespace, then name): bound to the context, exported to
/// the proxy's namespace, and not delegates.
pub fn virtual_services_for<'a>(
    snapshot: &'a MeshSnapshot,
    view: &'a ProxyView,
    hostname: &'a str,
    context: RouteContext<'a>,
) -> impl Iterator<Item = &'a VirtualService> + 'a {
    snapshot.virtual_services.iter().filter(move |vs| {
        !vs.is_delegate()
            && vs.binds(context)
            && is_exported(vs.export_to.as_slice(), &vs.id.namespace, &view.namespace)
            && vs.hosts.iter().any(|h| host_matches(h, hostname))
    })
}

/// The routes the VirtualServices for `hostname` give requests arriving on
/// `port`, for `view` in `context`, in order. Matches whose source or
/// gateway conditions do not hold for the proxy are left out, as Istio
/// does. No default route is added.
pub fn build_http_routes(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    hostname: &str,
    port: u16,
    context: RouteContext<'_>,
) -> Vec<Route> {
    virtual_services_for(snapshot, view, hostname, context)
        .flat_map(|vs| vs.http.iter().map(move |rule| (vs, rule)))
        .flat_map(|(vs, rule)| {
            build_rule(snapshot, view, rule, hostname, port, context)
                .into_iter()
                .map(|mut route| {
                    let metadata = route.metadata.take();
                    route.metadata = Some(super::config_metadata::with_config(metadata, &vs.id));
                    route
                })
        })
        .collect()
}

/// The routes for `service` on the mesh's sidecars, ending with a
/// catch-all to the service itself when no rule matches everything.
fn build_mesh_routes(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    service: &Service,
    port: u16,
) -> Vec<Route> {
    let mut routes = build_http_routes(snapshot, view, &service.hostname, port, RouteContext::MESH);
    let catch_all = routes
        .last()
        .is_some_and(|r| is_catch_all(r.r#match.as_ref()));
    if !catch_all {
        routes.push(Route {
            name: "default".to_string(),
            r#match: Some(matching::prefix_match("/")),
            action: Some(Action::Route(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(outbound_cluster_name(
                    port,
                    None,
                    &service.hostname,
                ))),
                timeout: Some(pb_duration(std::time::Duration::ZERO)),
                retry_policy: Some(action::build_retry_policy(None)),
                // A consistentHash DestinationRule applies without a
                // VirtualService too.
                hash_policy: super::hash_policy::build_hash_policies(
                    snapshot,
                    &weft_model::RouteDestination {
                        host: service.hostname.clone(),
                        subset: None,
                        port: Some(port),
                        weight: 100,
                        headers: Default::default(),
                    },
                ),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    routes
}

fn is_catch_all(m: Option<&PbRouteMatch>) -> bool {
    m.is_some_and(|m| {
        m.headers.is_empty()
            && m.query_parameters.is_empty()
            && matches!(&m.path_specifier, Some(PathSpecifier::Prefix(p)) if p == "/")
    })
}

/// One Envoy route per match of `rule` that applies here (Istio's matches
/// are alternatives).
fn build_rule(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    rule: &HttpRoute,
    hostname: &str,
    port: u16,
    context: RouteContext<'_>,
) -> Vec<Route> {
    // In the mesh, `hostname` is a service and a destination to it without
    // a port means the port the request came in on; on a gateway it is a
    // host the gateway serves, and the gateway's port says nothing.
    let service_port = context.gateway.is_none().then_some(port);
    let template = action::build_route(snapshot, rule, hostname, port, service_port);
    if rule.matches.is_empty() {
        return vec![Route {
            r#match: Some(matching::prefix_match("/")),
            ..template
        }];
    }
    rule.matches
        .iter()
        .filter(|m| m.port.is_none_or(|p| p == port))
        .filter(|m| m.applies_to(&view.namespace, &view.labels, context))
        .map(|m| Route {
            // Istio: `<rule>.<match>` when the match is named.
            name: match &m.name {
                Some(n) if template.name.is_empty() => n.clone(),
                Some(n) => format!("{}.{n}", template.name),
                None => template.name.clone(),
            },
            r#match: Some(matching::build_match(m)),
            stat_prefix: m.stat_prefix.clone().unwrap_or_default(),
            ..template.clone()
        })
        .collect()
}
