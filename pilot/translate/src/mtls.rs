//! The mesh's mutual TLS pieces: SDS references to the workload certificate
//! (`default`) and the mesh root (`ROOTCA`) that the sidecar agent serves
//! on the bootstrap cluster [`SDS_CLUSTER`], and the upstream and
//! downstream TLS contexts built from them.

use weft_envoy_api::pb::envoy::config::core::v3::{
    ApiConfigSource, ApiVersion, ConfigSource, GrpcService, TransportSocket,
    api_config_source::ApiType,
    config_source::ConfigSourceSpecifier,
    grpc_service::{EnvoyGrpc, TargetSpecifier},
    transport_socket::ConfigType,
};
use weft_envoy_api::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, UpstreamTlsContext,
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    subject_alt_name_matcher::SanType,
};
use weft_envoy_api::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use weft_envoy_api::pb::google::protobuf::BoolValue;
use weft_envoy_api::util::pack_any;

use weft_envoy_api::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use weft_envoy_api::pb::envoy::config::core::v3::Metadata;
use weft_envoy_api::pb::google::protobuf::{Struct, Value, value::Kind};

use weft_model::{
    Endpoint, MeshSnapshot, MtlsMode, Service, ServicePort, effective_mtls_mode, spiffe_id,
};

/// Istio's label of a workload with a sidecar (set by injection).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// The endpoint metadata namespace Envoy's `transport_socket_matches` read.
const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";

/// The bootstrap cluster of the agent's SDS server (a Unix socket).
pub const SDS_CLUSTER: &str = "sds-grpc";
/// SDS resource: the workload's certificate chain and key.
pub const SDS_DEFAULT: &str = "default";
/// SDS resource: the mesh root certificate.
pub const SDS_ROOTCA: &str = "ROOTCA";
/// The ALPN value a mesh client offers so that a PERMISSIVE server can
/// tell mesh mTLS from other TLS (Istio's values).
pub const ISTIO_ALPN: [&str; 5] = [
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource {
                    api_type: ApiType::Grpc as i32,
                    transport_api_version: ApiVersion::V3 as i32,
                    set_node_on_first_message_only: true,
                    grpc_services: vec![GrpcService {
                        target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                            cluster_name: SDS_CLUSTER.to_string(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
    }
}

/// Certificate `default`, validation by `ROOTCA` plus `sans` (any of them).
fn mesh_common_context(sans: Vec<SubjectAltNameMatcher>, alpn: &[&str]) -> CommonTlsContext {
    CommonTlsContext {
        tls_certificate_sds_secret_configs: vec![sds(SDS_DEFAULT)],
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(sds(SDS_ROOTCA)),
                ..Default::default()
            },
        )),
        alpn_protocols: alpn.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

fn uri_san(pattern: MatchPattern) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(pattern),
            ignore_case: false,
        }),
        ..Default::default()
    }
}

/// Istio's SNI for mesh mTLS: `outbound_.PORT_.SUBSET_.HOST`.
pub(super) fn istio_sni(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound_.{port}_.{}_.{host}", subset.unwrap_or(""))
}

/// An ISTIO_MUTUAL upstream socket: the server must present one of
/// `identities` (SPIFFE URIs), or any identity of the trust domain when
/// none is known. `http2` picks the ALPN offered after Istio's marker.
pub(super) fn istio_mutual_socket(
    trust_domain: &str,
    sni: String,
    identities: &[String],
    http: Option<bool>,
) -> TransportSocket {
    let sans = if identities.is_empty() {
        vec![uri_san(MatchPattern::Prefix(format!(
            "spiffe://{trust_domain}/"
        )))]
    } else {
        identities
            .iter()
            .map(|id| uri_san(MatchPattern::Exact(id.clone())))
            .collect()
    };
    let alpn: &[&str] = match http {
        Some(true) => &["istio-h2", "istio", "h2"],
        Some(false) => &["istio-http/1.1", "istio", "http/1.1"],
        None => &["istio-peer-exchange", "istio"],
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(mesh_common_context(sans, alpn)),
        sni,
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(context))),
    }
}

/// The server side of mesh mTLS: certificate `default`, a client
/// certificate required and checked against `ROOTCA`.
pub(super) fn istio_mutual_downstream_socket(http: bool) -> TransportSocket {
    let alpn: &[&str] = if http { &["h2", "http/1.1"] } else { &[] };
    let context = DownstreamTlsContext {
        common_tls_context: Some(mesh_common_context(Vec::new(), alpn)),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(context))),
    }
}

/// Whether auto mTLS sends mesh mTLS to `endpoint` on `port`: it has a
/// sidecar (`security.istio.io/tlsMode: istio`) and its effective
/// PeerAuthentication is not DISABLE.
pub(super) fn endpoint_speaks_mtls(
    snapshot: &MeshSnapshot,
    service: &Service,
    endpoint: &Endpoint,
    port: &ServicePort,
) -> bool {
    endpoint.labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio")
        && effective_mtls_mode(
            &snapshot.peer_authentications,
            &snapshot.mesh_config.root_namespace,
            &service.namespace,
            &endpoint.labels,
            endpoint.port_for(port),
        ) != MtlsMode::Disable
}

/// The endpoint metadata that selects the mTLS socket of
/// [`auto_mtls_matches`].
pub(super) fn mtls_endpoint_metadata() -> Metadata {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        "tlsMode".to_string(),
        Value {
            kind: Some(Kind::StringValue("istio".to_string())),
        },
    );
    Metadata {
        filter_metadata: std::collections::BTreeMap::from([(
            TRANSPORT_SOCKET_MATCH.to_string(),
            Struct {
                fields: fields.into_iter().collect(),
            },
        )]),
        ..Default::default()
    }
}

/// The SPIFFE identities of `service`'s endpoints that name a service
/// account, sorted and deduplicated.
pub(super) fn service_identities(trust_domain: &str, service: &Service) -> Vec<String> {
    let mut ids: Vec<String> = service
        .endpoints
        .iter()
        .filter_map(|e| e.service_account.as_deref())
        .map(|sa| spiffe_id(trust_domain, &service.namespace, sa))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Auto mTLS: endpoints marked by [`mtls_endpoint_metadata`] get mesh
/// mTLS, every other endpoint plain text.
pub(super) fn auto_mtls_matches(
    trust_domain: &str,
    sni: String,
    identities: &[String],
    http: Option<bool>,
) -> Vec<TransportSocketMatch> {
    let mut criteria = std::collections::BTreeMap::new();
    criteria.insert(
        "tlsMode".to_string(),
        Value {
            kind: Some(Kind::StringValue("istio".to_string())),
        },
    );
    vec![
        TransportSocketMatch {
            name: "tlsMode-istio".to_string(),
            r#match: Some(Struct {
                fields: criteria.into_iter().collect(),
            }),
            transport_socket: Some(istio_mutual_socket(trust_domain, sni, identities, http)),
        },
        TransportSocketMatch {
            name: "tlsMode-disabled".to_string(),
            r#match: Some(Struct::default()),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.raw_buffer".to_string(),
                config_type: Some(ConfigType::TypedConfig(pack_any(
                    weft_envoy_api::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer::default(),
                ))),
            }),
        },
    ]
}
