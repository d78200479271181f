//! VirtualService `tcp` and `tls` rules -> model.
//!
//! Match attributes `port`, `sourceLabels`, `sourceNamespace` and
//! `gateways` are kept (gateway names qualified in the rule's namespace);
//! `destinationSubnets` and `sourceSubnet` are rejected as not supported.
//! Whether a rule can apply where it is bound (a gateway server, or the
//! sidecars of `mesh`) is checked by the config store, which sees the
//! VirtualService's `gateways`.

use weft_crds::{
    L4MatchAttributes, RouteDestination as CrdRouteDestination, TcpRoute as CrdTcpRoute,
    TlsMatchAttributes, TlsRoute as CrdTlsRoute,
};

use super::common::{route_weight, settle_weights};
use super::{Errors, port_number};
use weft_model::{
    L4Match, RouteDestination, TcpRoute, TlsMatch, TlsRoute, qualify_gateway, qualify_host,
};

pub(super) fn convert_tcp(
    namespace: &str,
    routes: &[CrdTcpRoute],
    errors: &mut Errors,
) -> Vec<TcpRoute> {
    routes
        .iter()
        .enumerate()
        .map(|(i, route)| {
            let path = format!("spec.tcp[{i}]");
            TcpRoute {
                matches: route
                    .matches
                    .iter()
                    .enumerate()
                    .map(|(j, m)| l4_match(&format!("{path}.match[{j}]"), m, namespace, errors))
                    .collect(),
                destinations: destinations(&path, &route.route, namespace, errors),
            }
        })
        .collect()
}

pub(super) fn convert_tls(
    namespace: &str,
    routes: &[CrdTlsRoute],
    errors: &mut Errors,
) -> Vec<TlsRoute> {
    routes
        .iter()
        .enumerate()
        .map(|(i, route)| {
            let path = format!("spec.tls[{i}]");
            if route.matches.is_empty() {
                errors.push(
                    format!("{path}.match"),
                    "a TLS rule needs at least one match with sniHosts",
                );
            }
            TlsRoute {
                matches: route
                    .matches
                    .iter()
                    .enumerate()
                    .map(|(j, m)| tls_match(&format!("{path}.match[{j}]"), m, namespace, errors))
                    .collect(),
                destinations: destinations(&path, &route.route, namespace, errors),
            }
        })
        .collect()
}

/// [`CommonMatch`] of a TCP or a TLS match (the two types name the shared
/// fields alike).
macro_rules! common_attributes {
    ($m:expr) => {
        CommonMatch {
            destination_subnets: &$m.destination_subnets,
            port: $m.port,
            source_labels: &$m.source_labels,
            gateways: &$m.gateways,
            source_namespace: $m.source_namespace.as_deref(),
        }
    };
}

fn l4_match(path: &str, m: &L4MatchAttributes, namespace: &str, errors: &mut Errors) -> L4Match {
    if m.source_subnet.is_some() {
        errors.unsupported(format!("{path}.sourceSubnet"));
    }
    common_match(path, common_attributes!(m), namespace, errors)
}

fn tls_match(path: &str, m: &TlsMatchAttributes, namespace: &str, errors: &mut Errors) -> TlsMatch {
    if m.sni_hosts.is_empty() {
        errors.push(
            format!("{path}.sniHosts"),
            "at least one SNI host is required",
        );
    }
    let mut sni_hosts = Vec::new();
    for (k, host) in m.sni_hosts.iter().enumerate() {
        let host = host.to_ascii_lowercase();
        if !is_sni_pattern(&host) {
            errors.push(
                format!("{path}.sniHosts[{k}]"),
                format!("{host:?} is not a DNS name or a `*.suffix` wildcard"),
            );
        }
        sni_hosts.push(host);
    }
    let l4 = common_match(path, common_attributes!(m), namespace, errors);
    TlsMatch { sni_hosts, l4 }
}

/// The attributes TCP and TLS matches share, borrowed from either.
struct CommonMatch<'a> {
    destination_subnets: &'a [String],
    port: Option<u32>,
    source_labels: &'a std::collections::BTreeMap<String, String>,
    gateways: &'a [String],
    source_namespace: Option<&'a str>,
}

fn common_match(path: &str, m: CommonMatch<'_>, namespace: &str, errors: &mut Errors) -> L4Match {
    if !m.destination_subnets.is_empty() {
        errors.unsupported(format!("{path}.destinationSubnets"));
    }
    for (k, gateway) in m.gateways.iter().enumerate() {
        if gateway.is_empty() {
            errors.push(
                format!("{path}.gateways[{k}]"),
                "a gateway name is required",
            );
        }
    }
    L4Match {
        destination_subnets: Vec::new(),
        port: m
            .port
            .and_then(|p| port_number(&format!("{path}.port"), p, errors)),
        source_labels: m.source_labels.clone(),
        gateways: m
            .gateways
            .iter()
            .map(|g| qualify_gateway(g, namespace))
            .collect(),
        source_namespace: m.source_namespace.map(str::to_string),
    }
}

/// A DNS name, optionally with a leading `*.`, or `*`.
fn is_sni_pattern(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    host == "*"
        || (!name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }))
}

fn destinations(
    path: &str,
    route: &[CrdRouteDestination],
    namespace: &str,
    errors: &mut Errors,
) -> Vec<RouteDestination> {
    if route.is_empty() {
        errors.push(
            format!("{path}.route"),
            "at least one destination is required",
        );
        return Vec::new();
    }
    let mut destinations = Vec::new();
    for (k, d) in route.iter().enumerate() {
        let field = format!("{path}.route[{k}]");
        if d.destination.host.is_empty() {
            errors.push(
                format!("{field}.destination.host"),
                "a destination host is required",
            );
        }
        let weight = route_weight(&field, d.weight, errors);
        let port = d.destination.port.as_ref().and_then(|p| p.number);
        let port =
            port.and_then(|p| port_number(&format!("{field}.destination.port.number"), p, errors));
        destinations.push(RouteDestination {
            host: qualify_host(&d.destination.host, namespace),
            subset: d.destination.subset.clone().filter(|s| !s.is_empty()),
            port,
            weight,
            ..Default::default()
        });
    }
    settle_weights(path, &mut destinations, true, errors);
    destinations
}
