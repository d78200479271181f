//! DestinationRule `tls` (DISABLE, SIMPLE, MUTUAL with files) -> an Envoy
//! upstream TLS transport socket. ISTIO_MUTUAL is [`super::mtls`]'s.

use weft_envoy_api::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source::Specifier, transport_socket::ConfigType,
};
use weft_envoy_api::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate,
    UpstreamTlsContext, common_tls_context::ValidationContextType,
    subject_alt_name_matcher::SanType,
};
use weft_envoy_api::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use weft_envoy_api::util::pack_any;

use weft_model::{ClientTls, TlsMode};

/// Where Envoy finds the OS CA bundle when `caCertificates` is not set
/// (Istio's default on Linux).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The transport socket, or `None` for plain text (no `tls`, `DISABLE`).
pub(super) fn build_transport_socket(tls: &ClientTls) -> Option<TransportSocket> {
    if tls.mode == TlsMode::Disable {
        return None;
    }
    let tls_certificates = match (&tls.client_certificate, &tls.private_key) {
        (Some(cert), Some(key)) => vec![TlsCertificate {
            certificate_chain: Some(file(cert)),
            private_key: Some(file(key)),
            ..Default::default()
        }],
        _ => Vec::new(),
    };
    let validation = (!tls.insecure_skip_verify).then(|| {
        ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(file(
                tls.ca_certificates.as_deref().unwrap_or(SYSTEM_CA_BUNDLE),
            )),
            crl: tls.ca_crl.as_deref().map(file),
            match_typed_subject_alt_names: tls
                .subject_alt_names
                .iter()
                .map(|san| san_matcher(san))
                .collect(),
            ..Default::default()
        })
    });
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates,
            validation_context_type: validation,
            ..Default::default()
        }),
        sni: tls.sni.clone().unwrap_or_default(),
        ..Default::default()
    };
    Some(TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(context))),
    })
}

/// Whether Envoy should set SNI from the request's `Host` (HTTP clusters
/// with TLS and no explicit `sni`, as Istio does).
pub(super) fn auto_sni(tls: &ClientTls) -> bool {
    !matches!(tls.mode, TlsMode::Disable | TlsMode::IstioMutual) && tls.sni.is_none()
}

/// Whether Envoy should check the server certificate against that `Host`
/// (no `subjectAltNames` given and verification on).
pub(super) fn auto_san_validation(tls: &ClientTls) -> bool {
    auto_sni(tls) && tls.subject_alt_names.is_empty() && !tls.insecure_skip_verify
}

/// A file Envoy reads (certificates, keys, CA bundles).
pub(super) fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

/// A URI SAN when the name has a scheme, an IP SAN for an address, else a
/// DNS SAN.
pub(super) fn san_matcher(san: &str) -> SubjectAltNameMatcher {
    let san_type = if san.contains("://") {
        SanType::Uri
    } else if san.parse::<std::net::IpAddr>().is_ok() {
        SanType::IpAddress
    } else {
        SanType::Dns
    };
    SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(san.to_string())),
            ignore_case: false,
        }),
        ..Default::default()
    }
}
