//! `ServiceEntry` (networking.istio.io): adds entries to the mesh's service
//! registry, for services outside it or workloads Kubernetes does not know.
//! Field names follow Istio's `service_entry.proto` and
//! `workload_entry.proto` (networking v1, shared by v1alpha3 / v1beta1).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::WorkloadSelector;

/// The `spec` of a ServiceEntry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
// The repeated `category` / `printcolumn` keys are kube's syntax, not a mistake.
#[allow(clippy::duplicated_attributes)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "networking.istio.io",
        version = "v1",
        kind = "ServiceEntry",
        plural = "serviceentries",
        namespaced,
        status = "crate::status::ResourceStatus",
        derive = "PartialEq",
        shortname = "se",
        category = "istio-io",
        category = "networking-istio-io",
        doc = "Istio ServiceEntry: adds a service to the mesh's registry.",
        printcolumn(
            name = "Hosts",
            type_ = "string",
            json_path = ".spec.hosts",
            description = "Hosts of the service"
        ),
        printcolumn(
            name = "Location",
            type_ = "string",
            json_path = ".spec.location",
            description = "Inside or outside the mesh"
        ),
        printcolumn(
            name = "Resolution",
            type_ = "string",
            json_path = ".spec.resolution",
            description = "How endpoint addresses are resolved"
        ),
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
pub struct ServiceEntrySpec {
    /// Hosts of the service (DNS names, wildcard prefixes allowed); required
    /// by Istio.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDRs of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh; `MESH_EXTERNAL` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How the proxy finds endpoint addresses; `NONE` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Explicit endpoints. Istio allows either this or `workloadSelector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Select pods / WorkloadEntries in this namespace as endpoints
    /// (`MESH_INTERNAL` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces that may use this entry (`.` = own, `*` = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Accepted subject alternative names of the server certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// Istio's `ServicePort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port number.
    pub number: u32,
    /// Protocol: HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name.
    pub name: String,
    /// Port on the endpoints; defaults to `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Istio's `ServiceEntry.Location`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh (no mTLS, client-side policy).
    #[default]
    MeshExternal,
    /// Part of the mesh.
    MeshInternal,
}

/// Istio's `ServiceEntry.Resolution`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Forward to the address the client connected to.
    #[default]
    None,
    /// Use the endpoint addresses as given.
    Static,
    /// Resolve endpoint (or host) names with DNS, using all addresses.
    Dns,
    /// Resolve with DNS, using the first address per new connection.
    DnsRoundRobin,
    /// Resolve the requested host name dynamically (wildcard hosts).
    DynamicDns,
}

/// Istio's `WorkloadEntry`, as used in `ServiceEntry.endpoints`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// IP, DNS name or `unix://` socket path; may be empty when `network`
    /// is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Service port name -> endpoint port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// Endpoint labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Network (L3 domain) the endpoint is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Locality, `region/zone/sub_zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Load balancing weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Service account of the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}
