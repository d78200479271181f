//! Inbound: the listeners and clusters of a Sidecar's `ingress` ports.
//!
//! Each ingress port gets a listener on `bind:port` that forwards to the
//! application's `defaultEndpoint` through cluster `inbound|PORT||`, over
//! HTTP (a connection manager with one catch-all route) or TCP. Its filter
//! chains follow the port's effective PeerAuthentication mode:
//!
//! ```text
//!   STRICT      one chain: mesh mTLS, client certificate required
//!   PERMISSIVE  tls_inspector; chain "tls" + Istio ALPN -> mesh mTLS,
//!               chain "raw_buffer" -> plain text
//!   DISABLE     one chain: plain text
//! ```
//!
//! HTTP chains replace `x-forwarded-client-cert` with the caller's SPIFFE
//! ID (`SANITIZE_SET`, URI only), so the application sees who called, and
//! remove the caller's [`SOURCE_HEADER`] before the request reaches the
//! application. The removal is the route configuration's, which the router
//! applies after every other HTTP filter ran: the quota filters still read
//! the header (on mTLS chains; plain-text chains have no
//! `x-forwarded-client-cert`, without which no quota override matches).

use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::cluster::v3::{
    Cluster,
    cluster::{ClusterDiscoveryType, DiscoveryType},
};
use weft_envoy_api::pb::envoy::config::core::v3::Http2ProtocolOptions;
use weft_envoy_api::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use weft_envoy_api::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use weft_envoy_api::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
    http_connection_manager::{
        ForwardClientCertDetails, RouteSpecifier, SetCurrentClientCertDetails,
    },
};
use weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier as TcpClusterSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config},
};
use weft_envoy_api::util::pack_any;

use super::inbound_policy::inbound_http_filters;
use super::jwt_authn::local_reply_config;
use super::mtls::{ISTIO_ALPN, istio_mutual_downstream_socket};
use super::quota::SOURCE_HEADER;
use super::telemetry::ListenerTelemetry;
use super::{ProxyView, pb_duration, socket_address};
use weft_model::{IngressListener, MeshSnapshot, MtlsMode, Service, Side, effective_mtls_mode};

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Istio's inbound cluster name: `inbound|PORT||`.
pub fn inbound_cluster_name(port: u16) -> String {
    format!("inbound|{port}||")
}

/// Istio's name for a listener of a Sidecar ingress port: `BIND_PORT`.
pub fn inbound_listener_name(listener: &IngressListener) -> String {
    format!("{}_{}", listener.bind, listener.port)
}

fn ingress_of<'a>(snapshot: &'a MeshSnapshot, view: &ProxyView) -> &'a [IngressListener] {
    super::sidecar_for(snapshot, view)
        .map(|s| s.ingress.as_slice())
        .unwrap_or_default()
}

/// The effective PeerAuthentication mode of the proxy's own `port`.
pub fn inbound_mode(snapshot: &MeshSnapshot, view: &ProxyView, port: u16) -> MtlsMode {
    effective_mtls_mode(
        &snapshot.peer_authentications,
        &snapshot.mesh_config.root_namespace,
        &view.namespace,
        &view.labels,
        port,
    )
}

