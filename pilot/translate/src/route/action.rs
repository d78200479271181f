//! What a matched request gets: forwarded (weighted clusters, rewrites,
//! retries, mirrors), redirected, or answered directly; plus header rules.

use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source::Specifier,
    header_value_option::HeaderAppendAction,
};
use weft_envoy_api::pb::envoy::config::route::v3::{
    DirectResponseAction, RedirectAction, RetryPolicy as PbRetryPolicy, Route, RouteAction,
    WeightedCluster,
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    retry_policy::{RetryBackOff, RetryHostPredicate, RetryPriority},
    route::Action,
    route_action::{ClusterSpecifier, HostRewriteSpecifier, RequestMirrorPolicy},
    weighted_cluster::ClusterWeight,
};
use weft_envoy_api::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use weft_envoy_api::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use weft_envoy_api::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use weft_envoy_api::pb::google::protobuf::{Any, UInt32Value};
use weft_envoy_api::util::pack_any;

use super::filters;
use super::matching::regex_matcher;
use crate::{outbound_cluster_name, pb_duration};
use weft_model::{
    Body, HeaderOperations, HttpRoute, MeshSnapshot, Redirect, RedirectPort, RetryPolicy,
    RouteDestination,
};

/// Istio's retry policy for routes that do not set `retries`.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const DEFAULT_RETRY_ATTEMPTS: u32 = 2;

