//! `Gateway` (networking.istio.io): a load balancer at the edge of the mesh
//! (ingress or egress): the ports it listens on, the hosts it exposes, and
//! how it terminates TLS. Field names follow Istio's `gateway.proto`
//! (networking v1, shared by v1alpha3 / v1beta1).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `spec` of a Gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
// The repeated `category` / `printcolumn` keys are kube's syntax, not a mistake.
#[allow(clippy::duplicated_attributes)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "networking.istio.io",
        version = "v1",
        kind = "Gateway",
        namespaced,
        status = "crate::status::ResourceStatus",
        derive = "PartialEq",
        shortname = "gw",
        category = "istio-io",
        category = "networking-istio-io",
        doc = "Istio Gateway: a load balancer at the edge of the mesh.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status",
            description = "Whether proxies are served this object's current spec"
        ),
        printcolumn(
            name = "Reason",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
            description = "Why the object is or is not served",
            priority = "1"
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp",
            description = "Time since the object was created"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The servers (ports) of the gateway; required by Istio.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels of the gateway workloads (proxies) this applies to, in the
    /// Gateway's namespace (Istio: any namespace, by default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// Istio's `Server`: one port of a gateway and what it exposes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// The port the proxy listens on; required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// IP (or `unix://` socket) the listener binds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Hosts exposed, as `[namespace/]dnsName` (`*` and `*.suffix` allowed);
    /// required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// TLS settings of the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Where traffic goes by default (not implemented by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// Optional server name, unique across the gateway's servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Istio's `Port` (of a gateway server).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port number.
    pub number: u32,
    /// HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP or TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated: the port on the endpoint (ServiceEntries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Istio's `ServerTLSSettings`: TLS on a gateway (or sidecar ingress) port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerTlsSettings {
    /// Answer plain HTTP with a 301 to HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// TLS mode; `PASSTHROUGH` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerTlsMode>,
    /// Server certificate file (`SIMPLE`, `MUTUAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Server private key file (`SIMPLE`, `MUTUAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA bundle file to verify client certificates (`MUTUAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Certificate revocation list file for client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// Secret holding the certificate, key (and CA) on Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Several secrets (e.g. an RSA and an ECDSA certificate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// Several certificate files (e.g. an RSA and an ECDSA certificate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Accepted subject alternative names of client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Base64 SHA-256 hashes of accepted client certificates' SPKIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Hex SHA-256 hashes of accepted client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS version (Istio's default: TLS 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TlsProtocol>,
    /// Maximum TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TlsProtocol>,
    /// Cipher suites to offer (TLS 1.2 and below); Envoy's when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

/// Istio's `ServerTLSSettings.TLSCertificate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificate {
    /// Server certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Server private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA bundle file to verify client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// Istio's `ServerTLSSettings.TLSmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Do not terminate; route by SNI with VirtualService `tls` rules.
    #[default]
    Passthrough,
    /// Terminate TLS with the given certificate.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Route by SNI-encoded cluster names, no VirtualService needed.
    AutoPassthrough,
    /// Mutual TLS with the gateway's mesh workload certificate.
    IstioMutual,
    /// Like `MUTUAL`, but a client certificate is optional.
    OptionalMutual,
}

/// Istio's `ServerTLSSettings.TLSProtocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TlsProtocol {
    /// Let the proxy choose.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}
