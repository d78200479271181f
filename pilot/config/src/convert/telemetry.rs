//! Telemetry -> model.
//!
//! Translated: `selector`, `targetRefs` (and the older `targetRef`) naming
//! Kubernetes Gateways of the Telemetry's namespace, `tracing` (`match.mode`,
//! one provider, `randomSamplingPercentage` 0-100, `disableSpanReporting`,
//! `customTags` of exactly one of `literal` / `environment` / `header`,
//! `useRequestIdForTraceSampling: true`, Envoy's default), `metrics`
//! (`providers`, `overrides` of Istio's standard metrics with `mode`,
//! `disabled` and `tagOverrides` whose values are CEL) and `accessLogging`
//! (`match.mode`, `providers`, `disabled`, `filter.expression` in CEL).
//! Unsupported: the gRPC message metrics and `customMetric` (Weft reports
//! Istio's standard HTTP and TCP metrics only), `reportingInterval`, and
//! `useRequestIdForTraceSampling: false`. Whether the providers named exist
//! in the mesh config is checked by the store, which has the mesh config.

use std::collections::BTreeMap;

use weft_crds::{
    IstioMetricName, MetricsOverrides, ProviderRef, TagOperation, TelemetryAccessLogging,
    TelemetryMetrics, TelemetrySpec, TelemetryTracing, TracingCustomTag, WorkloadMode as CrdMode,
};

use super::Errors;
use super::common::policy_target;
use super::expression::check_cel;
use weft_model::{
    AccessLoggingRule, CustomTag, IstioMetric, MetricOverride, MetricsRule, ResourceId,
    TagOverride, Telemetry, TracingRule, WorkloadMode,
};

pub(super) fn convert(id: &ResourceId, spec: &TelemetrySpec, errors: &mut Errors) -> Telemetry {
    let target = policy_target(
        "a Telemetry",
        &id.namespace,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        errors,
    );
    Telemetry {
        id: id.clone(),
        selector: target.selector,
        target_gateways: target.gateways,
        tracing: each("spec.tracing", &spec.tracing, errors, tracing_rule),
        metrics: each("spec.metrics", &spec.metrics, errors, metrics_rule),
        access_logging: each(
            "spec.accessLogging",
            &spec.access_logging,
            errors,
            access_logging_rule,
        ),
    }
}

/// `convert` of each item of the list at `path`, with its own path.
fn each<T, R>(
    path: &str,
    items: &[T],
    errors: &mut Errors,
    convert: impl Fn(&str, &T, &mut Errors) -> R,
) -> Vec<R> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| convert(&format!("{path}[{i}]"), item, errors))
        .collect()
}

fn mode(mode: Option<CrdMode>) -> WorkloadMode {
    match mode.unwrap_or_default() {
        CrdMode::ClientAndServer => WorkloadMode::ClientAndServer,
        CrdMode::Client => WorkloadMode::Client,
        CrdMode::Server => WorkloadMode::Server,
    }
}

/// Provider names; each must be given (whether the mesh defines it is the
/// store's check).
fn providers(path: &str, providers: &[ProviderRef], errors: &mut Errors) -> Vec<String> {
    for (i, p) in providers.iter().enumerate() {
        if p.name.is_empty() {
            errors.push(
                format!("{path}[{i}].name"),
                "is required: a provider of the mesh config's extensionProviders",
            );
        }
    }
    providers
        .iter()
        .filter(|p| !p.name.is_empty())
        .map(|p| p.name.clone())
        .collect()
}

fn tracing_rule(path: &str, rule: &TelemetryTracing, errors: &mut Errors) -> TracingRule {
    let providers = providers(&format!("{path}.providers"), &rule.providers, errors);
    if providers.len() > 1 {
        errors.push(
            format!("{path}.providers"),
            format!(
                "names {} providers; a tracing rule takes one (Envoy reports spans to one tracer)",
                providers.len()
            ),
        );
    }
    if let Some(p) = rule.random_sampling_percentage
        && !(0.0..=100.0).contains(&p)
    {
        errors.push(
            format!("{path}.randomSamplingPercentage"),
            format!("{p} is not a percentage (0 to 100)"),
        );
    }
    if rule.use_request_id_for_trace_sampling == Some(false) {
        errors.unsupported_because(
            format!("{path}.useRequestIdForTraceSampling"),
            "false is not supported by Weft yet: Envoy samples by the request id (true, Istio's default); remove the field",
        );
    }
    let custom_tags = rule
        .custom_tags
        .iter()
        .filter_map(|(name, tag)| {
            let tag = custom_tag(&format!("{path}.customTags[{name}]"), name, tag, errors)?;
            Some((name.clone(), tag))
        })
        .collect();
    TracingRule {
        mode: mode(rule.match_.as_ref().and_then(|m| m.mode)),
        providers,
        sampling: rule.random_sampling_percentage,
        custom_tags,
        disable_span_reporting: rule.disable_span_reporting,
    }
}

