//! Whole-mesh rules for Gateways and Sidecars, and for the VirtualServices
//! that bind to gateways: a gateway a VirtualService names must exist;
//! `tcp` / `tls` rules must be able to apply where they are bound.

use std::collections::BTreeMap;

use super::{ConfigError, ErrorReason, FieldError, Origin};
use weft_model::{
    Gateway, GatewayServer, MESH_GATEWAY, MeshSnapshot, ResourceId, RouteDestination, Sidecar,
    VirtualService, qualify_gateway,
};

/// Reports gateways that applied VirtualServices name but that do not
/// exist. As in Istio, the VirtualService still applies where it can (its
/// other gateways, `mesh`): a Gateway may be added later.
pub(super) fn report_missing_gateways(
    snapshot: &MeshSnapshot,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    let known = |g: &str| g == MESH_GATEWAY || snapshot.gateways.iter().any(|gw| gw.key() == g);
    for vs in &snapshot.virtual_services {
        let named = vs.gateways.iter().enumerate().map(|(i, g)| {
            (
                format!("spec.gateways[{i}]"),
                qualify_gateway(g, &vs.id.namespace),
            )
        });
        let in_matches = vs
            .tcp
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.matches.iter().enumerate().flat_map(move |(j, m)| {
                    m.gateways.iter().enumerate().map(move |(k, g)| {
                        (format!("spec.tcp[{i}].match[{j}].gateways[{k}]"), g.clone())
                    })
                })
            })
            .chain(vs.tls.iter().enumerate().flat_map(|(i, r)| {
                r.matches.iter().enumerate().flat_map(move |(j, m)| {
                    m.l4.gateways.iter().enumerate().map(move |(k, g)| {
                        (format!("spec.tls[{i}].match[{j}].gateways[{k}]"), g.clone())
                    })
                })
            }));
        for (field, gateway) in named.chain(in_matches) {
            if known(&gateway) {
                continue;
            }
            errors.push(ConfigError {
                origin: origins.get(&vs.id).cloned().unwrap_or_else(|| Origin {
                    source: vs.id.to_string(),
                    document: None,
                }),
                resource: Some(vs.id.clone()),
                error: FieldError::new(
                    ErrorReason::UnresolvedReference,
                    field,
                    format!(
                        "gateway {gateway} does not exist; the rules apply to the VirtualService's other gateways only (define the Gateway, or use `mesh` for sidecars)"
                    ),
                ),
            });
        }
    }
}

/// A second namespace-wide Sidecar (no `workloadSelector`) in the same
/// namespace as an earlier one: Istio uses one, Weft reports the other.
pub(super) fn sidecar_conflict(sidecars: &[Sidecar], sidecar: &Sidecar) -> Option<FieldError> {
    if sidecar.workload_selector.is_some() {
        return None;
    }
    let other = sidecars
        .iter()
        .find(|s| s.id.namespace == sidecar.id.namespace && s.workload_selector.is_none())?;
    Some(FieldError::new(
        ErrorReason::UnresolvedReference,
        "spec.workloadSelector",
        format!(
            "namespace {} already has a Sidecar without workloadSelector ({}); only one may apply to the whole namespace",
            sidecar.id.namespace, other.id
        ),
    ))
}

/// What a VirtualService's L4 rules need from the mesh: a place where
/// they can apply (a gateway; not `mesh` yet) and destinations whose
/// cluster is known.
pub(super) fn gateway_references(snapshot: &MeshSnapshot, vs: &VirtualService) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let vs_gateways: Vec<String> = if vs.gateways.is_empty() {
        vec![MESH_GATEWAY.to_string()]
    } else {
        vs.gateways
            .iter()
            .map(|g| qualify_gateway(g, &vs.id.namespace))
            .collect()
    };
    let l4_rules = vs
        .tcp
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let gateways: Vec<&[String]> =
                r.matches.iter().map(|m| m.gateways.as_slice()).collect();
            (format!("spec.tcp[{i}]"), gateways, &r.destinations)
        })
        .chain(vs.tls.iter().enumerate().map(|(i, r)| {
            let gateways: Vec<&[String]> =
                r.matches.iter().map(|m| m.l4.gateways.as_slice()).collect();
            (format!("spec.tls[{i}]"), gateways, &r.destinations)
        }));
    for (path, match_gateways, destinations) in l4_rules {
        // Where the rule applies: each match's own gateways, else the
        // VirtualService's.
        let mut bound: Vec<&str> = Vec::new();
        if match_gateways.is_empty() {
            bound.extend(vs_gateways.iter().map(String::as_str));
        }
        for gateways in &match_gateways {
            if gateways.is_empty() {
                bound.extend(vs_gateways.iter().map(String::as_str));
            } else {
                bound.extend(gateways.iter().map(String::as_str));
            }
        }
        if bound.contains(&MESH_GATEWAY) {
            problems.push(FieldError::new(
                ErrorReason::Unsupported,
                path.clone(),
                "TCP and TLS routes for sidecars (gateway `mesh`) need traffic capture, which Weft does not have yet; not supported by Weft yet: bind the VirtualService (or the match) to a Gateway with `gateways:`",
            ));
        }
        problems.extend(l4_destination_ports(snapshot, &path, destinations));
    }
    problems
}

