//! A Gateway server's `tls` block -> how the server handles TLS.
//!
//! HTTPS and TLS servers terminate TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL,
//! with certificate files) or pass it through (PASSTHROUGH). Certificates
//! from Kubernetes Secrets (`credentialName(s)`), AUTO_PASSTHROUGH and
//! ISTIO_MUTUAL are not supported yet. Plain servers take `httpsRedirect`
//! only.

use weft_crds::{ServerTlsMode, ServerTlsSettings, TlsProtocol};

use super::super::Errors;
use weft_model::{Protocol, ServerTls, TlsTermination, TlsVersion};

/// What a server's `tls` block makes of it.
#[derive(Debug, Default)]
pub(super) struct TlsHandling {
    /// How an HTTPS or TLS server handles TLS: terminated or passed
    /// through. `None` for plain servers, and when the settings are bad.
    pub(super) tls: Option<ServerTls>,
    /// Whether a plain HTTP server redirects every request to HTTPS.
    pub(super) https_redirect: bool,
}

/// The server's TLS handling and whether plain HTTP is redirected.
pub(super) fn server_tls(
    path: &str,
    tls: Option<&ServerTlsSettings>,
    protocol: Protocol,
    errors: &mut Errors,
) -> TlsHandling {
    let path = format!("{path}.tls");
    let secure = matches!(protocol, Protocol::Https | Protocol::Tls);
    let Some(tls) = tls else {
        if secure {
            errors.push(
                &path,
                "HTTPS and TLS servers need tls settings (mode, and certificates to terminate)",
            );
        }
        return TlsHandling::default();
    };
    if !secure {
        return plain_server(&path, tls, protocol, errors);
    }
    if tls.https_redirect.unwrap_or(false) {
        errors.push(
            format!("{path}.httpsRedirect"),
            "httpsRedirect applies to plain HTTP servers; remove it from this HTTPS/TLS server",
        );
    }
    check_secrets(&path, tls, errors);
    let mode = tls.mode.unwrap_or_default();
    let tls = match mode {
        ServerTlsMode::Passthrough => Some(passthrough(&path, tls, errors)),
        ServerTlsMode::AutoPassthrough => {
            errors.unsupported_because(
                format!("{path}.mode"),
                "AUTO_PASSTHROUGH routes by SNI-encoded mesh cluster names and needs mesh mTLS, which Weft does not have yet; not supported by Weft yet (use PASSTHROUGH with VirtualService tls rules)",
            );
            None
        }
        ServerTlsMode::IstioMutual => {
            errors.unsupported_because(
                format!("{path}.mode"),
                "ISTIO_MUTUAL needs the gateway's mesh certificate from Weft's CA, which is not available yet; not supported by Weft yet (use MUTUAL with certificate files)",
            );
            None
        }
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual => {
            Some(ServerTls::Terminate(termination(&path, tls, mode, errors)))
        }
    };
    TlsHandling {
        tls,
        https_redirect: false,
    }
}

/// A plain server's `tls`: only `httpsRedirect` (on HTTP) applies.
fn plain_server(
    path: &str,
    tls: &ServerTlsSettings,
    protocol: Protocol,
    errors: &mut Errors,
) -> TlsHandling {
    let https_redirect = tls.https_redirect.unwrap_or(false);
    if https_redirect && !protocol.is_http() {
        errors.push(
            format!("{path}.httpsRedirect"),
            "httpsRedirect applies to HTTP servers only",
        );
    }
    errors.push_each_set(
        path,
        &[
            ("mode", tls.mode.is_some()),
            ("serverCertificate", tls.server_certificate.is_some()),
            ("privateKey", tls.private_key.is_some()),
            ("caCertificates", tls.ca_certificates.is_some()),
            ("credentialName", tls.credential_name.is_some()),
        ],
        "TLS settings apply to HTTPS and TLS servers only; set port.protocol to HTTPS or TLS",
    );
    TlsHandling {
        tls: None,
        https_redirect,
    }
}

