//! `Sidecar` (networking.istio.io): narrows what a sidecar proxy receives
//! (the services it may reach) and how its inbound and outbound listeners
//! behave. Field names follow Istio's `sidecar.proto` (networking v1,
//! shared by v1alpha3 / v1beta1).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::WorkloadSelector;
use super::destination_rule::ConnectionPoolSettings;
use super::gateway::ServerTlsSettings;
use super::virtual_service::Destination;

/// The `spec` of a Sidecar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
// The repeated `category` / `printcolumn` keys are kube's syntax, not a mistake.
#[allow(clippy::duplicated_attributes)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "networking.istio.io",
        version = "v1",
        kind = "Sidecar",
        namespaced,
        status = "crate::status::ResourceStatus",
        derive = "PartialEq",
        category = "istio-io",
        category = "networking-istio-io",
        doc = "Istio Sidecar: what a sidecar proxy may reach and how it listens.",
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
pub struct SidecarSpec {
    /// Workloads (in this namespace) this applies to; none means every
    /// workload of the namespace without a more specific Sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Inbound listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    /// Outbound listeners and the hosts they expose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Connection limits for all inbound traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What happens to outbound traffic to unknown destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// Istio's `IstioIngressListener`: an inbound listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioIngressListener {
    /// The port; required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP to bind to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Where the application listens (`127.0.0.1:PORT`, `0.0.0.0:PORT`,
    /// `unix://...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// TLS termination for traffic from outside the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection limits for this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// Istio's `IstioEgressListener`: an outbound listener and its hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioEgressListener {
    /// The port; hosts' own ports when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP (or `unix://` socket) to bind to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Hosts exposed, as `namespace/dnsName` (`*`, `.`, `~` namespaces;
    /// `*` and `*.suffix` names); required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// Istio's `SidecarPort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarPort {
    /// Port number.
    #[serde(default)]
    pub number: u32,
    /// HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated, has no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Istio's `CaptureMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The environment's default.
    #[default]
    Default,
    /// iptables redirection.
    Iptables,
    /// No capture: the application connects to the listener itself.
    None,
}

/// Istio's `OutboundTrafficPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// `REGISTRY_ONLY` or `ALLOW_ANY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficMode>,
    /// Egress proxy for unknown destinations (`ALLOW_ANY` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// Istio's `OutboundTrafficPolicy.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficMode {
    /// Only registry services are reachable.
    #[default]
    RegistryOnly,
    /// Unknown destinations are passed through.
    AllowAny,
}
