//! Service ports: each must say its protocol (by `appProtocol` or a name
//! like `http-web`; Weft's router does not route a port of unknown
//! protocol), and a pod behind several Services must not be given two
//! protocols for one port.

use std::collections::BTreeMap;

use weft_model::Protocol;

use super::{Cluster, Code, Context, Finding, Resource};

pub(super) fn check(context: &Context<'_>) -> Vec<Finding> {
    let mut findings = port_names(context.cluster);
    findings.extend(conflicting_protocols(context));
    findings
}

/// The protocol check `weft validate` runs on Services too.
pub(super) fn port_names(cluster: &Cluster) -> Vec<Finding> {
    let mut findings = Vec::new();
    for service in &cluster.services {
        if service.meta.is_system() {
            continue;
        }
        for (i, port) in service.ports.iter().enumerate() {
            let l4 = port.protocol.as_deref().unwrap_or("TCP");
            if !l4.eq_ignore_ascii_case("TCP") || port.mesh_protocol() != Protocol::Unknown {
                continue;
            }
            let name = port.name.as_deref().unwrap_or_default();
            let (field, message) = match &port.app_protocol {
                Some(app) => (
                    format!("spec.ports[{i}].appProtocol"),
                    format!(
                        "port {} has appProtocol {app:?}, which names no protocol Istio knows, and its name {name:?} none either",
                        port.port
                    ),
                ),
                None => (
                    format!("spec.ports[{i}].name"),
                    format!(
                        "port {} is named {name:?}, which does not give its protocol, and has no appProtocol; its traffic is treated as opaque TCP",
                        port.port
                    ),
                ),
            };
            let suggestion = if name.is_empty() {
                "web".to_string()
            } else {
                name.to_string()
            };
            findings.push(
                Finding::new(
                    Code::PortNameIsNotUnderNamingConvention,
                    Resource::of_meta(&service.meta),
                    field,
                    message,
                    format!("name the port <protocol>[-<suffix>] (e.g. http-{suggestion}, grpc-{suggestion}, tcp-{suggestion}) or set appProtocol: http"),
                )
                .at(&service.meta.origin),
            );
        }
    }
    findings
}

fn conflicting_protocols(context: &Context<'_>) -> Vec<Finding> {
    let cluster = context.cluster;
    let mut findings = Vec::new();
    for pod in &cluster.pods {
        if pod.meta.is_system() {
            continue;
        }
        // Port number -> (protocol, service, index) of the first Service.
        let mut seen: BTreeMap<i64, (Protocol, &str)> = BTreeMap::new();
        for service in &cluster.services {
            if !cluster.selected_pods(service).any(|p| std::ptr::eq(p, pod)) {
                continue;
            }
            for port in &service.ports {
                let protocol = port.mesh_protocol();
                match seen.get(&port.port) {
                    None => {
                        seen.insert(port.port, (protocol, &service.meta.name));
                    }
                    Some((first, other)) if *first != protocol => findings.push(
                        Finding::new(
                            Code::ConflictingPortProtocols,
                            Resource::of_meta(&pod.meta),
                            format!("{}.labels", pod.meta_path),
                            format!(
                                "{} {} is selected by Services {other} and {} that give port {} different protocols ({first:?} and {protocol:?}); one of them is served wrongly",
                                pod.meta.kind, pod.meta.name, service.meta.name, port.port
                            ),
                            "give the port the same protocol in every Service that selects these pods (its name prefix or appProtocol)",
                        )
                        .at(&pod.meta.origin),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
    findings
}
