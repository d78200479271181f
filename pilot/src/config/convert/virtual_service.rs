//! VirtualService -> model.

use weft_crds::{
    HttpMatchRequest, HttpRetry, HttpRoute as CrdHttpRoute, StringMatch as CrdStringMatch,
    VirtualServiceSpec,
};

use super::{Errors, export_to, port_number};
use crate::model::{
    HttpRoute, ResourceId, RetryPolicy, RouteDestination, RouteMatch, StringMatch, VirtualService,
    qualify_host,
};

/// The retry conditions Envoy knows (`x-envoy-retry-on` and gRPC ones).
const RETRY_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

pub(super) fn convert(
    id: &ResourceId,
    spec: &VirtualServiceSpec,
    errors: &mut Errors,
) -> VirtualService {
    if spec.hosts.is_empty() {
        errors.push("spec.hosts", "at least one host is required");
    }
    export_to("spec", &spec.export_to, errors);
    let tcp = super::l4_route::convert_tcp(&id.namespace, &spec.tcp, errors);
    let tls = super::l4_route::convert_tls(&id.namespace, &spec.tls, errors);
    let http = spec
        .http
        .iter()
        .enumerate()
        .map(|(i, route)| http_route(&format!("spec.http[{i}]"), route, &id.namespace, errors))
        .collect();
    VirtualService {
        id: id.clone(),
        hosts: spec
            .hosts
            .iter()
            .map(|h| qualify_host(h, &id.namespace))
            .collect(),
        gateways: spec.gateways.clone(),
        http,
        tcp,
        tls,
    }
}

fn http_route(path: &str, route: &CrdHttpRoute, namespace: &str, errors: &mut Errors) -> HttpRoute {
    let unsupported = [
        ("redirect", route.redirect.is_some()),
        ("directResponse", route.direct_response.is_some()),
        ("delegate", route.delegate.is_some()),
        ("rewrite", route.rewrite.is_some()),
        ("fault", route.fault.is_some()),
        ("mirror", route.mirror.is_some()),
        ("mirrors", !route.mirrors.is_empty()),
        ("mirrorPercentage", route.mirror_percentage.is_some()),
        ("corsPolicy", route.cors_policy.is_some()),
        ("headers", route.headers.is_some()),
    ];
    for (field, present) in unsupported {
        if present {
            errors.unsupported(format!("{path}.{field}"));
        }
    }
    let matches = route
        .matches
        .iter()
        .enumerate()
        .map(|(j, m)| route_match(&format!("{path}.match[{j}]"), m, errors))
        .collect();
    let destinations = route_destinations(path, route, namespace, errors);
    HttpRoute {
        name: route.name.clone(),
        matches,
        destinations,
        timeout: route.timeout.map(|t| t.0).filter(|t| !t.is_zero()),
        retries: route
            .retries
            .as_ref()
            .map(|r| retry_policy(&format!("{path}.retries"), r, errors)),
    }
}

fn route_destinations(
    path: &str,
    route: &CrdHttpRoute,
    namespace: &str,
    errors: &mut Errors,
) -> Vec<RouteDestination> {
    if route.route.is_empty() {
        errors.push(
            format!("{path}.route"),
            "at least one destination is required",
        );
        return Vec::new();
    }
    let mut destinations = Vec::new();
    for (k, d) in route.route.iter().enumerate() {
        let field = format!("{path}.route[{k}]");
        if d.destination.host.is_empty() {
            errors.push(
                format!("{field}.destination.host"),
                "a destination host is required",
            );
        }
        if d.weight < 0 {
            errors.push(
                format!("{field}.weight"),
                format!("weight {} is negative", d.weight),
            );
        }
        if d.headers.is_some() {
            errors.unsupported(format!("{field}.headers"));
        }
        let port = d.destination.port.as_ref().and_then(|p| p.number);
        let port =
            port.and_then(|p| port_number(&format!("{field}.destination.port.number"), p, errors));
        destinations.push(RouteDestination {
            host: qualify_host(&d.destination.host, namespace),
            subset: d.destination.subset.clone().filter(|s| !s.is_empty()),
            port,
            weight: u32::try_from(d.weight).unwrap_or(0),
        });
    }
    // Istio: a single destination without a weight takes all traffic.
    if let [only] = destinations.as_mut_slice()
        && only.weight == 0
    {
        only.weight = 100;
    }
    let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
    if total != 100 {
        errors.push(
            format!("{path}.route"),
            format!("destination weights sum to {total}; they must sum to 100"),
        );
    }
    destinations
}