/// The route for `rule` on `hostname:port`, without its match.
pub(super) fn build_route(
    snapshot: &MeshSnapshot,
    rule: &HttpRoute,
    hostname: &str,
    port: u16,
    service_port: Option<u16>,
) -> Route {
    let mut typed_per_filter_config = BTreeMap::new();
    let fault = rule.fault.as_ref().map(filters::build_fault);
    if let Some(cors) = &rule.cors {
        typed_per_filter_config.insert(filters::CORS.to_string(), filters::build_cors(cors));
    }
    let mut headers = rule.headers.clone();
    let action = if let Some(redirect) = &rule.redirect {
        if let Some(fault) = fault {
            typed_per_filter_config.insert(filters::FAULT.to_string(), fault);
        }
        Action::Redirect(build_redirect(redirect, port))
    } else if let Some(direct) = &rule.direct_response {
        if let Some(fault) = fault {
            typed_per_filter_config.insert(filters::FAULT.to_string(), fault);
        }
        Action::DirectResponse(DirectResponseAction {
            status: u32::from(direct.status),
            body: direct.body.as_ref().map(|b| DataSource {
                specifier: Some(match b {
                    Body::Text(t) => Specifier::InlineString(t.clone()),
                    Body::Bytes(b) => Specifier::InlineBytes(b.clone()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    } else {
        let (action, destination_headers) =
            build_forward(snapshot, rule, hostname, service_port, fault);
        if let Some(extra) = destination_headers {
            merge_headers(&mut headers.request, &extra.request);
            merge_headers(&mut headers.response, &extra.response);
        }
        Action::Route(action)
    };
    // A route's per-filter map holds at most one entry (CORS, or the fault
    // of a rule that does not forward): Envoy's type is a BTreeMap, and more
    // entries would encode in a random order, changing content hashes.
    Route {
        name: rule.name.clone().unwrap_or_default(),
        action: Some(action),
        request_headers_to_add: header_values(&headers.request),
        request_headers_to_remove: headers.request.remove.clone(),
        response_headers_to_add: header_values(&headers.response),
        response_headers_to_remove: headers.response.remove.clone(),
        typed_per_filter_config,
        ..Default::default()
    }
}

/// Destination rules are applied after the route's (Istio: they win).
fn merge_headers(into: &mut HeaderOperations, extra: &HeaderOperations) {
    into.set.extend(extra.set.clone());
    into.add.extend(extra.add.clone());
    into.remove.extend(extra.remove.iter().cloned());
    into.remove.sort();
    into.remove.dedup();
}

fn header_values(ops: &HeaderOperations) -> Vec<HeaderValueOption> {
    let option = |(key, value): (&String, &String), action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue {
            key: key.clone(),
            value: value.clone(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    };
    ops.set
        .iter()
        .map(|kv| option(kv, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .chain(
            ops.add
                .iter()
                .map(|kv| option(kv, HeaderAppendAction::AppendIfExistsOrAdd)),
        )
        .collect()
}

/// The forwarding action, and the header rules of its only destination
/// (which go on the route, as there is no weighted cluster to carry them).
/// A fault goes on each weighted cluster (see [`build_route`]).
fn build_forward(
    snapshot: &MeshSnapshot,
    rule: &HttpRoute,
    hostname: &str,
    service_port: Option<u16>,
    fault: Option<Any>,
) -> (RouteAction, Option<weft_model::HeaderRules>) {
    let weighted: Vec<(&RouteDestination, String)> = rule
        .destinations
        .iter()
        .filter(|d| d.weight > 0)
        .map(|d| (d, destination_cluster(snapshot, d, hostname, service_port)))
        .collect();
    let (cluster_specifier, route_headers) = match (weighted.as_slice(), &fault) {
        ([(d, cluster)], None) => (
            ClusterSpecifier::Cluster(cluster.clone()),
            Some(d.headers.clone()),
        ),
        _ => (
            ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters: weighted
                    .iter()
                    .map(|(d, name)| ClusterWeight {
                        name: name.clone(),
                        weight: Some(UInt32Value { value: d.weight }),
                        request_headers_to_add: header_values(&d.headers.request),
                        request_headers_to_remove: d.headers.request.remove.clone(),
                        response_headers_to_add: header_values(&d.headers.response),
                        response_headers_to_remove: d.headers.response.remove.clone(),
                        typed_per_filter_config: fault
                            .iter()
                            .map(|f| (super::filters::FAULT.to_string(), f.clone()))
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            None,
        ),
    };
    let rewrite = rule.rewrite.as_ref();
    let action = RouteAction {
        cluster_specifier: Some(cluster_specifier),
        hash_policy: rule
            .destinations
            .first()
            .map(|d| super::super::hash_policy::build_hash_policies(snapshot, d))
            .unwrap_or_default(),
        timeout: Some(pb_duration(rule.timeout.unwrap_or_default())),
        retry_policy: rule
            .retries
            .as_ref()
            .map_or(Some(build_retry_policy(None)), |r| {
                (r.attempts > 0).then(|| build_retry_policy(Some(r)))
            }),
        prefix_rewrite: rewrite.and_then(|r| r.uri.clone()).unwrap_or_default(),
        regex_rewrite: rewrite
            .and_then(|r| r.uri_regex.as_ref())
            .map(|(pattern, substitution)| RegexMatchAndSubstitute {
                pattern: Some(regex_matcher(pattern)),
                substitution: substitution.clone(),
            }),
        host_rewrite_specifier: rewrite
            .and_then(|r| r.authority.clone())
            .map(HostRewriteSpecifier::HostRewriteLiteral),
        request_mirror_policies: rule
            .mirrors
            .iter()
            .map(|m| RequestMirrorPolicy {
                cluster: destination_cluster(snapshot, &m.destination, hostname, service_port),
                runtime_fraction: (m.percentage < 100.0).then(|| RuntimeFractionalPercent {
                    default_value: Some(filters::fractional_percent(m.percentage)),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    (action, route_headers)
}

fn build_redirect(redirect: &Redirect, port: u16) -> RedirectAction {
    let response_code = match redirect.code {
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        _ => RedirectResponseCode::MovedPermanently,
    };
    let port_redirect = match redirect.port {
        RedirectPort::Fixed(p) => u32::from(p),
        // Routes are built per request port, so that port is known here
        // (Istio does the same).
        RedirectPort::FromRequestPort => u32::from(port),
        // No port: Envoy then uses the scheme's default.
        RedirectPort::FromProtocolDefault | RedirectPort::Unset => 0,
    };
    RedirectAction {
        host_redirect: redirect.authority.clone().unwrap_or_default(),
        port_redirect,
        response_code: response_code as i32,
        scheme_rewrite_specifier: redirect
            .scheme
            .clone()
            .map(SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: redirect.uri.clone().map(PathRewriteSpecifier::PathRedirect),
        ..Default::default()
    }
}

/// The cluster of a destination. Without a port: `service_port` (the port
/// a mesh request came in on) when the destination is that service, else
/// the destination's only port, else `service_port` if it has it, else its
/// first port.
fn destination_cluster(
    snapshot: &MeshSnapshot,
    destination: &RouteDestination,
    hostname: &str,
    service_port: Option<u16>,
) -> String {
    let target = snapshot.services.get(&destination.host);
    let port = destination
        .port
        .or_else(|| service_port.filter(|_| destination.host == hostname))
        .or_else(|| match target?.ports.as_slice() {
            [only] => Some(only.number),
            _ => None,
        })
        .or_else(|| service_port.filter(|p| target.is_some_and(|t| t.port(*p).is_some())))
        .or_else(|| Some(target?.ports.first()?.number))
        .or(service_port)
        .unwrap_or_default();
    outbound_cluster_name(port, destination.subset.as_deref(), &destination.host)
}

pub(super) fn build_retry_policy(policy: Option<&RetryPolicy>) -> PbRetryPolicy {
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
    let ignore_previous_hosts = policy.is_none_or(|p| p.ignore_previous_hosts);
    let retry_host_predicate = if ignore_previous_hosts {
        vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".to_string(),
            config_type: Some(
                weft_envoy_api::pb::envoy::config::route::v3::retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                    pack_any(PreviousHostsPredicate::default()),
                ),
            ),
        }]
    } else {
        Vec::new()
    };
    PbRetryPolicy {
        retry_on: names.join(","),
        num_retries: Some(UInt32Value { value: attempts }),
        per_try_timeout: policy.and_then(|p| p.per_try_timeout).map(pb_duration),
        retriable_status_codes,
        host_selection_retry_max_attempts: if ignore_previous_hosts { 5 } else { 0 },
        retry_host_predicate,
        // Istio's retryRemoteLocalities: each retry prefers a priority
        // (locality) not tried yet.
        retry_priority: policy.filter(|p| p.retry_remote_localities).map(|_| RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".to_string(),
            config_type: Some(
                weft_envoy_api::pb::envoy::config::route::v3::retry_policy::retry_priority::ConfigType::TypedConfig(
                    pack_any(PreviousPrioritiesConfig { update_frequency: 2 }),
                ),
            ),
        }),
        retry_back_off: policy.and_then(|p| p.backoff).map(|b| RetryBackOff {
            base_interval: Some(pb_duration(b)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
