//! What a proxy reports (Istio's Telemetry API), validated, and the merge
//! that gives one workload's effective metrics, access logs and tracing.
//!
//! Scoping as in Istio: the Telemetry of the root namespace without a
//! selector applies to the whole mesh, a namespace's one without a
//! selector to its namespace, and one with a `selector` (or `targetRefs`
//! naming a Kubernetes Gateway) to those workloads. They merge in that
//! order, each level overriding what it sets ([`resolve_telemetry`]).
//! Within a level the first by name wins (Istio takes the oldest).

use std::collections::{BTreeMap, BTreeSet};

use super::{FileAccessLog, MeshConfig, Provider, ResourceId};

/// The label Kubernetes Gateway deployments carry: what a `targetRefs`
/// entry of kind Gateway selects by.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// One Telemetry resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    pub id: ResourceId,
    /// `selector.matchLabels`.
    pub selector: Option<BTreeMap<String, String>>,
    /// `targetRefs` (and `targetRef`): Kubernetes Gateways, by name.
    pub target_gateways: Vec<String>,
    pub metrics: Vec<MetricsRule>,
    pub access_logging: Vec<AccessLoggingRule>,
    pub tracing: Vec<TracingRule>,
}

impl Telemetry {
    /// A Telemetry that configures nothing yet.
    pub fn new(id: ResourceId) -> Self {
        Telemetry {
            id,
            selector: None,
            target_gateways: Vec::new(),
            metrics: Vec::new(),
            access_logging: Vec::new(),
            tracing: Vec::new(),
        }
    }

    /// Whether it names workloads (rather than a whole namespace).
    pub fn is_workload_scoped(&self) -> bool {
        self.selector.is_some() || !self.target_gateways.is_empty()
    }

    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        let by_selector = self
            .selector
            .as_ref()
            .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)));
        let by_target = labels
            .get(GATEWAY_NAME_LABEL)
            .is_some_and(|name| self.target_gateways.contains(name));
        by_selector || by_target
    }
}

/// Which side of a call a rule is about (`match.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadMode {
    #[default]
    ClientAndServer,
    Client,
    Server,
}

impl WorkloadMode {
    /// Whether the rule applies to `side`.
    pub fn covers(self, side: Side) -> bool {
        match self {
            WorkloadMode::ClientAndServer => true,
            WorkloadMode::Client => side == Side::Client,
            WorkloadMode::Server => side == Side::Server,
        }
    }
}

/// The side of a call a proxy's listener is on: outbound (the client,
/// `reporter="source"`) or inbound (the server, `reporter="destination"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Client,
    Server,
}

/// Istio's standard metrics (`match.metric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IstioMetric {
    RequestCount,
    RequestDuration,
    RequestSize,
    ResponseSize,
    TcpOpenedConnections,
    TcpClosedConnections,
    TcpSentBytes,
    TcpReceivedBytes,
}

impl IstioMetric {
    pub const ALL: [IstioMetric; 8] = [
        IstioMetric::RequestCount,
        IstioMetric::RequestDuration,
        IstioMetric::RequestSize,
        IstioMetric::ResponseSize,
        IstioMetric::TcpOpenedConnections,
        IstioMetric::TcpClosedConnections,
        IstioMetric::TcpSentBytes,
        IstioMetric::TcpReceivedBytes,
    ];

    /// The metric as Telemetry names it (`REQUEST_COUNT`).
    pub const fn api_name(self) -> &'static str {
        match self {
            IstioMetric::RequestCount => "REQUEST_COUNT",
            IstioMetric::RequestDuration => "REQUEST_DURATION",
            IstioMetric::RequestSize => "REQUEST_SIZE",
            IstioMetric::ResponseSize => "RESPONSE_SIZE",
            IstioMetric::TcpOpenedConnections => "TCP_OPENED_CONNECTIONS",
            IstioMetric::TcpClosedConnections => "TCP_CLOSED_CONNECTIONS",
            IstioMetric::TcpSentBytes => "TCP_SENT_BYTES",
            IstioMetric::TcpReceivedBytes => "TCP_RECEIVED_BYTES",
        }
    }

    /// The series name after `istio_` (`requests_total`).
    pub const fn series(self) -> &'static str {
        match self {
            IstioMetric::RequestCount => "requests_total",
            IstioMetric::RequestDuration => "request_duration_milliseconds",
            IstioMetric::RequestSize => "request_bytes",
            IstioMetric::ResponseSize => "response_bytes",
            IstioMetric::TcpOpenedConnections => "tcp_connections_opened_total",
            IstioMetric::TcpClosedConnections => "tcp_connections_closed_total",
            IstioMetric::TcpSentBytes => "tcp_sent_bytes_total",
            IstioMetric::TcpReceivedBytes => "tcp_received_bytes_total",
        }
    }

    /// Parses a Telemetry `match.metric` name.
    pub fn from_api_name(name: &str) -> Option<IstioMetric> {
        Self::ALL.into_iter().find(|m| m.api_name() == name)
    }

    /// Whether it is counted per HTTP request (else per TCP connection).
    pub const fn is_http(self) -> bool {
        matches!(
            self,
            IstioMetric::RequestCount
                | IstioMetric::RequestDuration
                | IstioMetric::RequestSize
                | IstioMetric::ResponseSize
        )
    }
}

