//! The generated types are envoy-types' API: the same paths, names and type
//! URLs, and the same bytes on the wire. Each resource is built twice by one
//! macro, once against `weft_envoy_api` and once against `envoy_types`, and
//! the encodings are compared; each is also decoded by the other crate.
//! (Maps hold one entry each: prost maps are `HashMap`s, whose encoding
//! order varies between two maps with the same entries.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::{Message, Name};

/// A cluster as Weft's CDS builds one: EDS over ADS, a timeout, TLS packed
/// into an `Any`, HTTP/2 upstream options keyed by type name, circuit
/// breaker wrappers, and `Struct` metadata.
macro_rules! cluster {
    ($api:ident) => {{
        use $api::pb::envoy::config::cluster::v3::{
            CircuitBreakers, Cluster,
            circuit_breakers::Thresholds,
            cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy},
        };
        use $api::pb::envoy::config::core::v3::{
            AggregatedConfigSource, ApiVersion, ConfigSource, Http2ProtocolOptions, Metadata,
            TransportSocket, config_source::ConfigSourceSpecifier, transport_socket::ConfigType,
        };
        use $api::pb::envoy::extensions::transport_sockets::tls::v3::{
            CommonTlsContext, SdsSecretConfig, UpstreamTlsContext,
        };
        use $api::pb::envoy::extensions::upstreams::http::v3::{
            HttpProtocolOptions,
            http_protocol_options::{
                ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config,
            },
        };
        use $api::pb::google::protobuf::{Duration, Struct, UInt32Value, Value, value::Kind};
        use $api::util::pack_any;

        let ads = ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
            ..Default::default()
        };
        let tls = UpstreamTlsContext {
            sni: "outbound_.9080_._.reviews.default.svc.cluster.local".into(),
            common_tls_context: Some(CommonTlsContext {
                alpn_protocols: vec!["istio-peer-exchange".into(), "istio".into()],
                tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                    name: "default".into(),
                    sds_config: Some(ads.clone()),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let http2 = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(
                        explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            Http2ProtocolOptions {
                                max_concurrent_streams: Some(UInt32Value { value: 1024 }),
                                ..Default::default()
                            },
                        ),
                    ),
                },
            )),
            ..Default::default()
        };
        let istio = Struct {
            fields: [(
                "services".to_owned(),
                Value {
                    kind: Some(Kind::StringValue(
                        "reviews.default.svc.cluster.local".into(),
                    )),
                },
            )]
            .into(),
        };
        Cluster {
            name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig {
                eds_config: Some(ads),
                service_name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            }),
            connect_timeout: Some(Duration {
                seconds: 10,
                nanos: 500_000_000,
            }),
            lb_policy: LbPolicy::LeastRequest as i32,
            circuit_breakers: Some(CircuitBreakers {
                thresholds: vec![Thresholds {
                    max_connections: Some(UInt32Value { value: u32::MAX }),
                    max_retries: Some(UInt32Value { value: 3 }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.tls".into(),
                config_type: Some(ConfigType::TypedConfig(pack_any(tls))),
            }),
            typed_extension_protocol_options: [(HttpProtocolOptions::full_name(), pack_any(http2))]
                .into(),
            metadata: Some(Metadata {
                filter_metadata: [("istio".to_owned(), istio)].into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }};
}

/// A listener with an HTTP connection manager (RDS over ADS, router filter)
/// behind a TLS inspector, wrapped in a discovery response.
macro_rules! lds_response {
    ($api:ident) => {{
        use $api::pb::envoy::config::core::v3::{
            Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address,
            config_source::ConfigSourceSpecifier, socket_address::PortSpecifier,
        };
        use $api::pb::envoy::config::listener::v3::{
            Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter,
            listener_filter,
        };
        use $api::pb::envoy::extensions::filters::http::router::v3::Router;
        use $api::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
        use $api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
            HttpConnectionManager, HttpFilter, Rds, http_connection_manager::RouteSpecifier,
            http_filter,
        };
        use $api::pb::envoy::service::discovery::v3::DiscoveryResponse;
        use $api::pb::google::protobuf::BoolValue;
        use $api::util::pack_any;

        let hcm = HttpConnectionManager {
            stat_prefix: "outbound_0.0.0.0_9080".into(),
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                config_source: Some(ConfigSource {
                    resource_api_version: ApiVersion::V3 as i32,
                    config_source_specifier: Some(ConfigSourceSpecifier::Ads(
                        AggregatedConfigSource {},
                    )),
                    ..Default::default()
                }),
                route_config_name: "9080".into(),
            })),
            http_filters: vec![HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router {
                    suppress_envoy_headers: true,
                    ..Default::default()
                }))),
                ..Default::default()
            }],
            use_remote_address: Some(BoolValue { value: false }),
            ..Default::default()
        };
        let listener = Listener {
            name: "0.0.0.0_9080".into(),
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "0.0.0.0".into(),
                    port_specifier: Some(PortSpecifier::PortValue(9080)),
                    ..Default::default()
                })),
            }),
            listener_filters: vec![ListenerFilter {
                name: "envoy.filters.listener.tls_inspector".into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                    TlsInspector::default(),
                ))),
                ..Default::default()
            }],
            filter_chains: vec![FilterChain {
                filter_chain_match: Some(FilterChainMatch {
                    application_protocols: vec!["http/1.1".into(), "h2c".into()],
                    ..Default::default()
                }),
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        DiscoveryResponse {
            version_info: "7".into(),
            resources: vec![pack_any(listener)],
            type_url: Listener::type_url(),
            nonce: "n-7".into(),
            ..Default::default()
        }
    }};
}

