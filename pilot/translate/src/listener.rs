//! LDS: for sidecars, the HTTP "router" listener, through which a client
//! without traffic capture reaches mesh services by `Host`, and the inbound
//! listeners of their Sidecar's `ingress` ports (see [`super::inbound`]);
//! for captured sidecars also `virtualOutbound` / `virtualInbound` and
//! the per-port listeners they hand off to (see [`super::capture`]);
//! for gateways,
//! the listeners of their Gateway servers (see [`super::gateway`]).
//!
//! Uncaptured sidecars get no TCP listeners: without traffic capture a TCP
//! client names no service (there is no `Host`). VirtualService `tcp` /
//! `tls` rules bound to `mesh` apply where TCP traffic is routed: on
//! captured sidecars' per-service listeners ([`super::capture`]).

use weft_envoy_api::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
};
use weft_envoy_api::util::pack_any;

use super::http_filters::build_http_filters;
use super::telemetry::ListenerTelemetry;
use super::{ProxyRole, ProxyView, ROUTER_ROUTE_CONFIG, ads_config_source, socket_address};
use weft_model::{MeshSnapshot, Side};

/// The router listener's name.
pub const ROUTER_LISTENER: &str = "router";

/// The proxy's listeners, sorted by name. A gateway has no router.
pub fn build_listeners(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Listener> {
    if view.role == ProxyRole::Gateway {
        return super::gateway::build_gateway_listeners(snapshot, view);
    }
    let mut listeners: Vec<Listener> = view
        .router_address
        .iter()
        .map(|(address, port)| build_router_listener(snapshot, view, address, *port))
        .collect();
    listeners.extend(super::inbound::build_inbound_listeners(snapshot, view));
    listeners.extend(super::capture::build_capture_listeners(snapshot, view));
    // A Sidecar ingress listener `0.0.0.0_P` wins over a captured proxy's
    // outbound listener of the same name (stable sort: it came first).
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    listeners.dedup_by(|later, first| later.name == first.name);
    listeners
}

fn build_router_listener(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    address: &str,
    port: u16,
) -> Listener {
    rds_http_listener(
        &ListenerTelemetry::new(snapshot, view, Side::Client),
        ROUTER_LISTENER,
        ROUTER_LISTENER,
        address,
        port,
        ROUTER_ROUTE_CONFIG,
    )
}

/// Listener `name` on `address:port`: one HTTP connection manager (stats
/// under `stat_prefix`, the common HTTP filters, `telemetry`) whose routes
/// come over RDS as `route_config`.
pub(super) fn rds_http_listener(
    telemetry: &ListenerTelemetry<'_>,
    name: &str,
    stat_prefix: &str,
    address: &str,
    port: u16,
    route_config: &str,
) -> Listener {
    let mut hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config.to_string(),
        })),
        http_filters: build_http_filters(),
        ..Default::default()
    };
    telemetry.apply_to_hcm(&mut hcm);
    Listener {
        name: name.to_string(),
        address: Some(socket_address(address, port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}
