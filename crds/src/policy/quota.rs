//! `Quota` (policy.weft.dev/v1alpha1): how many calls a destination
//! accepts per time window, by default and per kind of caller, counted
//! by each destination instance (`Local`) or by Weft for the whole mesh
//! (`Global`). Defaults (scope Local, failureMode Open) are applied by
//! weft-config, not here.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::IstioDuration;

/// The `spec` of a Quota.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
// The repeated `category` / `printcolumn` keys are kube's syntax, not a mistake.
#[allow(clippy::duplicated_attributes)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "policy.weft.dev",
        version = "v1alpha1",
        kind = "Quota",
        namespaced,
        status = "crate::status::ResourceStatus",
        derive = "PartialEq",
        category = "weft-dev",
        category = "policy-weft-dev",
        doc = "Weft Quota: how many calls a destination accepts per window, per kind of caller.",
        printcolumn(
            name = "Host",
            type_ = "string",
            json_path = ".spec.destination.host",
            description = "The destination service"
        ),
        printcolumn(
            name = "Scope",
            type_ = "string",
            json_path = ".spec.scope",
            description = "Local (per destination instance) or Global (the whole mesh)"
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
pub struct QuotaSpec {
    /// The calls this quota counts.
    #[serde(default)]
    pub destination: QuotaDestination,
    /// Calls admitted per `validDuration` when no override matches.
    #[serde(default)]
    pub max_amount: u32,
    /// The window of `maxAmount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_duration: Option<IstioDuration>,
    /// Other amounts for some callers; the most specific match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<QuotaOverride>,
    /// Who counts: `Local` (default) or `Global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<QuotaScope>,
    /// `Global` only: what happens when Weft's quota service cannot be
    /// reached; `Open` (default) admits, `Closed` refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<QuotaFailureMode>,
}

/// The calls a Quota counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaDestination {
    /// The service host (a short name is in the Quota's namespace).
    #[serde(default)]
    pub host: String,
    /// Only calls to this service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Only calls whose path starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

/// Another amount for the callers `match` selects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaOverride {
    /// Which callers; every field given must match.
    #[serde(default, rename = "match")]
    pub match_: QuotaCallerMatch,
    /// Calls admitted per `validDuration` for these callers.
    #[serde(default)]
    pub max_amount: u32,
    /// The window of `maxAmount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_duration: Option<IstioDuration>,
}

/// The callers an override applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaCallerMatch {
    /// Labels of the calling workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// The calling workload's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// The caller's SPIFFE ID (`spiffe://cluster.local/ns/NS/sa/SA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_principal: Option<String>,
}

/// Who counts a Quota's calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum QuotaScope {
    /// Each destination instance counts its own calls.
    #[default]
    Local,
    /// Weft's quota service counts the calls of all instances.
    Global,
}

/// What a Global quota does when the quota service is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum QuotaFailureMode {
    /// Admit the call.
    #[default]
    Open,
    /// Refuse the call.
    Closed,
}