#[test]
fn cluster_encodes_as_envoy_types_does() {
    use weft_envoy_api::pb::envoy::config::cluster::v3::Cluster;
    use weft_envoy_api::pb::envoy::config::core::v3::transport_socket::ConfigType;
    use weft_envoy_api::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    use weft_envoy_api::pb::google::protobuf::value::Kind;

    let ours = cluster!(weft_envoy_api);
    let theirs = cluster!(envoy_types);
    let bytes = ours.encode_to_vec();
    assert_eq!(bytes, theirs.encode_to_vec());

    // Well-formed: decodes back, by this crate and by envoy-types.
    let decoded = Cluster::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, ours);
    let cross =
        envoy_types::pb::envoy::config::cluster::v3::Cluster::decode(bytes.as_slice()).unwrap();
    assert_eq!(cross, theirs);

    // The packed configs carry Envoy's type URLs and unpack.
    let Some(ConfigType::TypedConfig(tls)) = decoded
        .transport_socket
        .and_then(|socket| socket.config_type)
    else {
        panic!("no typed transport socket config");
    };
    assert_eq!(
        tls.type_url,
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    let tls = UpstreamTlsContext::decode(tls.value.as_slice()).unwrap();
    assert_eq!(
        tls.sni,
        "outbound_.9080_._.reviews.default.svc.cluster.local"
    );
    let options = &decoded.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options.type_url,
        "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    );
    let istio = &decoded.metadata.unwrap().filter_metadata["istio"];
    assert_eq!(
        istio.fields["services"].kind,
        Some(Kind::StringValue(
            "reviews.default.svc.cluster.local".into()
        ))
    );
}

#[test]
fn discovery_response_encodes_as_envoy_types_does() {
    use weft_envoy_api::pb::envoy::config::listener::v3::Listener;
    use weft_envoy_api::pb::envoy::service::discovery::v3::DiscoveryResponse;

    let ours = lds_response!(weft_envoy_api);
    let theirs = lds_response!(envoy_types);
    let bytes = ours.encode_to_vec();
    assert_eq!(bytes, theirs.encode_to_vec());

    let decoded = DiscoveryResponse::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        decoded.type_url,
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    );
    let listener = Listener::decode(decoded.resources[0].value.as_slice()).unwrap();
    assert_eq!(listener.name, "0.0.0.0_9080");
}

