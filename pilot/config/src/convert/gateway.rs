//! Gateway -> model.

use std::collections::BTreeSet;
use std::net::IpAddr;

use weft_crds::{GatewaySpec, Server, ServerTlsMode, ServerTlsSettings, TlsProtocol};

use super::{Errors, port_number};
use crate::{ErrorReason, FieldError};
use weft_model::{
    Gateway, GatewayServer, HostSelector, NamespaceSelector, Protocol, ResourceId, ServerTls,
    TlsTermination, TlsVersion,
};

pub(super) fn convert(id: &ResourceId, spec: &GatewaySpec, errors: &mut Errors) -> Gateway {
    if spec.servers.is_empty() {
        errors.push("spec.servers", "at least one server is required");
    }
    let mut servers: Vec<GatewayServer> = Vec::new();
    for (i, s) in spec.servers.iter().enumerate() {
        let path = format!("spec.servers[{i}]");
        let Some(converted) = server(&path, s, &id.namespace, errors) else {
            continue;
        };
        let same_port = servers.iter().find(|other| {
            other.listen_port == converted.listen_port && other.bind == converted.bind
        });
        if let Some(other) = same_port
            && port_family(other) != port_family(&converted)
        {
            errors.push(
                format!("{path}.port"),
                format!(
                    "port {} is already used by a {} server of this Gateway; servers may share a port only when all are plain HTTP, or all are HTTPS / TLS (told apart by SNI)",
                    converted.listen_port,
                    port_family(other)
                ),
            );
            continue;
        }
        if let Some(other) = same_port
            && port_family(&converted) == "plain TCP"
        {
            errors.push(
                format!("{path}.port"),
                format!(
                    "port {} is already used by another TCP server of this Gateway (port {}); TCP servers cannot share a port",
                    converted.listen_port, other.port
                ),
            );
            continue;
        }
        servers.push(converted);
    }
    let mut names = BTreeSet::new();
    for (i, s) in spec.servers.iter().enumerate() {
        if let Some(name) = s.name.as_deref().filter(|n| !n.is_empty())
            && !names.insert(name)
        {
            errors.push(
                format!("spec.servers[{i}].name"),
                format!("server name {name:?} is used twice; names must be unique"),
            );
        }
    }
    Gateway {
        id: id.clone(),
        selector: spec.selector.clone(),
        servers,
    }
}

/// Which servers can share a listener.
fn port_family(server: &GatewayServer) -> &'static str {
    match (&server.tls, server.protocol) {
        (None, p) if p.is_http() => "plain HTTP",
        (Some(_), _) => "HTTPS / TLS",
        (None, _) => "plain TCP",
    }
}

fn server(path: &str, s: &Server, namespace: &str, errors: &mut Errors) -> Option<GatewayServer> {
    if s.default_endpoint.is_some() {
        errors.unsupported(format!("{path}.defaultEndpoint"));
    }
    let Some(port) = &s.port else {
        errors.push(format!("{path}.port"), "a port is required");
        return None;
    };
    let number = port_number(&format!("{path}.port.number"), port.number, errors)?;
    let listen_port = match port.target_port {
        Some(target) => port_number(&format!("{path}.port.targetPort"), target, errors)?,
        None => number,
    };
    let protocol_name = port.protocol.as_deref().unwrap_or_default();
    let protocol = Protocol::parse(protocol_name);
    if protocol_name.is_empty() {
        errors.push(
            format!("{path}.port.protocol"),
            "a protocol is required (HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS)",
        );
    } else if protocol == Protocol::Unknown {
        errors.push(
            format!("{path}.port.protocol"),
            format!("unknown protocol {protocol_name:?}; use HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS"),
        );
    }
    let bind = s.bind.as_deref().filter(|b| !b.is_empty()).and_then(|b| {
        if b.starts_with("unix://") {
            errors.unsupported(format!("{path}.bind"));
            None
        } else if b.parse::<IpAddr>().is_err() {
            errors.push(
                format!("{path}.bind"),
                format!("{b:?} is not an IP address"),
            );
            None
        } else {
            Some(b.to_string())
        }
    });
    if s.hosts.is_empty() {
        errors.push(format!("{path}.hosts"), "at least one host is required");
    }
    let hosts = s
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(k, h)| {
            host_selector(&format!("{path}.hosts[{k}]"), h, namespace, false, errors)
        })
        .collect();
    let (tls, https_redirect) = server_tls(path, s.tls.as_ref(), protocol, errors);
    Some(GatewayServer {
        port: number,
        listen_port,
        port_name: port.name.clone().unwrap_or_default(),
        protocol,
        bind,
        hosts,
        tls,
        https_redirect,
        name: s.name.clone().filter(|n| !n.is_empty()),
    })
}

