//! What a VirtualService needs from the rest of the mesh: the subsets its
//! routes and mirrors name, and for its `tcp` / `tls` rules a place to
//! apply (a gateway; not `mesh` yet) and destinations whose port is known.

use std::collections::BTreeMap;

use super::assemble::{Checked, Resource};
use crate::FieldError;
use weft_model::{
    MESH_GATEWAY, MeshSnapshot, ResourceId, RouteDestination, VirtualService, qualify_gateway,
};

/// The VirtualServices whose references `snapshot` (services, rules and
/// gateways; no VirtualServices yet) satisfies; the others are reported
/// and rejected.
pub(super) fn resolve(
    virtual_services: &[Resource<'_, VirtualService>],
    snapshot: &MeshSnapshot,
) -> Checked<BTreeMap<ResourceId, VirtualService>> {
    let mut checked = Checked::<BTreeMap<ResourceId, VirtualService>>::default();
    for (id, vs) in virtual_services {
        let problems = unresolved(snapshot, vs);
        if problems.is_empty() {
            checked.served.insert((*id).clone(), (*vs).clone());
        } else {
            checked.reject(id, problems);
        }
    }
    checked
}

/// The gateways a VirtualService is bound to, qualified; `mesh` when it
/// names none.
pub(super) fn bound_gateways(vs: &VirtualService) -> Vec<String> {
    if vs.gateways.is_empty() {
        return vec![MESH_GATEWAY.to_string()];
    }
    vs.gateways
        .iter()
        .map(|g| qualify_gateway(g, &vs.id.namespace))
        .collect()
}

/// References a virtual service makes that the mesh cannot satisfy.
pub(super) fn unresolved(snapshot: &MeshSnapshot, vs: &VirtualService) -> Vec<FieldError> {
    let mut problems = l4_references(snapshot, vs);
    for (i, route) in vs.http.iter().enumerate() {
        let destinations = route
            .destinations
            .iter()
            .enumerate()
            .map(|(k, d)| (format!("spec.http[{i}].route[{k}].destination.subset"), d));
        let mirrors = route.mirrors.iter().enumerate().map(|(k, m)| {
            (
                format!("spec.http[{i}].mirrors[{k}].destination.subset"),
                &m.destination,
            )
        });
        for (field, d) in destinations.chain(mirrors) {
            let Some(subset) = &d.subset else { continue };
            if snapshot.subset(&d.host, subset).is_none() {
                let message = match snapshot.destination_rules.get(&d.host) {
                    Some(rule) => format!(
                        "subset {subset} is not defined by {} for {}",
                        rule.id, d.host
                    ),
                    None => format!(
                        "subset {subset} is not defined by any DestinationRule for {}",
                        d.host
                    ),
                };
                problems.push(FieldError::unresolved(field, message));
            }
        }
    }
    problems
}

/// What a VirtualService's L4 rules need from the mesh: destinations
/// whose cluster is known.
fn l4_references(snapshot: &MeshSnapshot, vs: &VirtualService) -> Vec<FieldError> {
    let tcp = vs
        .tcp
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("spec.tcp[{i}]"), &r.destinations));
    let tls = vs
        .tls
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("spec.tls[{i}]"), &r.destinations));
    tcp.chain(tls)
        .flat_map(|(path, destinations)| l4_destination_ports(snapshot, &path, destinations))
        .collect()
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
            problems.push(FieldError::unresolved(
                format!("{field}.host"),
                format!(
                    "{} is not a service of the mesh (no ServiceEntry declares it)",
                    d.host
                ),
            ));
            continue;
        };
        match d.port {
            Some(port) if service.port(port).is_none() => problems.push(FieldError::unresolved(
                format!("{field}.port.number"),
                format!("{} has no port {port}", d.host),
            )),
            None if service.ports.len() != 1 => problems.push(FieldError::unresolved(
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
            problems.push(FieldError::unresolved(
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
