//! VirtualService -> model: hosts, matches and destinations here; the
//! actions and settings of a rule in `actions`. Every bad field is named.

use std::collections::BTreeMap;

use weft_crds::{
    Delegate as CrdDelegate, Destination, HttpMatchRequest, HttpRoute as CrdHttpRoute,
    StringMatch as CrdStringMatch, VirtualServiceSpec,
};

use super::common::{is_header_name, route_weight, settle_weights};
use super::{Errors, port_number};
use weft_model::{
    HeaderRules, HttpRoute, MESH_GATEWAY, Mirror, ResourceId, RouteDestination, RouteMatch,
    StringMatch, VirtualService, qualify_gateway, qualify_host,
};

mod actions;

use actions::{
    cors, direct_response, fault, header_rules, percent, percent_or_deprecated, redirect,
    retry_policy, rewrite,
};

pub(super) fn convert(
    id: &ResourceId,
    spec: &VirtualServiceSpec,
    errors: &mut Errors,
) -> VirtualService {
    for (i, e) in spec.export_to.iter().enumerate() {
        if e.is_empty() {
            errors.push(
                format!("spec.exportTo[{i}]"),
                "an empty namespace; use `.`, `*`, `~` or a namespace name",
            );
        }
    }
    let delegate = spec.hosts.is_empty();
    if delegate && !spec.gateways.is_empty() {
        errors.push(
            "spec.gateways",
            "a VirtualService without hosts is a delegate; its root's gateways apply, so it must not set gateways",
        );
    }
    if delegate && (!spec.tcp.is_empty() || !spec.tls.is_empty()) {
        errors.push(
            "spec.hosts",
            "at least one host is required (only HTTP rules can be delegated)",
        );
    }
    let tcp = super::l4_route::convert_tcp(&id.namespace, &spec.tcp, errors);
    let tls = super::l4_route::convert_tls(&id.namespace, &spec.tls, errors);
    let http = spec
        .http
        .iter()
        .enumerate()
        .map(|(i, route)| {
            let path = format!("spec.http[{i}]");
            if delegate && route.delegate.is_some() {
                errors.push(
                    format!("{path}.delegate"),
                    "a delegate VirtualService cannot delegate again (one level only, as in Istio)",
                );
            }
            http_route(&path, route, &id.namespace, errors)
        })
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
        export_to: spec.export_to.clone(),
    }
}

fn http_route(path: &str, route: &CrdHttpRoute, namespace: &str, errors: &mut Errors) -> HttpRoute {
    let matches = route
        .matches
        .iter()
        .enumerate()
        .map(|(j, m)| route_match(&format!("{path}.match[{j}]"), m, namespace, errors))
        .collect();
    check_one_action(path, route, errors);
    let destinations = if route.route.is_empty() {
        Vec::new()
    } else {
        route_destinations(path, route, namespace, errors)
    };
    let redirect = route
        .redirect
        .as_ref()
        .and_then(|r| redirect(&format!("{path}.redirect"), r, errors));
    if redirect.is_some() && route.rewrite.is_some() {
        errors.push(
            format!("{path}.rewrite"),
            "a redirect answers the client itself; rewrite only applies to forwarded requests",
        );
    }
    let direct_response = route
        .direct_response
        .as_ref()
        .and_then(|d| direct_response(&format!("{path}.directResponse"), d, errors));
    let delegate = route
        .delegate
        .as_ref()
        .and_then(|d| delegate_target(&format!("{path}.delegate"), d, namespace, errors));
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        errors.push(
            format!("{path}.mirrors"),
            "set mirror or mirrors, not both (as Istio requires)",
        );
    }
    let answers_itself = route.redirect.is_some() || route.direct_response.is_some();
    if answers_itself && route.fault.is_some() && route.cors_policy.is_some() {
        errors.unsupported_because(
            format!("{path}.fault"),
            "not supported by Weft yet together with corsPolicy on a rule that redirects or answers directly; move the fault to a rule that forwards (route)",
        );
    }
    let mirrors = mirrors(path, route, namespace, errors);
    HttpRoute {
        name: route.name.clone(),
        matches,
        destinations,
        redirect,
        direct_response,
        delegate,
        rewrite: route
            .rewrite
            .as_ref()
            .and_then(|r| rewrite(&format!("{path}.rewrite"), r, errors)),
        timeout: route.timeout.map(|t| t.0).filter(|t| !t.is_zero()),
        retries: route
            .retries
            .as_ref()
            .map(|r| retry_policy(&format!("{path}.retries"), r, errors)),
        fault: route
            .fault
            .as_ref()
            .map(|f| fault(&format!("{path}.fault"), f, errors)),
        mirrors,
        cors: route
            .cors_policy
            .as_ref()
            .map(|c| cors(&format!("{path}.corsPolicy"), c, errors)),
        headers: header_rules(&format!("{path}.headers"), route.headers.as_ref(), errors),
    }
}