/// A `tagOverrides` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagOverride {
    /// `UPSERT`: the label's value is this CEL expression.
    Upsert(String),
    /// `REMOVE`: the label is dropped.
    Remove,
}

/// One `metrics` entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsRule {
    /// Provider names; empty inherits the parent's.
    pub providers: Vec<String>,
    pub overrides: Vec<MetricOverride>,
}

/// One `metrics[].overrides` entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricOverride {
    /// `None`: `ALL_METRICS`.
    pub metric: Option<IstioMetric>,
    pub mode: WorkloadMode,
    /// `None`: not set (inherits).
    pub disabled: Option<bool>,
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// One `accessLogging` entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessLoggingRule {
    pub mode: WorkloadMode,
    pub providers: Vec<String>,
    pub disabled: Option<bool>,
    /// `filter.expression`, CEL.
    pub filter: Option<String>,
}

/// One `tracing` entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TracingRule {
    pub mode: WorkloadMode,
    pub providers: Vec<String>,
    /// `randomSamplingPercentage`.
    pub sampling: Option<f64>,
    pub custom_tags: BTreeMap<String, CustomTag>,
    pub disable_span_reporting: Option<bool>,
}

/// A `customTags` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomTag {
    Literal(String),
    /// The proxy's environment variable, or the default.
    Environment {
        name: String,
        default: String,
    },
    /// A request header, or the default.
    Header {
        name: String,
        default: String,
    },
}

/// The Telemetry resources that apply to a workload of `namespace` with
/// `labels`, from the widest scope to the narrowest (mesh, namespace,
/// workload). `all` is the snapshot's list, sorted by namespace and name.
pub fn telemetries_for<'a>(
    all: &'a [Telemetry],
    root_namespace: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a Telemetry> {
    let mesh = all
        .iter()
        .find(|t| t.id.namespace == root_namespace && !t.is_workload_scoped());
    let namespace_wide = all.iter().find(|t| {
        t.id.namespace == namespace && namespace != root_namespace && !t.is_workload_scoped()
    });
    let workload = all
        .iter()
        .find(|t| t.id.namespace == namespace && t.selects(labels));
    [mesh, namespace_wide, workload]
        .into_iter()
        .flatten()
        .collect()
}

/// What one side of a workload reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EffectiveTelemetry {
    /// Istio's metrics, when a Prometheus provider is in scope.
    pub metrics: Option<Metrics>,
    /// The access logs to write, each with its provider.
    pub access_logs: Vec<AccessLog>,
    pub tracing: Option<Tracing>,
}

/// The metrics a side reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    pub disabled: BTreeSet<IstioMetric>,
    /// Label changes per metric, applied to Istio's standard labels.
    pub tag_overrides: BTreeMap<IstioMetric, BTreeMap<String, TagOverride>>,
}

impl Metrics {
    /// The metrics still reported.
    pub fn enabled(&self) -> impl Iterator<Item = IstioMetric> + '_ {
        IstioMetric::ALL
            .into_iter()
            .filter(|m| !self.disabled.contains(m))
    }
}

/// One access log: where it goes and which requests it keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessLog {
    /// The provider's name (`mesh` for `meshConfig.accessLogFile`).
    pub name: String,
    pub provider: Provider,
    /// A CEL expression; only requests for which it is true are logged.
    pub filter: Option<String>,
}

/// The tracer a side uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracing {
    pub name: String,
    pub provider: Provider,
    /// Percent of requests sampled (0-100).
    pub sampling: f64,
    pub custom_tags: BTreeMap<String, CustomTag>,
    /// `disableSpanReporting`: spans are neither sampled nor sent.
    pub span_reporting: bool,
}

/// Merges `telemetries` (widest scope first, from [`telemetries_for`])
/// with the mesh defaults for `side`, as Istio does: a level's non-empty
/// provider list replaces its parent's; settings a level gives override
/// the parent's; metric overrides accumulate in order. Provider names the
/// mesh does not define are skipped (validation reports them).
pub fn resolve_telemetry(
    telemetries: &[&Telemetry],
    mesh: &MeshConfig,
    side: Side,
) -> EffectiveTelemetry {
    EffectiveTelemetry {
        metrics: resolve_metrics(telemetries, mesh, side),
        access_logs: resolve_access_logs(telemetries, mesh, side),
        tracing: resolve_tracing(telemetries, mesh, side),
    }
}

