//! RDS: one route configuration whose virtual hosts match each service by
//! its hostname, `host:port`, and the short forms Kubernetes DNS accepts.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, RetryPolicy as PbRetryPolicy, Route, RouteAction, RouteConfiguration,
    RouteMatch as PbRouteMatch, VirtualHost, WeightedCluster, header_matcher::HeaderMatchSpecifier,
    retry_policy::RetryHostPredicate, route::Action, route_action::ClusterSpecifier,
    route_match::PathSpecifier, weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use envoy_types::util::pack_any;

use super::{ProxyView, outbound_cluster_name, pb_duration};
use crate::model::{
    CLUSTER_DOMAIN, HttpRoute, MeshSnapshot, RetryPolicy, RouteDestination, RouteMatch, Service,
    StringMatch,
};

/// The name of the router listener's route configuration.
pub const ROUTER_ROUTE_CONFIG: &str = "router";

/// Istio's retry policy for routes that do not set `retries`.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const DEFAULT_RETRY_ATTEMPTS: u32 = 2;

/// The route configurations the proxy's listeners name, sorted by name.
pub fn build_route_configs(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<RouteConfiguration> {
    if view.router_address.is_none() {
        return Vec::new();
    }
    let mut taken = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for service in super::visible_services(snapshot, view) {
        let default_port = service.default_http_port();
        for port in service.ports.iter().filter(|p| p.protocol.is_http()) {
            let domains: Vec<String> = domains(service, port.number, default_port, view)
                .into_iter()
                .filter(|d| taken.insert(d.clone()))
                .collect();
            if domains.is_empty() {
                continue;
            }
            virtual_hosts.push(VirtualHost {
                name: format!("{}:{}", service.hostname, port.number),
                domains,
                routes: build_routes(snapshot, service, port.number),
                ..Default::default()
            });
        }
    }
    vec![RouteConfiguration {
        name: ROUTER_ROUTE_CONFIG.to_string(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }]
}

/// The names a client may use for `service` on `port`: each with `:port`,
/// and without it on the service's default HTTP port.
fn domains(
    service: &Service,
    port: u16,
    default_port: Option<u16>,
    view: &ProxyView,
) -> Vec<String> {
    let host = &service.hostname;
    let mut names = vec![host.clone()];
    if let Some(name_ns) = host.strip_suffix(&format!(".{CLUSTER_DOMAIN}")) {
        names.push(format!("{name_ns}.svc"));
        names.push(name_ns.to_string());
        if let Some((name, ns)) = name_ns.split_once('.')
            && ns == view.namespace
        {
            names.push(name.to_string());
        }
    }
    let mut domains: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
    if default_port == Some(port) {
        domains.extend(names);
    }
    domains
}

/// The routes of the virtual services for `service`, in order, ending with
/// a catch-all to the service itself when no rule matches everything.
fn build_routes(snapshot: &MeshSnapshot, service: &Service, port: u16) -> Vec<Route> {
    let mut routes: Vec<Route> = snapshot
        .virtual_services_for(&service.hostname)
        .flat_map(|vs| &vs.http)
        .flat_map(|rule| build_rule(snapshot, rule, service, port))
        .collect();
    let catch_all = routes
        .last()
        .is_some_and(|r| is_catch_all(r.r#match.as_ref()));
    if !catch_all {
        routes.push(Route {
            name: "default".to_string(),
            r#match: Some(prefix_match("/")),
            action: Some(Action::Route(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(outbound_cluster_name(
                    port,
                    None,
                    &service.hostname,
                ))),
                timeout: Some(pb_duration(std::time::Duration::ZERO)),
                retry_policy: Some(build_retry_policy(None)),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    routes
}

fn is_catch_all(m: Option<&PbRouteMatch>) -> bool {
    m.is_some_and(|m| {
        m.headers.is_empty()
            && m.query_parameters.is_empty()
            && matches!(&m.path_specifier, Some(PathSpecifier::Prefix(p)) if p == "/")
    })
}

/// One Envoy route per match of `rule` (Istio's matches are alternatives).
fn build_rule(
    snapshot: &MeshSnapshot,
    rule: &HttpRoute,
    service: &Service,
    port: u16,
) -> Vec<Route> {
    let action = build_action(snapshot, rule, service, port);
    let matches: Vec<PbRouteMatch> = if rule.matches.is_empty() {
        vec![prefix_match("/")]
    } else {
        rule.matches
            .iter()
            .filter(|m| m.port.is_none_or(|p| p == port))
            .map(build_match)
            .collect()
    };
    matches
        .into_iter()
        .map(|m| Route {
            name: rule.name.clone().unwrap_or_default(),
            r#match: Some(m),
            action: Some(Action::Route(action.clone())),
            ..Default::default()
        })
        .collect()
}

fn prefix_match(prefix: &str) -> PbRouteMatch {
    PbRouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(prefix.to_string())),
        ..Default::default()
    }
}

fn build_match(m: &RouteMatch) -> PbRouteMatch {
    let path_specifier = match &m.uri {
        None => PathSpecifier::Prefix("/".to_string()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(regex_matcher(r)),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(name, value)| header_matcher(name, value))
        .collect();
    if let Some(method) = &m.method {
        headers.push(header_matcher(":method", method));
    }
    PbRouteMatch {
        path_specifier: Some(path_specifier),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        ..Default::default()
    }
}

fn header_matcher(name: &str, value: &StringMatch) -> HeaderMatcher {
    let specifier = match value {
        // Envoy refuses an empty prefix; Istio means "present".
        StringMatch::Prefix(p) if p.is_empty() => HeaderMatchSpecifier::PresentMatch(true),
        other => HeaderMatchSpecifier::StringMatch(string_matcher(other)),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

fn string_matcher(value: &StringMatch) -> StringMatcher {
    let pattern = match value {
        StringMatch::Exact(v) => MatchPattern::Exact(v.clone()),
        StringMatch::Prefix(v) => MatchPattern::Prefix(v.clone()),
        StringMatch::Regex(v) => MatchPattern::SafeRegex(regex_matcher(v)),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

fn regex_matcher(regex: &str) -> RegexMatcher {
    RegexMatcher {
        regex: regex.to_string(),
        ..Default::default()
    }
}

fn build_action(
    snapshot: &MeshSnapshot,
    rule: &HttpRoute,
    service: &Service,
    port: u16,
) -> RouteAction {
    let weighted: Vec<(String, u32)> = rule
        .destinations
        .iter()
        .filter(|d| d.weight > 0)
        .map(|d| (destination_cluster(snapshot, d, service, port), d.weight))
        .collect();
    let cluster_specifier = match weighted.as_slice() {
        [(cluster, _)] => ClusterSpecifier::Cluster(cluster.clone()),
        _ => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: weighted
                .into_iter()
                .map(|(name, weight)| ClusterWeight {
                    name,
                    weight: Some(UInt32Value { value: weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    RouteAction {
        cluster_specifier: Some(cluster_specifier),
        hash_policy: rule
            .destinations
            .first()
            .map(|d| super::hash_policy::build_hash_policies(snapshot, d))
            .unwrap_or_default(),
        timeout: Some(pb_duration(rule.timeout.unwrap_or_default())),
        retry_policy: rule
            .retries
            .as_ref()
            .map_or(Some(build_retry_policy(None)), |r| {
                (r.attempts > 0).then(|| build_retry_policy(Some(r)))
            }),
        ..Default::default()
    }
}

/// The cluster of a destination. Without a port: the port the request came
/// in on for the same service, else the destination's only port.
fn destination_cluster(
    snapshot: &MeshSnapshot,
    destination: &RouteDestination,
    service: &Service,
    port: u16,
) -> String {
    let port = destination
        .port
        .or_else(|| (destination.host == service.hostname).then_some(port))
        .or_else(|| {
            let target = snapshot.services.get(&destination.host)?;
            match target.ports.as_slice() {
                [only] => Some(only.number),
                _ => None,
            }
        })
        .unwrap_or(port);
    outbound_cluster_name(port, destination.subset.as_deref(), &destination.host)
}

fn build_retry_policy(policy: Option<&RetryPolicy>) -> PbRetryPolicy {
    let (attempts, conditions): (u32, Vec<&str>) = match policy {
        None => (
            DEFAULT_RETRY_ATTEMPTS,
            DEFAULT_RETRY_ON.split(',').collect(),
        ),
        Some(p) if p.retry_on.is_empty() => (p.attempts, DEFAULT_RETRY_ON.split(',').collect()),
        Some(p) => (p.attempts, p.retry_on.iter().map(String::as_str).collect()),
    };
    // Istio lets `retryOn` list status codes; Envoy wants them apart.
    let (codes, mut names): (Vec<&str>, Vec<&str>) = conditions
        .into_iter()
        .partition(|c| c.parse::<u32>().is_ok());
    let retriable_status_codes: Vec<u32> = codes.iter().filter_map(|c| c.parse().ok()).collect();
    if !retriable_status_codes.is_empty() && !names.contains(&"retriable-status-codes") {
        names.push("retriable-status-codes");
    }
    PbRetryPolicy {
        retry_on: names.join(","),
        num_retries: Some(UInt32Value { value: attempts }),
        per_try_timeout: policy.and_then(|p| p.per_try_timeout).map(pb_duration),
        retriable_status_codes,
        retry_host_predicate: vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".to_string(),
            config_type: Some(
                envoy_types::pb::envoy::config::route::v3::retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                    pack_any(PreviousHostsPredicate::default()),
                ),
            ),
        }],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    }
}