/// A rule forwards, redirects, answers or delegates: exactly one.
fn check_one_action(path: &str, route: &CrdHttpRoute, errors: &mut Errors) {
    let actions: Vec<&str> = [
        ("route", !route.route.is_empty()),
        ("redirect", route.redirect.is_some()),
        ("directResponse", route.direct_response.is_some()),
        ("delegate", route.delegate.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if actions.len() > 1 {
        errors.push(
            path,
            format!(
                "sets {}; a rule forwards (route), redirects, answers (directResponse) or delegates: one of them",
                actions.join(" and ")
            ),
        );
    }
    if actions.is_empty() {
        errors.push(
            format!("{path}.route"),
            "at least one destination is required (or a redirect, directResponse or delegate)",
        );
    }
}

/// The VirtualService a rule delegates to; a namespace defaults to the
/// rule's own.
fn delegate_target(
    path: &str,
    d: &CrdDelegate,
    namespace: &str,
    errors: &mut Errors,
) -> Option<ResourceId> {
    let Some(name) = d.name.as_deref().filter(|n| !n.is_empty()) else {
        errors.push(
            format!("{path}.name"),
            "the delegate VirtualService's name is required",
        );
        return None;
    };
    let ns = d
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace);
    Some(ResourceId::new(weft_crds::Kind::VirtualService, ns, name))
}

/// `mirror` (with `mirrorPercentage` or the older `mirrorPercent`) and
/// `mirrors`, in that order.
fn mirrors(path: &str, route: &CrdHttpRoute, namespace: &str, errors: &mut Errors) -> Vec<Mirror> {
    let mut mirrors = Vec::new();
    if let Some(m) = &route.mirror {
        let field = format!("{path}.mirror");
        let percentage = percent_or_deprecated(
            &format!("{path}.mirrorPercentage"),
            route.mirror_percentage,
            &format!("{path}.mirrorPercent"),
            route.mirror_percent.map(f64::from),
            errors,
        );
        if let Some(destination) = destination(&field, m, namespace, errors) {
            mirrors.push(Mirror {
                destination,
                percentage,
            });
        }
    } else if route.mirror_percentage.is_some() || route.mirror_percent.is_some() {
        errors.push(
            format!("{path}.mirrorPercentage"),
            "applies to `mirror`, which is not set (`mirrors` carry their own percentage)",
        );
    }
    for (k, m) in route.mirrors.iter().enumerate() {
        let field = format!("{path}.mirrors[{k}]");
        let percentage = percent(&format!("{field}.percentage"), m.percentage, errors);
        if let Some(destination) = destination(
            &format!("{field}.destination"),
            &m.destination,
            namespace,
            errors,
        ) {
            mirrors.push(Mirror {
                destination,
                percentage,
            });
        }
    }
    mirrors
}

fn destination(
    field: &str,
    d: &Destination,
    namespace: &str,
    errors: &mut Errors,
) -> Option<RouteDestination> {
    if d.host.is_empty() {
        errors.push(format!("{field}.host"), "a destination host is required");
        return None;
    }
    let port = d.port.as_ref().and_then(|p| p.number);
    let port = port.and_then(|p| port_number(&format!("{field}.port.number"), p, errors));
    Some(RouteDestination {
        host: qualify_host(&d.host, namespace),
        subset: d.subset.clone().filter(|s| !s.is_empty()),
        port,
        weight: 100,
        headers: HeaderRules::default(),
    })
}

fn route_destinations(
    path: &str,
    route: &CrdHttpRoute,
    namespace: &str,
    errors: &mut Errors,
) -> Vec<RouteDestination> {
    let mut destinations = Vec::new();
    for (k, d) in route.route.iter().enumerate() {
        let field = format!("{path}.route[{k}]");
        let weight = route_weight(&field, d.weight, errors);
        let Some(mut destination) = destination(
            &format!("{field}.destination"),
            &d.destination,
            namespace,
            errors,
        ) else {
            continue;
        };
        destination.weight = weight;
        destination.headers = header_rules(&format!("{field}.headers"), d.headers.as_ref(), errors);
        destinations.push(destination);
    }
    let complete = destinations.len() == route.route.len();
    settle_weights(path, &mut destinations, complete, errors);
    destinations
}

fn route_match(
    path: &str,
    m: &HttpMatchRequest,
    namespace: &str,
    errors: &mut Errors,
) -> RouteMatch {
    let opt = |field: &str, value: &Option<CrdStringMatch>, errors: &mut Errors| {
        value
            .as_ref()
            .and_then(|v| string_match(&format!("{path}.{field}"), v, false, errors))
    };
    let uri = opt("uri", &m.uri, errors);
    let scheme = opt("scheme", &m.scheme, errors);
    let method = opt("method", &m.method, errors);
    let authority = opt("authority", &m.authority, errors);
    let headers = header_matches(&format!("{path}.headers"), &m.headers, errors);
    let without_headers = header_matches(
        &format!("{path}.withoutHeaders"),
        &m.without_headers,
        errors,
    );
    let query_params = m
        .query_params
        .iter()
        .filter_map(|(name, value)| {
            let field = format!("{path}.queryParams.{name}");
            if name.is_empty() {
                errors.push(&field, "a query parameter name is required");
            }
            Some((name.clone(), string_match(&field, value, true, errors)?))
        })
        .collect();
    let source_namespace = m.source_namespace.clone().filter(|n| !n.is_empty());
    let gateways = m
        .gateways
        .iter()
        .map(|g| qualify_gateway(g, namespace))
        .collect::<Vec<_>>();
    for (k, g) in gateways.iter().enumerate() {
        if g != MESH_GATEWAY && g.ends_with('/') {
            errors.push(
                format!("{path}.gateways[{k}]"),
                "a gateway name is required",
            );
        }
    }
    RouteMatch {
        name: m.name.clone().filter(|n| !n.is_empty()),
        stat_prefix: m.stat_prefix.clone().filter(|p| !p.is_empty()),
        uri,
        scheme,
        method,
        authority,
        headers,
        without_headers,
        query_params,
        ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
        port: m
            .port
            .filter(|p| *p != 0)
            .and_then(|p| port_number(&format!("{path}.port"), p, errors)),
        source_labels: m.source_labels.clone(),
        source_namespace,
        gateways,
    }
}

fn header_matches(
    path: &str,
    headers: &BTreeMap<String, CrdStringMatch>,
    errors: &mut Errors,
) -> Vec<(String, StringMatch)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let field = format!("{path}.{name}");
            if !is_header_name(name) {
                errors.push(&field, format!("{name:?} is not a valid HTTP header name"));
            }
            Some((
                name.to_ascii_lowercase(),
                string_match(&field, value, true, errors)?,
            ))
        })
        .collect()
}

/// `allow_present`: `{}` means "present" (headers, query parameters).
fn string_match(
    path: &str,
    m: &CrdStringMatch,
    allow_present: bool,
    errors: &mut Errors,
) -> Option<StringMatch> {
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
        CrdStringMatch::Empty if allow_present => Some(StringMatch::Present),
        CrdStringMatch::Empty => {
            errors.push(path, "one of exact, prefix or regex is required");
            None
        }
    }
}
