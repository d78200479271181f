//! Envoy's `DownstreamTlsContext` for a gateway server that terminates TLS
//! (modes SIMPLE, MUTUAL, OPTIONAL_MUTUAL), from files on the proxy's disk.

use weft_envoy_api::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use weft_envoy_api::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, TlsCertificate,
    TlsParameters, common_tls_context::ValidationContextType, tls_parameters::TlsProtocol,
};
use weft_envoy_api::pb::google::protobuf::BoolValue;
use weft_envoy_api::util::pack_any;

use super::upstream_tls::{file, san_matcher};
use weft_model::{TlsTermination, TlsVersion};

/// The transport socket of a terminating filter chain. `alpn` lists the
/// protocols offered (`h2`, `http/1.1` for HTTPS; none for TLS).
pub(super) fn build_transport_socket(tls: &TlsTermination, alpn: &[&str]) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(
            build_downstream_tls_context(tls, alpn),
        ))),
    }
}

pub(super) fn build_downstream_tls_context(
    tls: &TlsTermination,
    alpn: &[&str],
) -> DownstreamTlsContext {
    let validation = tls.client_ca_file.as_ref().map(|ca| {
        ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(file(ca)),
            crl: tls.crl_file.as_deref().map(file),
            verify_certificate_spki: tls.verify_certificate_spki.clone(),
            verify_certificate_hash: tls.verify_certificate_hash.clone(),
            match_typed_subject_alt_names: tls
                .subject_alt_names
                .iter()
                .map(|san| san_matcher(san))
                .collect(),
            ..Default::default()
        })
    });
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(TlsParameters {
                tls_minimum_protocol_version: protocol(Some(tls.min_version)) as i32,
                tls_maximum_protocol_version: protocol(tls.max_version) as i32,
                cipher_suites: tls.cipher_suites.clone(),
                ..Default::default()
            }),
            tls_certificates: vec![TlsCertificate {
                certificate_chain: Some(file(&tls.certificate_file)),
                private_key: Some(file(&tls.private_key_file)),
                ..Default::default()
            }],
            alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            validation_context_type: validation,
            ..Default::default()
        }),
        require_client_certificate: tls.client_ca_file.is_some().then_some(BoolValue {
            value: tls.require_client_certificate,
        }),
        ..Default::default()
    }
}

fn protocol(version: Option<TlsVersion>) -> TlsProtocol {
    match version {
        None => TlsProtocol::TlsAuto,
        Some(TlsVersion::V1_0) => TlsProtocol::TlSv10,
        Some(TlsVersion::V1_1) => TlsProtocol::TlSv11,
        Some(TlsVersion::V1_2) => TlsProtocol::TlSv12,
        Some(TlsVersion::V1_3) => TlsProtocol::TlSv13,
    }
}
