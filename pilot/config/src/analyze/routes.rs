//! Where a VirtualService's HTTP routes and mirrors go (the destination
//! host and port exist), and whether each Gateway it binds to serves its
//! hosts. Subsets, missing gateways and L4 destinations are validation's
//! own checks (see `validation.rs`).

use weft_model::{MESH_GATEWAY, RouteDestination, VirtualService, qualify_gateway};

use super::{Code, Context, Finding, Resource};
use crate::ConvertedResource;

pub(super) fn check(context: &Context<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for converted in &context.resources {
        let ConvertedResource::VirtualService(vs) = converted.resource else {
            continue;
        };
        let resource = Resource::of(converted.id);
        let mut problems = destinations(context, vs);
        problems.extend(gateway_hosts(context, vs));
        findings.extend(problems.into_iter().map(|(code, field, message, fix)| {
            Finding::new(code, resource.clone(), field, message, fix).at(converted.origin)
        }));
    }
    findings
}

type Problem = (Code, String, String, String);

fn destinations(context: &Context<'_>, vs: &VirtualService) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, route) in vs.http.iter().enumerate() {
        let routes = route
            .destinations
            .iter()
            .enumerate()
            .map(|(k, d)| (format!("spec.http[{i}].route[{k}].destination"), d));
        let mirrors = route.mirrors.iter().enumerate().map(|(k, m)| {
            (
                format!("spec.http[{i}].mirrors[{k}].destination"),
                &m.destination,
            )
        });
        for (path, destination) in routes.chain(mirrors) {
            problems.extend(destination_problem(context, &path, destination));
        }
    }
    problems
}

fn destination_problem(context: &Context<'_>, path: &str, d: &RouteDestination) -> Option<Problem> {
    if d.host.contains('*') {
        return None;
    }
    let Some(service) = context.snapshot.services.get(&d.host) else {
        return Some((
            Code::DestinationHostNotFound,
            format!("{path}.host"),
            format!("{} is not a service of the mesh: no Service or ServiceEntry declares it", d.host),
            "route to an existing Service or ServiceEntry host, or declare the host with a ServiceEntry".to_string(),
        ));
    };
    let port = d.port?;
    if service.port(port).is_some() {
        return None;
    }
    let known: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
    Some((
        Code::DestinationPortNotFound,
        format!("{path}.port.number"),
        format!("{} has no port {port}", d.host),
        format!("use one of the service's ports: {}", known.join(", ")),
    ))
}

/// Each host of a VirtualService bound to an existing Gateway must be one
/// a server of that Gateway serves, or the routes never apply there.
fn gateway_hosts(context: &Context<'_>, vs: &VirtualService) -> Vec<Problem> {
    let mut problems = Vec::new();
    for gateway in &vs.gateways {
        let key = qualify_gateway(gateway, &vs.id.namespace);
        if key == MESH_GATEWAY {
            continue;
        }
        let Some(gateway) = context.snapshot.gateways.iter().find(|g| g.key() == key) else {
            continue;
        };
        for (j, host) in vs.hosts.iter().enumerate() {
            let served = gateway
                .servers
                .iter()
                .flat_map(|s| &s.hosts)
                .any(|selector| selector.selects(&vs.id.namespace, host));
            if !served {
                problems.push((
                    Code::VirtualServiceHostNotInGateway,
                    format!("spec.hosts[{j}]"),
                    format!("host {host} is not served by any server of Gateway {key}"),
                    format!("add {host} to a server's hosts in Gateway {key}, or remove the host or the gateway from the VirtualService"),
                ));
            }
        }
    }
    problems
}
