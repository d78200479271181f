//! `Telemetry` (telemetry.istio.io, served as `v1alpha1` and `v1` with one
//! schema, stored as `v1`): what a workload's proxy reports — metrics,
//! access logs and traces — and to which providers of the mesh config.
//! Field names follow Istio's `telemetry/v1/telemetry.proto`. Same
//! conventions as [`crate::networking`]: plain serde + schemars specs,
//! camelCase on the wire, unknown fields ignored, a proto `oneof` kept as
//! sibling `Option`s (weft-config checks that one is set), and with the
//! `kube` feature the `CustomResource` root type.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::IstioDuration;
use crate::networking::WorkloadLabelSelector;
use crate::security::PolicyTargetReference;

/// The API group of Telemetry.
pub const TELEMETRY_GROUP: &str = "telemetry.istio.io";
/// Versions of [`TELEMETRY_GROUP`] that are served; both share one schema.
pub const TELEMETRY_SERVED_VERSIONS: [&str; 2] = ["v1alpha1", "v1"];

/// The `spec` of a Telemetry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
// The repeated `category` / `printcolumn` keys are kube's syntax, not a mistake.
#[allow(clippy::duplicated_attributes)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "telemetry.istio.io",
        version = "v1",
        kind = "Telemetry",
        plural = "telemetries",
        namespaced,
        status = "crate::status::ResourceStatus",
        derive = "PartialEq",
        shortname = "telemetry",
        category = "istio-io",
        category = "telemetry-istio-io",
        doc = "Istio Telemetry: the metrics, access logs and traces a workload's proxy reports.",
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
pub struct TelemetrySpec {
    /// Workloads (in this namespace) this applies to; none means the whole
    /// namespace (the whole mesh in the root namespace). Not with
    /// `targetRef(s)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadLabelSelector>,
    /// One Gateway API target (Istio's hidden, older form of `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateway API targets: Kubernetes Gateways of this namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Tracing rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<TelemetryTracing>,
    /// Metrics rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<TelemetryMetrics>,
    /// Access logging rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<TelemetryAccessLogging>,
}

/// Istio's `WorkloadMode`: which side of a call a rule is about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    /// Both: the workload as the caller and as the called.
    #[default]
    ClientAndServer,
    /// The workload as the caller (outbound).
    Client,
    /// The workload as the called (inbound).
    Server,
}

/// Istio's `ProviderRef`: a provider of the mesh config's
/// `extensionProviders`, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// The provider's name.
    #[serde(default)]
    pub name: String,
}

/// Istio's `Tracing`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryTracing {
    /// Which side of a call the rule is about.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<ModeSelector>,
    /// The tracer (one at most); the mesh's default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Percent of requests sampled when no decision was made upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    /// Spans are neither sampled nor sent (context still propagates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    /// Tags added to every span, by tag name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, TracingCustomTag>,
    /// Whether Envoy samples by the request id (Istio's hidden field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_request_id_for_trace_sampling: Option<bool>,
}

/// Istio's `Tracing.TracingSelector` and `AccessLogging.LogSelector`
/// (the same message twice): which side of a call a rule is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModeSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio's `Tracing.CustomTag`: a oneof of `literal`, `environment` and
/// `header`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracingCustomTag {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<LiteralTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<RequestHeaderTag>,
}

/// Istio's `Tracing.Literal`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiteralTag {
    #[serde(default)]
    pub value: String,
}

/// Istio's `Tracing.Environment`: a variable of the proxy's environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentTag {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// Istio's `Tracing.RequestHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestHeaderTag {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// Istio's `Metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryMetrics {
    /// The metrics providers; the mesh's default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Changes to the standard metrics, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MetricsOverrides>,
    /// How often TCP metrics are reported (Istio's default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<IstioDuration>,
}

/// Istio's `MetricsOverrides`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsOverrides {
    /// Which metrics and side; every metric, both sides when unset.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetricSelector>,
    /// `true` turns the metrics off; `false` turns them back on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Label changes, by label name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// Istio's `MetricSelector`: `metric` or `customMetric` (a oneof), and
/// `mode`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<IstioMetricName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio's `MetricSelector.IstioMetric`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IstioMetricName {
    /// Every standard metric.
    #[default]
    AllMetrics,
    /// `istio_requests_total`.
    RequestCount,
    /// `istio_request_duration_milliseconds`.
    RequestDuration,
    /// `istio_request_bytes`.
    RequestSize,
    /// `istio_response_bytes`.
    ResponseSize,
    /// `istio_tcp_connections_opened_total`.
    TcpOpenedConnections,
    /// `istio_tcp_connections_closed_total`.
    TcpClosedConnections,
    /// `istio_tcp_sent_bytes_total`.
    TcpSentBytes,
    /// `istio_tcp_received_bytes_total`.
    TcpReceivedBytes,
    /// `istio_request_messages_total`.
    GrpcRequestMessages,
    /// `istio_response_messages_total`.
    GrpcResponseMessages,
}

/// Istio's `MetricsOverrides.TagOverride`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagOverride {
    /// UPSERT (the default) or REMOVE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<TagOperation>,
    /// The label's value, a CEL expression (UPSERT only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Istio's `TagOverride.Operation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagOperation {
    /// Add the label or replace its value.
    #[default]
    Upsert,
    /// Drop the label.
    Remove,
}

/// Istio's `AccessLogging`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryAccessLogging {
    /// Which side of a call the rule is about.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<ModeSelector>,
    /// The access log providers; the mesh's default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// `true` turns the providers' logs off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Which requests are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<AccessLogFilter>,
}

/// Istio's `AccessLogging.Filter`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogFilter {
    /// A CEL expression; requests for which it is true are logged.
    #[serde(default)]
    pub expression: String,
}