/// One listener per ingress port of the proxy's Sidecar.
pub(super) fn build_inbound_listeners(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Listener> {
    let telemetry = ListenerTelemetry::new(snapshot, view, Side::Server);
    ingress_of(snapshot, view)
        .iter()
        .map(|l| {
            let filters = inbound_http_filters(snapshot, view, l.port);
            build_listener(
                l,
                inbound_mode(snapshot, view, l.port),
                &filters,
                &telemetry,
            )
        })
        .collect()
}

/// One `inbound|PORT||` cluster per ingress port, to its default endpoint.
pub(super) fn build_inbound_clusters(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Cluster> {
    ingress_of(snapshot, view)
        .iter()
        .map(|l| {
            let service = super::capture::inbound_service(snapshot, view, l.port);
            build_cluster(l, service)
        })
        .collect()
}

fn build_listener(
    l: &IngressListener,
    mode: MtlsMode,
    http_filters: &[HttpFilter],
    telemetry: &ListenerTelemetry<'_>,
) -> Listener {
    let (filter_chains, listener_filters) = build_chains(l, mode, http_filters, telemetry);
    Listener {
        name: inbound_listener_name(l),
        address: Some(socket_address(&l.bind, l.port)),
        filter_chains,
        listener_filters,
        ..Default::default()
    }
}

/// The filter chains of inbound port `l` in `mode` (to cluster
/// `inbound|PORT||`), and the listener filters they need (`tls_inspector`
/// when PERMISSIVE), HTTP chains running `http_filters`, all reporting
/// `telemetry`. Also the `virtualInbound` chains of captured proxies.
pub(super) fn build_chains(
    l: &IngressListener,
    mode: MtlsMode,
    http_filters: &[HttpFilter],
    telemetry: &ListenerTelemetry<'_>,
) -> (Vec<FilterChain>, Vec<ListenerFilter>) {
    let http = l.protocol.is_http();
    build_mode_chains(mode, http, |tls| {
        if http {
            hcm_filter(l, tls, http_filters, telemetry)
        } else {
            tcp_filter(l, telemetry)
        }
    })
}

/// The chains `mode` asks for around `network_filter` (called with
/// whether the chain terminates mesh mTLS): see the module docs.
pub(super) fn build_mode_chains(
    mode: MtlsMode,
    http: bool,
    network_filter: impl Fn(bool) -> Filter,
) -> (Vec<FilterChain>, Vec<ListenerFilter>) {
    let tls_chain = |filter_chain_match| FilterChain {
        filter_chain_match,
        filters: vec![network_filter(true)],
        transport_socket: Some(istio_mutual_downstream_socket(http)),
        name: "mtls".to_string(),
        ..Default::default()
    };
    let plain_chain = |filter_chain_match| FilterChain {
        filter_chain_match,
        filters: vec![network_filter(false)],
        name: "plaintext".to_string(),
        ..Default::default()
    };
    let (filter_chains, listener_filters) = match mode {
        MtlsMode::Strict => (vec![tls_chain(None)], Vec::new()),
        MtlsMode::Disable => (vec![plain_chain(None)], Vec::new()),
        MtlsMode::Permissive | MtlsMode::Unset => (
            vec![
                tls_chain(Some(FilterChainMatch {
                    transport_protocol: "tls".to_string(),
                    application_protocols: ISTIO_ALPN.iter().map(|a| a.to_string()).collect(),
                    ..Default::default()
                })),
                plain_chain(Some(FilterChainMatch {
                    transport_protocol: "raw_buffer".to_string(),
                    ..Default::default()
                })),
            ],
            vec![tls_inspector()],
        ),
    };
    (filter_chains, listener_filters)
}

/// The `tls_inspector` listener filter.
pub(super) fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

fn hcm_filter(
    l: &IngressListener,
    tls: bool,
    http_filters: &[HttpFilter],
    telemetry: &ListenerTelemetry<'_>,
) -> Filter {
    let cluster = inbound_cluster_name(l.port);
    let route_config = RouteConfiguration {
        name: format!("inbound|{}||{}", l.port, l.name),
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{}", l.port),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                name: "default".to_string(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
                    ..Default::default()
                }),
                action: Some(Action::Route(RouteAction {
                    cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
                    // Istio disables the route timeout inbound: the caller's
                    // proxy enforces the VirtualService timeout.
                    timeout: Some(pb_duration(std::time::Duration::ZERO)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        validate_clusters: Some(weft_envoy_api::pb::google::protobuf::BoolValue { value: false }),
        // Applied by the router, after the quota filters read it.
        request_headers_to_remove: vec![SOURCE_HEADER.to_string()],
        ..Default::default()
    };
    let mut hcm = HttpConnectionManager {
        stat_prefix: inbound_listener_name(l),
        route_specifier: Some(RouteSpecifier::RouteConfig(route_config)),
        http_filters: http_filters.to_vec(),
        local_reply_config: local_reply_config(http_filters),
        forward_client_cert_details: ForwardClientCertDetails::SanitizeSet as i32,
        set_current_client_cert_details: tls.then(|| SetCurrentClientCertDetails {
            uri: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    telemetry.apply_to_hcm(&mut hcm);
    Filter {
        name: "envoy.filters.network.http_connection_manager".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}

fn tcp_filter(l: &IngressListener, telemetry: &ListenerTelemetry<'_>) -> Filter {
    let mut tcp = TcpProxy {
        stat_prefix: inbound_cluster_name(l.port),
        cluster_specifier: Some(TcpClusterSpecifier::Cluster(inbound_cluster_name(l.port))),
        ..Default::default()
    };
    telemetry.apply_to_tcp(&mut tcp);
    Filter {
        name: "envoy.filters.network.tcp_proxy".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(tcp))),
    }
}

/// Cluster `inbound|PORT||` to `l`'s default endpoint; its metadata names
/// `service`, what Istio's server-side metrics call the destination.
pub(super) fn build_cluster(l: &IngressListener, service: Option<&Service>) -> Cluster {
    let name = inbound_cluster_name(l.port);
    let (address, port) = &l.endpoint;
    let mut cluster = Cluster {
        name: name.clone(),
        connect_timeout: Some(pb_duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket_address(address, *port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        metadata: service.map(|s| super::telemetry::metadata::cluster_metadata(None, s)),
        ..Default::default()
    };
    if l.protocol.is_http2() {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(
                        explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            Http2ProtocolOptions::default(),
                        ),
                    ),
                },
            )),
            ..Default::default()
        };
        cluster.typed_extension_protocol_options =
            BTreeMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), pack_any(options))]);
    }
    cluster
}
