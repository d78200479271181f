//! Whole-mesh reports about gateways: a gateway a VirtualService names
//! should exist, and servers of different Gateways on the same proxies
//! must be able to share a port. Both leave the resources in place.

use std::collections::BTreeMap;

use super::{ConfigError, Origin, unresolved};
use weft_model::{Gateway, GatewayServer, MESH_GATEWAY, MeshSnapshot, ResourceId, qualify_gateway};

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
            errors.push(unresolved(
                origins,
                &vs.id,
                field,
                format!(
                    "gateway {gateway} does not exist; the rules apply to the VirtualService's other gateways only (define the Gateway, or use `mesh` for sidecars)"
                ),
            ));
        }
    }
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
            errors.push(unresolved(
                origins,
                &later.id,
                format!("spec.servers[{i}].port"),
                format!(
                    "port {} is already used by a {theirs} server of {} on the proxies both Gateways select; a {mine} server cannot share it, so {} keeps the port and this server is left out there",
                    server.listen_port, earlier.id, earlier.id
                ),
            ));
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