/// Parses `[namespace/]dnsName`: `*/` (or none) any namespace, `./` the
/// resource's own, `~/` none (Sidecar only).
pub(super) fn host_selector(
    path: &str,
    text: &str,
    own_namespace: &str,
    allow_nowhere: bool,
    errors: &mut Errors,
) -> Option<HostSelector> {
    let (namespace, host) = match text.split_once('/') {
        None => (NamespaceSelector::Any, text),
        Some(("*", host)) => (NamespaceSelector::Any, host),
        Some((".", host)) => (NamespaceSelector::Named(own_namespace.to_string()), host),
        Some(("~", host)) if allow_nowhere => (NamespaceSelector::Nowhere, host),
        Some((ns, host)) if is_dns_label(ns) => (NamespaceSelector::Named(ns.to_string()), host),
        Some((ns, _)) => {
            errors.push(
                path,
                format!(
                    "{ns:?} is not a namespace; use a namespace name, `*` or `.`{}",
                    if allow_nowhere { " or `~`" } else { "" }
                ),
            );
            return None;
        }
    };
    let host = host.to_ascii_lowercase();
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let valid = host == "*"
        || (!name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if !valid {
        errors.push(
            path,
            format!("{host:?} is not a host: use a DNS name, `*.suffix` or `*`"),
        );
        return None;
    }
    Some(HostSelector { namespace, host })
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The server's TLS handling and whether plain HTTP is redirected.
fn server_tls(
    path: &str,
    tls: Option<&ServerTlsSettings>,
    protocol: Protocol,
    errors: &mut Errors,
) -> (Option<ServerTls>, bool) {
    let path = format!("{path}.tls");
    let secure = matches!(protocol, Protocol::Https | Protocol::Tls);
    let Some(tls) = tls else {
        if secure {
            errors.push(
                &path,
                "HTTPS and TLS servers need tls settings (mode, and certificates to terminate)",
            );
        }
        return (None, false);
    };
    let https_redirect = tls.https_redirect.unwrap_or(false);
    if !secure {
        if https_redirect && !protocol.is_http() {
            errors.push(
                format!("{path}.httpsRedirect"),
                "httpsRedirect applies to HTTP servers only",
            );
        }
        let set = [
            ("mode", tls.mode.is_some()),
            ("serverCertificate", tls.server_certificate.is_some()),
            ("privateKey", tls.private_key.is_some()),
            ("caCertificates", tls.ca_certificates.is_some()),
            ("credentialName", tls.credential_name.is_some()),
        ];
        for (field, present) in set {
            if present {
                errors.push(
                    format!("{path}.{field}"),
                    "TLS settings apply to HTTPS and TLS servers only; set port.protocol to HTTPS or TLS",
                );
            }
        }
        return (None, https_redirect);
    }
    if https_redirect {
        errors.push(
            format!("{path}.httpsRedirect"),
            "httpsRedirect applies to plain HTTP servers; remove it from this HTTPS/TLS server",
        );
    }
    if tls.credential_name.is_some() {
        unsupported_because(
            errors,
            format!("{path}.credentialName"),
            "credentialName needs the Kubernetes operator (certificates from Secrets); in standalone mode use serverCertificate and privateKey files",
        );
    }
    if !tls.credential_names.is_empty() {
        unsupported_because(
            errors,
            format!("{path}.credentialNames"),
            "credentialNames needs the Kubernetes operator (certificates from Secrets); in standalone mode use serverCertificate and privateKey files",
        );
    }
    if !tls.tls_certificates.is_empty() {
        errors.unsupported(format!("{path}.tlsCertificates"));
    }
    let mode = tls.mode.unwrap_or_default();
    let file = |field: &str, value: &Option<String>, errors: &mut Errors| -> Option<String> {
        match value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => Some(v.to_string()),
            None => {
                errors.push(
                    format!("{path}.{field}"),
                    format!("required with mode {}", mode_name(mode)),
                );
                None
            }
        }
    };
    match mode {
        ServerTlsMode::Passthrough => {
            let extra = [
                ("serverCertificate", tls.server_certificate.is_some()),
                ("privateKey", tls.private_key.is_some()),
                ("caCertificates", tls.ca_certificates.is_some()),
                ("caCrl", tls.ca_crl.is_some()),
                ("subjectAltNames", !tls.subject_alt_names.is_empty()),
                ("minProtocolVersion", tls.min_protocol_version.is_some()),
                ("maxProtocolVersion", tls.max_protocol_version.is_some()),
                ("cipherSuites", !tls.cipher_suites.is_empty()),
            ];
            for (field, present) in extra {
                if present {
                    errors.push(
                        format!("{path}.{field}"),
                        "PASSTHROUGH does not terminate TLS, so this has no effect; remove it or use SIMPLE / MUTUAL",
                    );
                }
            }
            (Some(ServerTls::Passthrough), false)
        }
        ServerTlsMode::AutoPassthrough => {
            unsupported_because(
                errors,
                format!("{path}.mode"),
                "AUTO_PASSTHROUGH routes by SNI-encoded mesh cluster names and needs mesh mTLS, which Weft does not have yet; not supported by Weft yet (use PASSTHROUGH with VirtualService tls rules)",
            );
            (None, false)
        }
        ServerTlsMode::IstioMutual => {
            unsupported_because(
                errors,
                format!("{path}.mode"),
                "ISTIO_MUTUAL needs the gateway's mesh certificate from Weft's CA, which is not available yet; not supported by Weft yet (use MUTUAL with certificate files)",
            );
            (None, false)
        }
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual => {
            let mutual = mode != ServerTlsMode::Simple;
            let certificate_file = file("serverCertificate", &tls.server_certificate, errors);
            let private_key_file = file("privateKey", &tls.private_key, errors);
            let client_ca_file = if mutual {
                file("caCertificates", &tls.ca_certificates, errors)
            } else {
                if tls.ca_certificates.is_some() {
                    errors.push(
                        format!("{path}.caCertificates"),
                        "SIMPLE does not ask for client certificates; use MUTUAL or OPTIONAL_MUTUAL to verify them",
                    );
                }
                None
            };
            if !mutual {
                let client_checks = [
                    ("caCrl", tls.ca_crl.is_some()),
                    ("subjectAltNames", !tls.subject_alt_names.is_empty()),
                    (
                        "verifyCertificateSpki",
                        !tls.verify_certificate_spki.is_empty(),
                    ),
                    (
                        "verifyCertificateHash",
                        !tls.verify_certificate_hash.is_empty(),
                    ),
                ];
                for (field, present) in client_checks {
                    if present {
                        errors.push(
                            format!("{path}.{field}"),
                            "verifies client certificates, which SIMPLE does not ask for; use MUTUAL or OPTIONAL_MUTUAL",
                        );
                    }
                }
            }
            let min_version = tls
                .min_protocol_version
                .and_then(tls_version)
                .unwrap_or(TlsVersion::V1_2);
            let max_version = tls.max_protocol_version.and_then(tls_version);
            if max_version.is_some_and(|max| max < min_version) {
                errors.push(
                    format!("{path}.maxProtocolVersion"),
                    "is below minProtocolVersion (TLS 1.2 when unset)",
                );
            }
            for (k, cipher) in tls.cipher_suites.iter().enumerate() {
                if cipher.is_empty()
                    || !cipher
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    errors.push(
                        format!("{path}.cipherSuites[{k}]"),
                        format!("{cipher:?} is not a cipher suite name"),
                    );
                }
            }
            let termination = TlsTermination {
                certificate_file: certificate_file.unwrap_or_default(),
                private_key_file: private_key_file.unwrap_or_default(),
                client_ca_file,
                require_client_certificate: mode == ServerTlsMode::Mutual,
                crl_file: tls.ca_crl.clone().filter(|c| !c.is_empty()),
                subject_alt_names: tls.subject_alt_names.clone(),
                verify_certificate_spki: tls.verify_certificate_spki.clone(),
                verify_certificate_hash: tls.verify_certificate_hash.clone(),
                min_version,
                max_version,
                cipher_suites: tls.cipher_suites.clone(),
            };
            (Some(ServerTls::Terminate(termination)), false)
        }
    }
}

fn tls_version(p: TlsProtocol) -> Option<TlsVersion> {
    match p {
        TlsProtocol::TlsAuto => None,
        TlsProtocol::TlsV1_0 => Some(TlsVersion::V1_0),
        TlsProtocol::TlsV1_1 => Some(TlsVersion::V1_1),
        TlsProtocol::TlsV1_2 => Some(TlsVersion::V1_2),
        TlsProtocol::TlsV1_3 => Some(TlsVersion::V1_3),
    }
}

fn mode_name(mode: ServerTlsMode) -> &'static str {
    match mode {
        ServerTlsMode::Passthrough => "PASSTHROUGH",
        ServerTlsMode::Simple => "SIMPLE",
        ServerTlsMode::Mutual => "MUTUAL",
        ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
        ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
        ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
    }
}

/// Valid Istio that Weft cannot translate yet, with the reason and what to
/// do instead.
pub(super) fn unsupported_because(
    errors: &mut Errors,
    field: impl Into<String>,
    message: impl Into<String>,
) {
    errors
        .0
        .push(FieldError::new(ErrorReason::Unsupported, field, message));
}
