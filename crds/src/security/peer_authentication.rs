//! `PeerAuthentication` (security.istio.io): whether a workload's inbound
//! traffic must, may or must not be mutual TLS. Field names follow Istio's
//! `peer_authentication.proto`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::networking::WorkloadLabelSelector;

/// The `spec` of a PeerAuthentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
// The repeated `category` / `printcolumn` keys are kube's syntax, not a mistake.
#[allow(clippy::duplicated_attributes)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "security.istio.io",
        version = "v1",
        kind = "PeerAuthentication",
        namespaced,
        status = "crate::status::ResourceStatus",
        derive = "PartialEq",
        shortname = "pa",
        category = "istio-io",
        category = "security-istio-io",
        doc = "Istio PeerAuthentication: the mutual TLS mode of a workload's inbound traffic.",
        printcolumn(
            name = "Mode",
            type_ = "string",
            json_path = ".spec.mtls.mode",
            description = "Defines the mTLS mode used for peer authentication."
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
pub struct PeerAuthenticationSpec {
    /// Workloads (in this namespace) this applies to; none means the whole
    /// namespace (the whole mesh in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadLabelSelector>,
    /// The mode for every port without a `portLevelMtls` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<PeerAuthenticationMtls>,
    /// Modes by port number (the workload's port, as a string key); only
    /// with a `selector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<String, PeerAuthenticationMtls>,
}

/// Istio's `PeerAuthentication.MutualTLS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationMtls {
    /// The mode; `UNSET` inherits from the parent scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MtlsMode>,
}

/// Istio's `PeerAuthentication.MutualTLS.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the parent scope (PERMISSIVE at the top).
    #[default]
    Unset,
    /// Plain text only.
    Disable,
    /// Mutual TLS and plain text.
    Permissive,
    /// Mutual TLS only.
    Strict,
}
