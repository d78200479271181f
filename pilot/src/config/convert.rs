//! One resource at a time: `weft-crds` spec -> model objects.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use weft_crds::{
    DestinationRuleSpec, HttpMatchRequest, HttpRetry, HttpRoute as CrdHttpRoute,
    LoadBalancerSettings, MeshResource, Resolution as CrdResolution, ServiceEntrySpec, SimpleLb,
    StringMatch as CrdStringMatch, TrafficPolicy, VirtualServiceSpec,
};

use super::{ErrorReason, FieldError};
use crate::model::{
    DestinationRule, Endpoint, HttpRoute, LoadBalancer, Protocol, Resolution, ResourceId,
    RetryPolicy, RouteDestination, RouteMatch, Service, ServicePort, StringMatch, Subset,
    VirtualService, qualify_host,
};

/// A resource in model form.
#[derive(Clone, Debug, PartialEq)]
pub enum ConvertedResource {
    /// A ServiceEntry: one service per host.
    Services(Vec<Service>),
    VirtualService(VirtualService),
    DestinationRule(DestinationRule),
}

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

/// Converts one resource, or says everything that is wrong with it.
pub fn convert(
    id: &ResourceId,
    resource: &MeshResource,
) -> Result<ConvertedResource, Vec<FieldError>> {
    let mut errors = Errors::default();
    let converted = match resource {
        MeshResource::VirtualService(spec) => {
            ConvertedResource::VirtualService(virtual_service(id, spec, &mut errors))
        }
        MeshResource::DestinationRule(spec) => {
            ConvertedResource::DestinationRule(destination_rule(id, spec, &mut errors))
        }
        MeshResource::ServiceEntry(spec) => {
            ConvertedResource::Services(service_entry(id, spec, &mut errors))
        }
    };
    if errors.0.is_empty() {
        Ok(converted)
    } else {
        Err(errors.0)
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0
            .push(FieldError::new(ErrorReason::Invalid, field, message));
    }

    fn unsupported(&mut self, field: impl Into<String>) {
        self.0.push(FieldError::new(
            ErrorReason::Unsupported,
            field,
            "not supported by Weft yet; remove it or wait for a release that translates it",
        ));
    }
}

fn export_to(field: &str, export_to: &[String], errors: &mut Errors) {
    if !export_to.is_empty() && !export_to.iter().any(|e| e == "*") {
        errors.unsupported(format!("{field}.exportTo"));
    }
}

// ---- VirtualService ----

fn virtual_service(
    id: &ResourceId,
    spec: &VirtualServiceSpec,
    errors: &mut Errors,
) -> VirtualService {
    if spec.hosts.is_empty() {
        errors.push("spec.hosts", "at least one host is required");
    }
    export_to("spec", &spec.export_to, errors);
    if !spec.tcp.is_empty() {
        errors.unsupported("spec.tcp");
    }
    if !spec.tls.is_empty() {
        errors.unsupported("spec.tls");
    }
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

fn port_number(field: &str, number: u32, errors: &mut Errors) -> Option<u16> {
    match u16::try_from(number) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            errors.push(field, format!("{number} is not a port number (1-65535)"));
            None
        }
    }
}

// ---- DestinationRule ----

fn destination_rule(
    id: &ResourceId,
    spec: &DestinationRuleSpec,
    errors: &mut Errors,
) -> DestinationRule {
    if spec.host.is_empty() {
        errors.push("spec.host", "a host is required");
    }
    export_to("spec", &spec.export_to, errors);
    if spec.workload_selector.is_some() {
        errors.unsupported("spec.workloadSelector");
    }
    let load_balancer = spec
        .traffic_policy
        .as_ref()
        .and_then(|p| traffic_policy("spec.trafficPolicy", p, errors));
    let mut names = BTreeSet::new();
    let subsets = spec
        .subsets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let path = format!("spec.subsets[{i}]");
            if s.name.is_empty() {
                errors.push(format!("{path}.name"), "a subset name is required");
            } else if !names.insert(s.name.as_str()) {
                errors.push(
                    format!("{path}.name"),
                    format!("subset {} is defined twice", s.name),
                );
            }
            Subset {
                name: s.name.clone(),
                labels: s.labels.clone(),
                load_balancer: s
                    .traffic_policy
                    .as_ref()
                    .and_then(|p| traffic_policy(&format!("{path}.trafficPolicy"), p, errors)),
            }
        })
        .collect();
    DestinationRule {
        id: id.clone(),
        host: qualify_host(&spec.host, &id.namespace),
        load_balancer,
        subsets,
    }
}

fn traffic_policy(path: &str, policy: &TrafficPolicy, errors: &mut Errors) -> Option<LoadBalancer> {
    let unsupported = [
        ("connectionPool", policy.connection_pool.is_some()),
        ("outlierDetection", policy.outlier_detection.is_some()),
        ("tls", policy.tls.is_some()),
        ("portLevelSettings", !policy.port_level_settings.is_empty()),
        ("tunnel", policy.tunnel.is_some()),
        ("proxyProtocol", policy.proxy_protocol.is_some()),
    ];
    for (field, present) in unsupported {
        if present {
            errors.unsupported(format!("{path}.{field}"));
        }
    }
    policy
        .load_balancer
        .as_ref()
        .and_then(|lb| load_balancer(&format!("{path}.loadBalancer"), lb, errors))
}