fn resolve_metrics(telemetries: &[&Telemetry], mesh: &MeshConfig, side: Side) -> Option<Metrics> {
    let rules = || telemetries.iter().flat_map(|t| &t.metrics);
    let providers = rules()
        .map(|r| &r.providers)
        .rfind(|p| !p.is_empty())
        .unwrap_or(&mesh.default_providers.metrics);
    let reports = providers
        .iter()
        .any(|name| mesh.provider(name) == Some(&Provider::Prometheus));
    if !reports {
        return None;
    }
    let mut metrics = Metrics::default();
    for o in rules().flat_map(|r| &r.overrides) {
        if !o.mode.covers(side) {
            continue;
        }
        let selected = match o.metric {
            Some(metric) => vec![metric],
            None => IstioMetric::ALL.to_vec(),
        };
        for metric in selected {
            match o.disabled {
                Some(true) => metrics.disabled.insert(metric),
                Some(false) => metrics.disabled.remove(&metric),
                None => false,
            };
            if !o.tag_overrides.is_empty() {
                metrics
                    .tag_overrides
                    .entry(metric)
                    .or_default()
                    .extend(o.tag_overrides.clone());
            }
        }
    }
    Some(metrics)
}

fn resolve_access_logs(
    telemetries: &[&Telemetry],
    mesh: &MeshConfig,
    side: Side,
) -> Vec<AccessLog> {
    let rules: Vec<&AccessLoggingRule> = telemetries
        .iter()
        .flat_map(|t| &t.access_logging)
        .filter(|r| r.mode.covers(side))
        .collect();
    let mut logs: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    if rules.is_empty() {
        logs.extend(
            mesh.default_providers
                .access_logging
                .iter()
                .map(|p| (p.as_str(), None)),
        );
    }
    let mut parent = &mesh.default_providers.access_logging;
    let mut filter = None;
    for rule in rules {
        let providers = if rule.providers.is_empty() {
            parent
        } else {
            &rule.providers
        };
        parent = providers;
        filter = rule.filter.as_deref().or(filter);
        for name in providers {
            if rule.disabled == Some(true) {
                logs.remove(name.as_str());
            } else {
                logs.insert(name, filter);
            }
        }
    }
    let mut out: Vec<AccessLog> = logs
        .into_iter()
        .filter_map(|(name, filter)| {
            let provider = mesh.provider(name)?;
            matches!(
                provider,
                Provider::FileAccessLog(_) | Provider::OtelAccessLog(_)
            )
            .then(|| AccessLog {
                name: name.to_string(),
                provider: provider.clone(),
                filter: filter.map(str::to_string),
            })
        })
        .collect();
    let configured_by_telemetry = telemetries
        .iter()
        .any(|t| t.access_logging.iter().any(|r| r.mode.covers(side)));
    if let (false, Some(file)) = (configured_by_telemetry, &mesh.access_log) {
        out.push(mesh_access_log(file));
    }
    out
}

/// `meshConfig.accessLogFile`: Istio's legacy, mesh-wide access log, in
/// force while no Telemetry configures access logging for the workload.
fn mesh_access_log(file: &FileAccessLog) -> AccessLog {
    AccessLog {
        name: "mesh".to_string(),
        provider: Provider::FileAccessLog(file.clone()),
        filter: None,
    }
}

fn resolve_tracing(telemetries: &[&Telemetry], mesh: &MeshConfig, side: Side) -> Option<Tracing> {
    let rules: Vec<&TracingRule> = telemetries
        .iter()
        .flat_map(|t| &t.tracing)
        .filter(|r| r.mode.covers(side))
        .collect();
    if rules.is_empty() && !mesh.enable_tracing {
        return None;
    }
    let mut providers = &mesh.default_providers.tracing;
    let mut sampling = mesh.default_sampling;
    let mut custom_tags = BTreeMap::new();
    let mut span_reporting = true;
    for rule in rules {
        if !rule.providers.is_empty() {
            providers = &rule.providers;
        }
        sampling = rule.sampling.unwrap_or(sampling);
        custom_tags.extend(rule.custom_tags.clone());
        if let Some(disable) = rule.disable_span_reporting {
            span_reporting = !disable;
        }
    }
    // Envoy takes one tracer per listener; Istio uses the first provider.
    let name = providers.first()?;
    let provider = mesh.provider(name)?;
    matches!(provider, Provider::Zipkin(_) | Provider::OpenTelemetry(_)).then(|| Tracing {
        name: name.clone(),
        provider: provider.clone(),
        sampling,
        custom_tags,
        span_reporting,
    })
}

#[cfg(test)]
#[path = "telemetry_tests.rs"]
mod tests;
