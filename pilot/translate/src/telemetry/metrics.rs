//! Istio's standard metrics from Envoy's stats access logger: one counter
//! or histogram per [`IstioMetric`] in the stats scope `istio` (so
//! Envoy's Prometheus page shows `envoy_istio_requests_total`, which the
//! sidecar agent serves as `istio_requests_total`), each with Istio's
//! labels. A label's value is a literal (what the proxy knows of itself),
//! a command operator (what it learns per request), and a rule that
//! rewrites what cannot be known to `unknown`, as Istio reports it.

use weft_envoy_api::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use weft_envoy_api::pb::envoy::extensions::access_loggers::stats::v3::{
    Config, config::Counter, config::Histogram, config::Stat, config::Tag, config::histogram::Unit,
};
use weft_envoy_api::pb::envoy::extensions::matching::actions::transform_stat::v3::{
    TransformStat, transform_stat,
};
use weft_envoy_api::pb::envoy::extensions::matching::common_inputs::stats::v3::StatTagValueInput;
use weft_envoy_api::pb::envoy::r#type::v3::Scope;
use weft_envoy_api::pb::google::protobuf::UInt64Value;
use weft_envoy_api::pb::xds::core::v3::TypedExtensionConfig;
use weft_envoy_api::pb::xds::r#type::matcher::v3::{
    Matcher, matcher::MatcherTree, matcher::MatcherType, matcher::OnMatch,
    matcher::matcher_tree::MatchMap, matcher::matcher_tree::TreeType, matcher::on_match,
};
use weft_envoy_api::util::pack_any;
use weft_model::{IstioMetric, MeshSnapshot, Metrics, Side, TagOverride};

use super::metadata::NAMESPACE;
use super::peer::{PEER_METADATA_KEY, PEER_METADATA_NAMESPACE};
use super::{CLUSTER_ID, UNKNOWN, WorkloadLabels, own_principal};
use crate::ProxyView;

/// The stats scope of Istio's series.
pub const STATS_SCOPE: &str = "istio";

/// How one label gets its value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelValue {
    /// Known when the listener is built.
    Literal(String),
    /// A command operator; `unknown` when it yields nothing.
    Learned(String),
    /// A command operator and the rule that maps what it yields.
    Mapped(String, Rules),
    /// A command operator whose output is the label (Envoy's `-`
    /// included, as Istio's `response_flags="-"`).
    AsIs(String),
}