/// An L4 destination without a port must name a service with exactly one
/// port (there is no request port to fall back on).
fn l4_destination_ports(
    snapshot: &MeshSnapshot,
    path: &str,
    destinations: &[RouteDestination],
) -> Vec<FieldError> {
    let mut problems = Vec::new();
    for (k, d) in destinations.iter().enumerate() {
        let field = format!("{path}.route[{k}].destination");
        let Some(service) = snapshot.services.get(&d.host) else {
            problems.push(FieldError::new(
                ErrorReason::UnresolvedReference,
                format!("{field}.host"),
                format!(
                    "{} is not a service of the mesh (no ServiceEntry declares it)",
                    d.host
                ),
            ));
            continue;
        };
        match d.port {
            Some(port) if service.port(port).is_none() => problems.push(FieldError::new(
                ErrorReason::UnresolvedReference,
                format!("{field}.port.number"),
                format!("{} has no port {port}", d.host),
            )),
            None if service.ports.len() != 1 => problems.push(FieldError::new(
                ErrorReason::UnresolvedReference,
                format!("{field}.port"),
                format!(
                    "{} has {} ports; say which one with port.number",
                    d.host,
                    service.ports.len()
                ),
            )),
            _ => {}
        }
        if let Some(subset) = &d.subset
            && snapshot.subset(&d.host, subset).is_none()
        {
            problems.push(FieldError::new(
                ErrorReason::UnresolvedReference,
                format!("{field}.subset"),
                format!(
                    "subset {subset} is not defined by any DestinationRule for {}",
                    d.host
                ),
            ));
        }
    }
    problems
}

/// Reports servers of different Gateways that a proxy selected by both
/// would have to listen on the same address and port, but cannot share it
/// (plain HTTP with TCP or TLS, or two TCP servers). The earlier Gateway
/// (namespace/name order) gets the port; the later server is left out.
pub(super) fn report_port_conflicts(
    gateways: &[Gateway],
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    for (b, later) in gateways.iter().enumerate() {
        for (i, server) in later.servers.iter().enumerate() {
            // The server that decides the listener on a proxy both select:
            // the first one on the address, in Gateway order.
            let Some((earlier, other)) = gateways[..b]
                .iter()
                .filter(|earlier| selectors_overlap(earlier, later))
                .find_map(|earlier| {
                    earlier
                        .servers
                        .iter()
                        .find(|o| o.listen_port == server.listen_port && o.bind == server.bind)
                        .map(|o| (earlier, o))
                })
            else {
                continue;
            };
            let (mine, theirs) = (family(server), family(other));
            if mine == theirs && mine != "TCP" {
                continue;
            }
            errors.push(ConfigError {
                origin: origins.get(&later.id).cloned().unwrap_or_else(|| Origin {
                    source: later.id.to_string(),
                    document: None,
                }),
                resource: Some(later.id.clone()),
                error: FieldError::new(
                    ErrorReason::UnresolvedReference,
                    format!("spec.servers[{i}].port"),
                    format!(
                        "port {} is already used by a {theirs} server of {} on the proxies both Gateways select; a {mine} server cannot share it, so {} keeps the port and this server is left out there",
                        server.listen_port, earlier.id, earlier.id
                    ),
                ),
            });
        }
    }
}

/// Whether some proxy could carry both gateways' selector labels.
fn selectors_overlap(a: &Gateway, b: &Gateway) -> bool {
    a.selector
        .iter()
        .all(|(k, v)| b.selector.get(k).is_none_or(|w| w == v))
}

fn family(server: &GatewayServer) -> &'static str {
    match (&server.tls, server.protocol) {
        (None, p) if p.is_http() => "plain HTTP",
        (Some(_), _) => "HTTPS / TLS",
        (None, _) => "TCP",
    }
}