/// Certificates Weft cannot read yet: from Kubernetes Secrets, or several.
fn check_secrets(path: &str, tls: &ServerTlsSettings, errors: &mut Errors) {
    if tls.credential_name.is_some() {
        errors.unsupported_because(
            format!("{path}.credentialName"),
            "credentialName needs the Kubernetes operator (certificates from Secrets); in standalone mode use serverCertificate and privateKey files",
        );
    }
    if !tls.credential_names.is_empty() {
        errors.unsupported_because(
            format!("{path}.credentialNames"),
            "credentialNames needs the Kubernetes operator (certificates from Secrets); in standalone mode use serverCertificate and privateKey files",
        );
    }
    if !tls.tls_certificates.is_empty() {
        errors.unsupported(format!("{path}.tlsCertificates"));
    }
}

/// PASSTHROUGH: every setting for terminating TLS is an error.
fn passthrough(path: &str, tls: &ServerTlsSettings, errors: &mut Errors) -> ServerTls {
    errors.push_each_set(
        path,
        &[
            ("serverCertificate", tls.server_certificate.is_some()),
            ("privateKey", tls.private_key.is_some()),
            ("caCertificates", tls.ca_certificates.is_some()),
            ("caCrl", tls.ca_crl.is_some()),
            ("subjectAltNames", !tls.subject_alt_names.is_empty()),
            ("minProtocolVersion", tls.min_protocol_version.is_some()),
            ("maxProtocolVersion", tls.max_protocol_version.is_some()),
            ("cipherSuites", !tls.cipher_suites.is_empty()),
        ],
        "PASSTHROUGH does not terminate TLS, so this has no effect; remove it or use SIMPLE / MUTUAL",
    );
    ServerTls::Passthrough
}

/// SIMPLE, MUTUAL or OPTIONAL_MUTUAL: the files, the client checks
/// (mutual modes only), protocol versions and cipher suites.
fn termination(
    path: &str,
    tls: &ServerTlsSettings,
    mode: ServerTlsMode,
    errors: &mut Errors,
) -> TlsTermination {
    let mutual = mode != ServerTlsMode::Simple;
    let file = |field: &str, value: &Option<String>, errors: &mut Errors| {
        required_file(path, field, value, mode, errors)
    };
    let certificate_file = file("serverCertificate", &tls.server_certificate, errors);
    let private_key_file = file("privateKey", &tls.private_key, errors);
    let client_ca_file = if mutual {
        file("caCertificates", &tls.ca_certificates, errors)
    } else {
        check_simple_client_settings(path, tls, errors);
        None
    };
    let (min_version, max_version) = protocol_versions(path, tls, errors);
    check_cipher_suites(path, &tls.cipher_suites, errors);
    TlsTermination {
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
    }
}

/// A file path `mode` needs.
fn required_file(
    path: &str,
    field: &str,
    value: &Option<String>,
    mode: ServerTlsMode,
    errors: &mut Errors,
) -> Option<String> {
    let file = value.as_deref().filter(|v| !v.is_empty());
    if file.is_none() {
        errors.push(
            format!("{path}.{field}"),
            format!("required with mode {}", mode_name(mode)),
        );
    }
    file.map(str::to_string)
}

/// SIMPLE does not ask for client certificates, so settings that verify
/// them are errors.
fn check_simple_client_settings(path: &str, tls: &ServerTlsSettings, errors: &mut Errors) {
    if tls.ca_certificates.is_some() {
        errors.push(
            format!("{path}.caCertificates"),
            "SIMPLE does not ask for client certificates; use MUTUAL or OPTIONAL_MUTUAL to verify them",
        );
    }
    errors.push_each_set(
        path,
        &[
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
        ],
        "verifies client certificates, which SIMPLE does not ask for; use MUTUAL or OPTIONAL_MUTUAL",
    );
}

/// The lowest TLS version (1.2 when unset) and the highest, if set.
fn protocol_versions(
    path: &str,
    tls: &ServerTlsSettings,
    errors: &mut Errors,
) -> (TlsVersion, Option<TlsVersion>) {
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
    (min_version, max_version)
}

fn check_cipher_suites(path: &str, cipher_suites: &[String], errors: &mut Errors) {
    for (k, cipher) in cipher_suites.iter().enumerate() {
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