/// A label value's rewriting: values (exact or by prefix) to an action,
/// and the action for everything else.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rules {
    keys: Keys,
    otherwise: Option<Action>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Keys {
    Exact(Vec<(&'static str, Action)>),
    Prefix(Vec<(&'static str, Action)>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Set(&'static str),
    Drop,
}

fn literal(value: impl Into<String>) -> LabelValue {
    LabelValue::Literal(value.into())
}

fn learned(operator: impl Into<String>) -> LabelValue {
    LabelValue::Learned(operator.into())
}

/// Istio's labels of `side`'s requests (`http`) or connections, in
/// Istio's order.
fn standard_labels(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    side: Side,
    http: bool,
) -> Vec<(String, LabelValue)> {
    let own = WorkloadLabels::of_proxy(view);
    let principal = own_principal(snapshot, view).unwrap_or_else(|| UNKNOWN.to_string());
    let upstream = |key: &str| learned(format!("%UPSTREAM_METADATA({NAMESPACE}:{key})%"));
    let peer = |key: &str| {
        learned(format!(
            "%DYNAMIC_METADATA({PEER_METADATA_NAMESPACE}:{PEER_METADATA_KEY}:{key})%"
        ))
    };
    let own_fields = |w: &WorkloadLabels| {
        [
            literal(&w.workload),
            literal(&w.canonical_service),
            literal(&w.canonical_revision),
            literal(&w.namespace),
            literal(&w.app),
            literal(&w.version),
            literal(CLUSTER_ID),
        ]
    };
    let learned_fields = |get: &dyn Fn(&str) -> LabelValue| {
        [
            get("workload"),
            get("canonical_service"),
            get("canonical_revision"),
            get("namespace"),
            get("app"),
            get("version"),
            get("cluster"),
        ]
    };
    let (reporter, source, destination, source_principal, destination_principal, security) =
        match side {
            Side::Client => (
                "source",
                own_fields(&own),
                learned_fields(&upstream),
                literal(principal),
                learned("%UPSTREAM_PEER_URI_SAN%"),
                literal(UNKNOWN),
            ),
            Side::Server => (
                "destination",
                learned_fields(&peer),
                own_fields(&own),
                learned("%DOWNSTREAM_PEER_URI_SAN%"),
                learned("%DOWNSTREAM_LOCAL_URI_SAN%"),
                LabelValue::Mapped(
                    "%DOWNSTREAM_PEER_URI_SAN%".to_string(),
                    Rules {
                        keys: Keys::Exact(vec![
                            ("", Action::Set("none")),
                            ("-", Action::Set("none")),
                        ]),
                        otherwise: Some(Action::Set("mutual_tls")),
                    },
                ),
            ),
        };
    let [sw, scs, scr, sns, sapp, sver, scl] = source;
    let [dw, dcs, dcr, dns, dapp, dver, dcl] = destination;
    let cluster = |key: &str| learned(format!("%CLUSTER_METADATA({NAMESPACE}:{key})%"));
    let mut labels = vec![
        ("reporter", literal(reporter)),
        ("source_workload", sw),
        ("source_canonical_service", scs),
        ("source_canonical_revision", scr),
        ("source_workload_namespace", sns),
        ("source_principal", source_principal),
        ("source_app", sapp),
        ("source_version", sver),
        ("source_cluster", scl),
        ("destination_workload", dw),
        ("destination_workload_namespace", dns),
        ("destination_principal", destination_principal),
        ("destination_app", dapp),
        ("destination_version", dver),
        ("destination_service", cluster("service_host")),
        ("destination_service_name", cluster("service_name")),
        (
            "destination_service_namespace",
            cluster("service_namespace"),
        ),
        ("destination_canonical_service", dcs),
        ("destination_canonical_revision", dcr),
        ("destination_cluster", dcl),
    ];
    if http {
        labels.extend([
            (
                "request_protocol",
                LabelValue::Mapped(
                    "%REQ(content-type)%".to_string(),
                    Rules {
                        keys: Keys::Prefix(vec![("application/grpc", Action::Set("grpc"))]),
                        otherwise: Some(Action::Set("http")),
                    },
                ),
            ),
            (
                "response_code",
                LabelValue::Mapped("%RESPONSE_CODE%".to_string(), unknown_rules()),
            ),
            (
                "grpc_response_status",
                LabelValue::Mapped(
                    "%GRPC_STATUS_NUMBER%".to_string(),
                    Rules {
                        keys: Keys::Exact(vec![("", Action::Drop), ("-", Action::Drop)]),
                        otherwise: None,
                    },
                ),
            ),
        ]);
    } else {
        labels.push(("request_protocol", literal("tcp")));
    }
    labels.extend([
        (
            "response_flags",
            LabelValue::AsIs("%RESPONSE_FLAGS%".to_string()),
        ),
        ("connection_security_policy", security),
    ]);
    labels
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

fn unknown_rules() -> Rules {
    Rules {
        keys: Keys::Exact(vec![
            ("", Action::Set(UNKNOWN)),
            ("-", Action::Set(UNKNOWN)),
        ]),
        otherwise: None,
    }
}

/// The labels of `metric` after the Telemetry's tag overrides.
fn labels_of(
    standard: &[(String, LabelValue)],
    metrics: &Metrics,
    metric: IstioMetric,
) -> Vec<(String, LabelValue)> {
    let mut labels = standard.to_vec();
    for (name, change) in metrics.tag_overrides.get(&metric).into_iter().flatten() {
        match change {
            TagOverride::Remove => labels.retain(|(n, _)| n != name),
            TagOverride::Upsert(expression) => {
                let value = LabelValue::Mapped(format!("%CEL({expression})%"), unknown_rules());
                match labels.iter_mut().find(|(n, _)| n == name) {
                    Some(label) => label.1 = value,
                    None => labels.push((name.clone(), value)),
                }
            }
        }
    }
    labels
}

/// The stats access logger of one side's HTTP or TCP listeners.
pub(crate) fn stats_logger(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    side: Side,
    metrics: &Metrics,
    http: bool,
) -> AccessLog {
    let standard = standard_labels(snapshot, view, side, http);
    let stat = |metric: IstioMetric| Stat {
        name: metric.series().to_string(),
        tags: labels_of(&standard, metrics, metric)
            .into_iter()
            .map(|(name, value)| tag(name, value))
            .collect(),
    };
    let mut config = Config {
        // One scope shared by every listener's logger: a listener replaced
        // by a config change hands its counters on instead of resetting them.
        stats_scope: Some(Scope {
            prefix: STATS_SCOPE.to_string(),
            sharing_name: STATS_SCOPE.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    for metric in metrics.enabled().filter(|m| m.is_http() == http) {
        let counter = |value: Option<&str>| Counter {
            stat: Some(stat(metric)),
            value_format: value.unwrap_or_default().to_string(),
            value_fixed: value.is_none().then_some(UInt64Value { value: 1 }),
        };
        let histogram = |unit: Unit, value: &str| Histogram {
            stat: Some(stat(metric)),
            unit: unit as i32,
            value_format: value.to_string(),
        };
        match metric {
            IstioMetric::RequestCount
            | IstioMetric::TcpOpenedConnections
            | IstioMetric::TcpClosedConnections => config.counters.push(counter(None)),
            IstioMetric::TcpSentBytes => config.counters.push(counter(Some("%BYTES_SENT%"))),
            IstioMetric::TcpReceivedBytes => {
                config.counters.push(counter(Some("%BYTES_RECEIVED%")))
            }
            IstioMetric::RequestDuration => config
                .histograms
                .push(histogram(Unit::Milliseconds, "%DURATION%")),
            IstioMetric::RequestSize => config
                .histograms
                .push(histogram(Unit::Bytes, "%CEL(request.total_size)%")),
            IstioMetric::ResponseSize => config
                .histograms
                .push(histogram(Unit::Bytes, "%CEL(response.total_size)%")),
        }
    }
    AccessLog {
        name: "envoy.access_loggers.stats".to_string(),
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    }
}

fn tag(name: String, value: LabelValue) -> Tag {
    let (value_format, rules) = match value {
        // `%` starts a command operator; a literal one is `%%`.
        LabelValue::Literal(text) => (text.replace('%', "%%"), None),
        LabelValue::Learned(operator) => (operator, Some(unknown_rules())),
        LabelValue::Mapped(operator, rules) => (operator, Some(rules)),
        LabelValue::AsIs(operator) => (operator, None),
    };
    Tag {
        name,
        value_format,
        rules: rules.map(matcher),
    }
}

/// The matcher of `rules` over the tag's value.
fn matcher(rules: Rules) -> Matcher {
    let on_match = |action: &Action| OnMatch {
        on_match: Some(on_match::OnMatch::Action(TypedExtensionConfig {
            name: "transform_stat".to_string(),
            typed_config: Some(pack_any(match action {
                Action::Set(value) => TransformStat {
                    update_tag: Some(transform_stat::UpdateTag {
                        new_tag_value: value.to_string(),
                    }),
                    ..Default::default()
                },
                Action::Drop => TransformStat {
                    drop_tag: Some(transform_stat::DropTag {}),
                    ..Default::default()
                },
            })),
        })),
        keep_matching: false,
    };
    let map = |entries: &[(&str, Action)]| MatchMap {
        map: entries
            .iter()
            .map(|(value, action)| (value.to_string(), on_match(action)))
            .collect(),
    };
    let tree_type = match &rules.keys {
        Keys::Exact(entries) => TreeType::ExactMatchMap(map(entries)),
        Keys::Prefix(entries) => TreeType::PrefixMatchMap(map(entries)),
    };
    Matcher {
        matcher_type: Some(MatcherType::MatcherTree(MatcherTree {
            input: Some(TypedExtensionConfig {
                name: "stat_tag_value".to_string(),
                typed_config: Some(pack_any(StatTagValueInput {})),
            }),
            tree_type: Some(tree_type),
        })),
        on_no_match: rules.otherwise.as_ref().map(|a| Box::new(on_match(a))),
    }
}
