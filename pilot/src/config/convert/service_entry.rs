//! ServiceEntry -> model: one service per host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use weft_crds::{Resolution as CrdResolution, ServiceEntrySpec};

use super::{Errors, port_number};
use crate::model::{
    Endpoint, Protocol, Resolution, ResourceId, Service, ServicePort, qualify_host,
};

pub(super) fn convert(
    id: &ResourceId,
    spec: &ServiceEntrySpec,
    errors: &mut Errors,
) -> Vec<Service> {
    if spec.hosts.is_empty() {
        errors.push("spec.hosts", "at least one host is required");
    }
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
            export_to: spec.export_to.clone(),
            origin: id.clone(),
        })
        .collect()
}