fn load_balancer(
    path: &str,
    lb: &LoadBalancerSettings,
    errors: &mut Errors,
) -> Option<LoadBalancer> {
    let unsupported = [
        ("consistentHash", lb.consistent_hash.is_some()),
        ("localityLbSetting", lb.locality_lb_setting.is_some()),
        ("warmupDurationSecs", lb.warmup_duration_secs.is_some()),
        ("warmup", lb.warmup.is_some()),
    ];
    for (field, present) in unsupported {
        if present {
            errors.unsupported(format!("{path}.{field}"));
        }
    }
    match lb.simple? {
        SimpleLb::Unspecified => None,
        SimpleLb::RoundRobin => Some(LoadBalancer::RoundRobin),
        SimpleLb::LeastConn | SimpleLb::LeastRequest => Some(LoadBalancer::LeastRequest),
        SimpleLb::Random => Some(LoadBalancer::Random),
        SimpleLb::Passthrough => Some(LoadBalancer::Passthrough),
    }
}

// ---- ServiceEntry ----

fn service_entry(id: &ResourceId, spec: &ServiceEntrySpec, errors: &mut Errors) -> Vec<Service> {
    if spec.hosts.is_empty() {
        errors.push("spec.hosts", "at least one host is required");
    }
    export_to("spec", &spec.export_to, errors);
    if spec.workload_selector.is_some() {
        errors.unsupported("spec.workloadSelector");
    }
    let resolution = match spec.resolution.unwrap_or_default() {
        CrdResolution::None => Resolution::Passthrough,
        CrdResolution::Static => Resolution::Static,
        CrdResolution::Dns => Resolution::Dns,
        CrdResolution::DnsRoundRobin => Resolution::DnsRoundRobin,
        CrdResolution::DynamicDns => {
            errors.unsupported("spec.resolution");
            Resolution::Dns
        }
    };
    let mut port_names = BTreeSet::new();
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let path = format!("spec.ports[{i}]");
            if !p.name.is_empty() && !port_names.insert(p.name.as_str()) {
                errors.push(
                    format!("{path}.name"),
                    format!("port name {} is used twice", p.name),
                );
            }
            let number = port_number(&format!("{path}.number"), p.number, errors)?;
            let target_port = p
                .target_port
                .filter(|t| *t != 0)
                .and_then(|t| port_number(&format!("{path}.targetPort"), t, errors));
            let protocol = p
                .protocol
                .as_deref()
                .map_or(Protocol::Unknown, Protocol::parse);
            Some(ServicePort {
                name: if p.name.is_empty() {
                    number.to_string()
                } else {
                    p.name.clone()
                },
                number,
                protocol,
                target_port,
            })
        })
        .collect();
    let endpoints: Vec<Endpoint> = spec
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let path = format!("spec.endpoints[{i}]");
            let address = e.address.clone().unwrap_or_default();
            if address.is_empty() {
                errors.push(format!("{path}.address"), "an address is required");
            } else if resolution == Resolution::Static && address.parse::<IpAddr>().is_err() {
                errors.push(
                    format!("{path}.address"),
                    format!("{address:?} is not an IP address, as resolution STATIC needs"),
                );
            }
            let ports: BTreeMap<String, u16> = e
                .ports
                .iter()
                .filter_map(|(name, &n)| {
                    Some((
                        name.clone(),
                        port_number(&format!("{path}.ports.{name}"), n, errors)?,
                    ))
                })
                .collect();
            Endpoint {
                address,
                ports,
                labels: e.labels.clone(),
                weight: e.weight.filter(|w| *w > 0),
            }
        })
        .collect();
    if resolution == Resolution::Static && endpoints.is_empty() {
        errors.push(
            "spec.endpoints",
            "resolution STATIC needs at least one endpoint",
        );
    }
    let hosts: Vec<String> = spec
        .hosts
        .iter()
        .map(|h| qualify_host(h, &id.namespace))
        .collect();
    // DNS without endpoints: the proxy resolves each host itself.
    let self_resolved =
        matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin) && endpoints.is_empty();
    if self_resolved {
        for (i, host) in hosts.iter().enumerate().filter(|(_, h)| h.starts_with('*')) {
            errors.push(
                format!("spec.hosts[{i}]"),
                format!("wildcard host {host} cannot be resolved by DNS; list endpoints"),
            );
        }
    }
    hosts
        .into_iter()
        .map(|hostname| Service {
            endpoints: if self_resolved {
                vec![Endpoint {
                    address: hostname.clone(),
                    ports: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    weight: None,
                }]
            } else {
                endpoints.clone()
            },
            hostname,
            namespace: id.namespace.clone(),
            ports: ports.clone(),
            resolution,
            origin: id.clone(),
        })
        .collect()
}
