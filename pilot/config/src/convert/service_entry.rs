//! ServiceEntry -> model: one service per host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use weft_crds::{
    Location as CrdLocation, Resolution as CrdResolution, ServiceEntrySpec,
    ServicePort as CrdServicePort, WorkloadEntry,
};

use super::common::export_to;
use super::{Errors, port_number};
use weft_model::{
    Endpoint, Locality, Location, Protocol, Resolution, ResourceId, Service, ServicePort,
    qualify_host,
};

pub(super) fn convert(
    id: &ResourceId,
    spec: &ServiceEntrySpec,
    errors: &mut Errors,
) -> Vec<Service> {
    check_spec(spec, errors);
    let location = match spec.location {
        Some(CrdLocation::MeshInternal) => Location::MeshInternal,
        Some(CrdLocation::MeshExternal) | None => Location::MeshExternal,
    };
    let resolution = resolution(spec.resolution.unwrap_or_default(), errors);
    let ports = ports(&spec.ports, errors);
    let endpoints: Vec<Endpoint> = spec
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            endpoint(
                &format!("spec.endpoints[{i}]"),
                e,
                resolution,
                &ports,
                errors,
            )
        })
        .collect();
    check_endpoint_count(resolution, endpoints.len(), errors);
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
    let service = |hostname: String| Service {
        endpoints: if self_resolved {
            vec![Endpoint {
                address: hostname.clone(),
                ..Default::default()
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
        addresses: spec.addresses.clone(),
        location,
    };
    hosts.into_iter().map(service).collect()
}

/// The fields that stand alone: hosts, what Weft cannot translate,
/// `exportTo` and `addresses`.
fn check_spec(spec: &ServiceEntrySpec, errors: &mut Errors) {
    if spec.hosts.is_empty() {
        errors.push("spec.hosts", "at least one host is required");
    }
    if spec.workload_selector.is_some() {
        errors.unsupported_because(
            "spec.workloadSelector",
            "not supported by Weft yet: standalone Weft has no workloads (pods or \
             WorkloadEntries) to select; list the instances under endpoints instead",
        );
    }
    if !spec.subject_alt_names.is_empty() {
        errors.unsupported_because(
            "spec.subjectAltNames",
            "not supported by Weft yet: it verifies ISTIO_MUTUAL peers, which comes with \
             Weft's CA; use a DestinationRule tls.subjectAltNames with mode SIMPLE or MUTUAL",
        );
    }
    export_to("spec.exportTo", &spec.export_to, errors);
    for (i, a) in spec.addresses.iter().enumerate() {
        if !is_ip_or_cidr(a) {
            errors.push(
                format!("spec.addresses[{i}]"),
                format!("{a:?} is not an IP address or CIDR block"),
            );
        }
    }
}

fn resolution(resolution: CrdResolution, errors: &mut Errors) -> Resolution {
    match resolution {
        CrdResolution::None => Resolution::Passthrough,
        CrdResolution::Static => Resolution::Static,
        CrdResolution::Dns => Resolution::Dns,
        CrdResolution::DnsRoundRobin => Resolution::DnsRoundRobin,
        CrdResolution::DynamicDns => {
            errors.unsupported("spec.resolution");
            Resolution::Dns
        }
    }
}

/// The declared ports; names and numbers must be unique.
fn ports(ports: &[CrdServicePort], errors: &mut Errors) -> Vec<ServicePort> {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let path = format!("spec.ports[{i}]");
            if !p.name.is_empty() && !names.insert(p.name.as_str()) {
                errors.push(
                    format!("{path}.name"),
                    format!("port name {} is used twice", p.name),
                );
            }
            let number = port_number(&format!("{path}.number"), p.number, errors)?;
            if !numbers.insert(number) {
                errors.push(
                    format!("{path}.number"),
                    format!("port {number} is declared twice"),
                );
            }
            let target_port = p
                .target_port
                .filter(|t| *t != 0)
                .and_then(|t| port_number(&format!("{path}.targetPort"), t, errors));
            Some(ServicePort {
                name: if p.name.is_empty() {
                    number.to_string()
                } else {
                    p.name.clone()
                },
                number,
                protocol: port_protocol(&path, p.protocol.as_deref(), errors),
                target_port,
            })
        })
        .collect()
}

fn port_protocol(path: &str, name: Option<&str>, errors: &mut Errors) -> Protocol {
    let protocol = name.map_or(Protocol::Unknown, Protocol::parse);
    if let Some(name) = name
        && protocol == Protocol::Unknown
    {
        if matches!(name.to_ascii_uppercase().as_str(), "UDP" | "HTTP_PROXY") {
            errors.unsupported_because(
                format!("{path}.protocol"),
                format!("not supported by Weft yet: protocol {name}"),
            );
        } else {
            errors.push(
                format!("{path}.protocol"),
                format!(
                    "unknown protocol {name:?}; use HTTP, HTTP2, GRPC, HTTPS, TLS, TCP, \
                     MONGO, REDIS or MYSQL"
                ),
            );
        }
    }
    protocol
}

fn endpoint(
    path: &str,
    e: &WorkloadEntry,
    resolution: Resolution,
    declared: &[ServicePort],
    errors: &mut Errors,
) -> Endpoint {
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
    for name in ports.keys() {
        if !declared.iter().any(|p| &p.name == name) {
            errors.push(
                format!("{path}.ports.{name}"),
                format!("the service has no port named {name:?}"),
            );
        }
    }
    Endpoint {
        address,
        ports,
        labels: e.labels.clone(),
        weight: e.weight.filter(|w| *w > 0),
        locality: locality(path, e.locality.as_deref(), errors),
        network: e.network.clone().filter(|n| !n.is_empty()),
        service_account: e.service_account.clone().filter(|s| !s.is_empty()),
        workload_name: None,
    }
}

fn locality(path: &str, text: Option<&str>, errors: &mut Errors) -> Option<Locality> {
    let text = text.filter(|l| !l.is_empty())?;
    let parsed = Locality::parse(text);
    if parsed.is_none() {
        errors.push(
            format!("{path}.locality"),
            format!("{text:?} is not region/zone/subzone"),
        );
    }
    parsed
}

/// How many endpoints each resolution takes.
fn check_endpoint_count(resolution: Resolution, endpoints: usize, errors: &mut Errors) {
    if resolution == Resolution::Passthrough && endpoints > 0 {
        errors.push(
            "spec.endpoints",
            "resolution NONE forwards to the address the caller asked for; it takes no endpoints",
        );
    }
    if resolution == Resolution::DnsRoundRobin && endpoints > 1 {
        errors.push(
            "spec.endpoints",
            "resolution DNS_ROUND_ROBIN takes at most one endpoint (Envoy's LOGICAL_DNS \
             cluster has one host); use DNS for several",
        );
    }
    if resolution == Resolution::Static && endpoints == 0 {
        errors.push(
            "spec.endpoints",
            "resolution STATIC needs at least one endpoint",
        );
    }
}

fn is_ip_or_cidr(text: &str) -> bool {
    match text.split_once('/') {
        None => text.parse::<IpAddr>().is_ok(),
        Some((ip, len)) => match (ip.parse::<IpAddr>(), len.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(l)) => l <= 32,
            (Ok(IpAddr::V6(_)), Ok(l)) => l <= 128,
            _ => false,
        },
    }
}