/// A custom tag: exactly one of `literal`, `environment` and `header`.
fn custom_tag(
    path: &str,
    name: &str,
    tag: &TracingCustomTag,
    errors: &mut Errors,
) -> Option<CustomTag> {
    if name.is_empty() {
        errors.push(path, "a custom tag needs a name");
        return None;
    }
    let set = [
        tag.literal.is_some(),
        tag.environment.is_some(),
        tag.header.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if set != 1 {
        errors.push(
            path,
            format!(
                "sets {set} of literal, environment and header; set exactly one (where the tag's value comes from)"
            ),
        );
        return None;
    }
    let required = |field: &str, value: &str, errors: &mut Errors| {
        if value.is_empty() {
            errors.push(format!("{path}.{field}"), "is required");
        }
    };
    if let Some(literal) = &tag.literal {
        required("literal.value", &literal.value, errors);
        return Some(CustomTag::Literal(literal.value.clone()));
    }
    if let Some(env) = &tag.environment {
        required("environment.name", &env.name, errors);
        return Some(CustomTag::Environment {
            name: env.name.clone(),
            default: env.default_value.clone(),
        });
    }
    let header = tag.header.as_ref()?;
    required("header.name", &header.name, errors);
    Some(CustomTag::Header {
        name: header.name.to_ascii_lowercase(),
        default: header.default_value.clone(),
    })
}

fn metrics_rule(path: &str, rule: &TelemetryMetrics, errors: &mut Errors) -> MetricsRule {
    if rule.reporting_interval.is_some() {
        errors.unsupported_because(
            format!("{path}.reportingInterval"),
            "not supported by Weft yet: TCP metrics are reported at the proxy's default interval; remove the field",
        );
    }
    MetricsRule {
        providers: providers(&format!("{path}.providers"), &rule.providers, errors),
        overrides: each(
            &format!("{path}.overrides"),
            &rule.overrides,
            errors,
            metric_override,
        ),
    }
}

fn metric_override(path: &str, o: &MetricsOverrides, errors: &mut Errors) -> MetricOverride {
    let selector = o.match_.clone().unwrap_or_default();
    let metric = match (&selector.metric, &selector.custom_metric) {
        (Some(_), Some(_)) => {
            errors.push(
                format!("{path}.match"),
                "metric and customMetric cannot both be set: choose one",
            );
            None
        }
        (_, Some(_)) => {
            errors.unsupported_because(
                format!("{path}.match.customMetric"),
                "custom metrics are not supported by Weft: it reports Istio's standard metrics; select one with match.metric",
            );
            None
        }
        (Some(name), None) => istio_metric(&format!("{path}.match.metric"), *name, errors),
        (None, None) => None,
    };
    let tag_overrides = o
        .tag_overrides
        .iter()
        .filter_map(|(tag, change)| {
            let field = format!("{path}.tagOverrides[{tag}]");
            if tag.is_empty() {
                errors.push(&field, "a tag override needs the label's name");
                return None;
            }
            let value = change.value.as_deref().filter(|v| !v.is_empty());
            match (change.operation.unwrap_or_default(), value) {
                (TagOperation::Upsert, Some(value)) => {
                    check_cel(&format!("{field}.value"), value, errors);
                    Some((tag.clone(), TagOverride::Upsert(value.to_string())))
                }
                (TagOperation::Upsert, None) => {
                    errors.push(
                        format!("{field}.value"),
                        "is required with operation UPSERT: the label's value, a CEL expression (e.g. request.host)",
                    );
                    None
                }
                (TagOperation::Remove, None) => Some((tag.clone(), TagOverride::Remove)),
                (TagOperation::Remove, Some(_)) => {
                    errors.push(
                        format!("{field}.value"),
                        "must not be set with operation REMOVE (the label is dropped)",
                    );
                    None
                }
            }
        })
        .collect::<BTreeMap<_, _>>();
    MetricOverride {
        metric,
        mode: mode(selector.mode),
        disabled: o.disabled,
        tag_overrides,
    }
}

/// A standard metric; `None` for `ALL_METRICS` (and the unsupported ones,
/// reported).
fn istio_metric(field: &str, name: IstioMetricName, errors: &mut Errors) -> Option<IstioMetric> {
    match name {
        IstioMetricName::AllMetrics => None,
        IstioMetricName::RequestCount => Some(IstioMetric::RequestCount),
        IstioMetricName::RequestDuration => Some(IstioMetric::RequestDuration),
        IstioMetricName::RequestSize => Some(IstioMetric::RequestSize),
        IstioMetricName::ResponseSize => Some(IstioMetric::ResponseSize),
        IstioMetricName::TcpOpenedConnections => Some(IstioMetric::TcpOpenedConnections),
        IstioMetricName::TcpClosedConnections => Some(IstioMetric::TcpClosedConnections),
        IstioMetricName::TcpSentBytes => Some(IstioMetric::TcpSentBytes),
        IstioMetricName::TcpReceivedBytes => Some(IstioMetric::TcpReceivedBytes),
        IstioMetricName::GrpcRequestMessages | IstioMetricName::GrpcResponseMessages => {
            errors.unsupported_because(
                field,
                "the gRPC message metrics (istio_request_messages_total, istio_response_messages_total) are not supported by Weft: it reports Istio's HTTP and TCP metrics",
            );
            None
        }
    }
}

fn access_logging_rule(
    path: &str,
    rule: &TelemetryAccessLogging,
    errors: &mut Errors,
) -> AccessLoggingRule {
    let filter = rule.filter.as_ref().map(|f| {
        check_cel(&format!("{path}.filter.expression"), &f.expression, errors);
        f.expression.clone()
    });
    AccessLoggingRule {
        mode: mode(rule.match_.as_ref().and_then(|m| m.mode)),
        providers: providers(&format!("{path}.providers"), &rule.providers, errors),
        disabled: rule.disabled,
        filter,
    }
}