/// `Name` agrees with envoy-types for the types Weft names in an `Any` or
/// a discovery request, and across the packages of the vendored set.
#[test]
fn type_urls_match_envoy_types() {
    macro_rules! same_name {
        ($($($segment:ident)::+),+ $(,)?) => {$({
            use weft_envoy_api::pb::$($segment)::+ as Ours;
            use envoy_types::pb::$($segment)::+ as Theirs;
            assert_eq!(Ours::type_url(), Theirs::type_url());
            assert_eq!(Ours::full_name(), Theirs::full_name());
            assert!(Ours::type_url().starts_with("type.googleapis.com/"));
        })+};
    }
    same_name!(
        envoy::admin::v3::ConfigDump,
        envoy::admin::v3::ClustersConfigDump,
        envoy::admin::v3::ListenersConfigDump,
        envoy::admin::v3::RoutesConfigDump,
        envoy::admin::v3::EndpointsConfigDump,
        envoy::admin::v3::SecretsConfigDump,
        envoy::config::accesslog::v3::AccessLog,
        envoy::config::cluster::v3::Cluster,
        envoy::config::cluster::v3::cluster::CommonLbConfig,
        envoy::config::endpoint::v3::ClusterLoadAssignment,
        envoy::config::listener::v3::Listener,
        envoy::config::ratelimit::v3::RateLimitServiceConfig,
        envoy::config::rbac::v3::Rbac,
        envoy::config::route::v3::RouteConfiguration,
        envoy::extensions::access_loggers::file::v3::FileAccessLog,
        envoy::extensions::access_loggers::stats::v3::Config,
        envoy::extensions::access_loggers::stream::v3::StdoutAccessLog,
        envoy::extensions::common::ratelimit::v3::RateLimitDescriptor,
        envoy::extensions::filters::common::fault::v3::FaultDelay,
        envoy::extensions::filters::http::cors::v3::Cors,
        envoy::extensions::filters::http::cors::v3::CorsPolicy,
        envoy::extensions::filters::http::fault::v3::HttpFault,
        envoy::extensions::filters::http::jwt_authn::v3::JwtAuthentication,
        envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit,
        envoy::extensions::filters::http::ratelimit::v3::RateLimit,
        envoy::extensions::filters::http::rbac::v3::Rbac,
        envoy::extensions::filters::http::router::v3::Router,
        envoy::extensions::filters::listener::http_inspector::v3::HttpInspector,
        envoy::extensions::filters::listener::original_dst::v3::OriginalDst,
        envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector,
        envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager,
        envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy,
        envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate,
        envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig,
        envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer,
        envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext,
        envoy::extensions::transport_sockets::tls::v3::Secret,
        envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext,
        envoy::extensions::upstreams::http::v3::HttpProtocolOptions,
        envoy::r#type::matcher::v3::StringMatcher,
        envoy::r#type::v3::FractionalPercent,
        envoy::service::discovery::v3::DeltaDiscoveryRequest,
        envoy::service::discovery::v3::DeltaDiscoveryResponse,
        envoy::service::discovery::v3::DiscoveryRequest,
        envoy::service::discovery::v3::DiscoveryResponse,
        envoy::service::discovery::v3::Resource,
        envoy::service::ratelimit::v3::RateLimitRequest,
        envoy::service::ratelimit::v3::RateLimitResponse,
        google::protobuf::Any,
        google::protobuf::Duration,
        google::protobuf::Struct,
        google::protobuf::UInt32Value,
        google::rpc::Status,
        xds::core::v3::TypedExtensionConfig,
    );
    assert_eq!(
        <weft_envoy_api::pb::envoy::config::cluster::v3::Cluster as Name>::type_url(),
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    );
}