fn route_match(path: &str, m: &HttpMatchRequest, errors: &mut Errors) -> RouteMatch {
    let unsupported = [
        ("scheme", m.scheme.is_some()),
        ("authority", m.authority.is_some()),
        ("queryParams", !m.query_params.is_empty()),
        ("withoutHeaders", !m.without_headers.is_empty()),
        ("sourceLabels", !m.source_labels.is_empty()),
        ("sourceNamespace", m.source_namespace.is_some()),
        ("gateways", !m.gateways.is_empty()),
    ];
    for (field, present) in unsupported {
        if present {
            errors.unsupported(format!("{path}.{field}"));
        }
    }
    let uri = m
        .uri
        .as_ref()
        .and_then(|u| string_match(&format!("{path}.uri"), u, errors));
    let method = m
        .method
        .as_ref()
        .and_then(|u| string_match(&format!("{path}.method"), u, errors));
    let headers = m
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let field = format!("{path}.headers.{name}");
            if !is_header_name(name) {
                errors.push(&field, format!("{name:?} is not a valid HTTP header name"));
            }
            Some((
                name.to_ascii_lowercase(),
                string_match(&field, value, errors)?,
            ))
        })
        .collect();
    RouteMatch {
        uri,
        method,
        headers,
        ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
        port: m
            .port
            .and_then(|p| port_number(&format!("{path}.port"), p, errors)),
    }
}

fn string_match(path: &str, m: &CrdStringMatch, errors: &mut Errors) -> Option<StringMatch> {
    match m {
        CrdStringMatch::Exact(v) => Some(StringMatch::Exact(v.clone())),
        CrdStringMatch::Prefix(v) => Some(StringMatch::Prefix(v.clone())),
        CrdStringMatch::Regex(v) => match regex::Regex::new(v) {
            Ok(_) => Some(StringMatch::Regex(v.clone())),
            Err(err) => {
                errors.push(
                    format!("{path}.regex"),
                    format!("invalid regular expression: {err}"),
                );
                None
            }
        },
        CrdStringMatch::Empty => {
            errors.push(path, "one of exact, prefix or regex is required");
            None
        }
    }
}

/// RFC 7230 token characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn retry_policy(path: &str, retry: &HttpRetry, errors: &mut Errors) -> RetryPolicy {
    if retry.attempts < 0 {
        errors.push(format!("{path}.attempts"), "attempts must not be negative");
    }
    if retry.retry_remote_localities.is_some() {
        errors.unsupported(format!("{path}.retryRemoteLocalities"));
    }
    if retry.backoff.is_some() {
        errors.unsupported(format!("{path}.backoff"));
    }
    let retry_on: Vec<String> = retry
        .retry_on
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    for condition in &retry_on {
        let known = RETRY_CONDITIONS.contains(&condition.as_str())
            || condition
                .parse::<u16>()
                .is_ok_and(|c| (100..600).contains(&c));
        if !known {
            errors.push(
                format!("{path}.retryOn"),
                format!(
                    "unknown retry condition {condition:?}; use HTTP status codes or one of {}",
                    RETRY_CONDITIONS.join(", ")
                ),
            );
        }
    }
    RetryPolicy {
        attempts: u32::try_from(retry.attempts).unwrap_or(0),
        per_try_timeout: retry.per_try_timeout.map(|t| t.0).filter(|t| !t.is_zero()),
        retry_on,
    }
}
