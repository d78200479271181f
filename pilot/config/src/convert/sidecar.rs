//! Sidecar -> model.
//!
//! Translated: `workloadSelector`, `egress[].hosts` (the services a sidecar
//! receives; no egress listener means `*/*`, as in Istio),
//! `outboundTrafficPolicy.mode` (`ALLOW_ANY` / `REGISTRY_ONLY`, for
//! captured sidecars; the router of a sidecar without capture routes
//! registry services only) and `ingress` listeners (`port`, `bind`,
//! `defaultEndpoint` as `IP:PORT`: Istio's way to declare a workload's
//! inbound ports without traffic capture).
//! Rejected as not supported yet: ingress `captureMode: IPTABLES`, `tls`,
//! `connectionPool` and `unix://` endpoints, `inboundConnectionPool`,
//! egress `port` / `bind` / `captureMode`, and `egressProxy`.

use weft_crds::{
    CaptureMode, IstioIngressListener, OutboundTrafficMode, OutboundTrafficPolicy, SidecarSpec,
};

use super::common::{host_selector, selector_labels};
use super::{Errors, port_number};
use weft_model::{HostSelector, IngressListener, Protocol, ResourceId, Sidecar};

pub(super) fn convert(id: &ResourceId, spec: &SidecarSpec, errors: &mut Errors) -> Sidecar {
    let ingress = ingress_listeners(&spec.ingress, errors);
    if spec.inbound_connection_pool.is_some() {
        errors.unsupported("spec.inboundConnectionPool");
    }
    let outbound_traffic_policy = spec
        .outbound_traffic_policy
        .as_ref()
        .and_then(|policy| outbound_traffic_policy(policy, errors));
    if spec.egress.len() > 1 {
        errors.push(
            "spec.egress",
            "only one egress listener is supported (listeners with their own port need traffic capture); put every host in one",
        );
    }
    let selector = selector_labels(
        "spec.workloadSelector.labels",
        "workloadSelector",
        spec.workload_selector.as_ref().map(|s| &s.labels),
        errors,
    );
    Sidecar {
        id: id.clone(),
        workload_selector: selector,
        egress_hosts: egress_hosts(spec, &id.namespace, errors),
        ingress,
        outbound_traffic_policy,
    }
}

/// The ingress listeners; no two on the same port and address.
fn ingress_listeners(
    listeners: &[IstioIngressListener],
    errors: &mut Errors,
) -> Vec<IngressListener> {
    let ingress: Vec<IngressListener> = listeners
        .iter()
        .enumerate()
        .filter_map(|(i, l)| ingress_listener(&format!("spec.ingress[{i}]"), l, errors))
        .collect();
    for (i, l) in ingress.iter().enumerate() {
        if ingress[..i]
            .iter()
            .any(|o| o.port == l.port && o.bind == l.bind)
        {
            errors.push(
                format!("spec.ingress[{i}].port.number"),
                format!("port {} is declared twice on {}", l.port, l.bind),
            );
        }
    }
    ingress
}

/// The mode, if set; an egress proxy is not supported yet.
fn outbound_traffic_policy(
    policy: &OutboundTrafficPolicy,
    errors: &mut Errors,
) -> Option<weft_model::OutboundTrafficPolicy> {
    if policy.egress_proxy.is_some() {
        errors.unsupported("spec.outboundTrafficPolicy.egressProxy");
    }
    policy.mode.map(|mode| match mode {
        OutboundTrafficMode::AllowAny => weft_model::OutboundTrafficPolicy::AllowAny,
        OutboundTrafficMode::RegistryOnly => weft_model::OutboundTrafficPolicy::RegistryOnly,
    })
}

/// The hosts of the egress listener (`*/*` without one, as in Istio).
fn egress_hosts(spec: &SidecarSpec, namespace: &str, errors: &mut Errors) -> Vec<HostSelector> {
    let mut egress_hosts = Vec::new();
    for (i, listener) in spec.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        errors.unsupported_each_set(
            &path,
            &[
                ("port", listener.port.is_some()),
                ("bind", listener.bind.is_some()),
                ("captureMode", listener.capture_mode.is_some()),
            ],
        );
        if listener.hosts.is_empty() {
            errors.push(format!("{path}.hosts"), "at least one host is required");
        }
        for (k, host) in listener.hosts.iter().enumerate() {
            let field = format!("{path}.hosts[{k}]");
            if !host.contains('/') {
                errors.push(
                    &field,
                    format!("{host:?} needs a namespace: write it as namespace/host (`*/`, `./` or `~/` allowed)"),
                );
                continue;
            }
            egress_hosts.extend(host_selector(&field, host, namespace, true, errors));
        }
    }
    if spec.egress.is_empty() {
        if spec.ingress.is_empty() {
            errors.push(
                "spec.egress",
                "at least one egress listener with hosts, or one ingress listener, is required",
            );
        }
        // Istio: without egress listeners a sidecar reaches every service.
        egress_hosts.extend(host_selector("spec.egress", "*/*", namespace, true, errors));
    }
    egress_hosts
}

fn ingress_listener(
    path: &str,
    l: &IstioIngressListener,
    errors: &mut Errors,
) -> Option<IngressListener> {
    if l.capture_mode == Some(CaptureMode::Iptables) {
        errors.unsupported_because(
            format!("{path}.captureMode"),
            "IPTABLES needs traffic capture, which Weft does not set up (not supported by Weft yet); use NONE (or leave it unset) with a defaultEndpoint",
        );
    }
    errors.unsupported_each_set(
        path,
        &[
            ("tls", l.tls.is_some()),
            ("connectionPool", l.connection_pool.is_some()),
        ],
    );
    let Some(port) = &l.port else {
        errors.push(format!("{path}.port"), "the port is required");
        return None;
    };
    let number = port_number(&format!("{path}.port.number"), port.number, errors);
    let protocol = match port.protocol.as_deref() {
        None | Some("") => {
            errors.push(
                format!("{path}.port.protocol"),
                "the protocol is required (HTTP, HTTP2, GRPC or TCP)",
            );
            Protocol::Unknown
        }
        Some(p) => match Protocol::parse(p) {
            proto @ (Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::Tcp) => proto,
            _ => {
                errors.push(
                    format!("{path}.port.protocol"),
                    format!(
                        "{p:?} is not supported on ingress listeners; use HTTP, HTTP2, GRPC or TCP"
                    ),
                );
                Protocol::Unknown
            }
        },
    };
    let bind = l
        .bind
        .clone()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "0.0.0.0".to_string());
    if bind.parse::<std::net::IpAddr>().is_err() {
        errors.push(
            format!("{path}.bind"),
            format!("{bind:?} is not an IP address"),
        );
    }
    let endpoint = default_endpoint(
        &format!("{path}.defaultEndpoint"),
        l.default_endpoint.as_deref(),
        errors,
    );
    Some(IngressListener {
        port: number?,
        protocol,
        name: port.name.clone().unwrap_or_default(),
        bind,
        endpoint: endpoint?,
    })
}

/// `127.0.0.1:PORT` (or another IP): where the application listens.
fn default_endpoint(field: &str, text: Option<&str>, errors: &mut Errors) -> Option<(String, u16)> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        errors.push(
            field,
            "a defaultEndpoint (e.g. 127.0.0.1:8080, where the application listens) is required without traffic capture",
        );
        return None;
    };
    if text.starts_with("unix://") {
        errors.unsupported(field);
        return None;
    }
    let parsed = text
        .parse::<std::net::SocketAddr>()
        .ok()
        .filter(|a| a.port() > 0);
    match parsed {
        // Istio's 0.0.0.0:PORT means the workload's own address; without
        // capture the application is reached on loopback.
        Some(addr) if addr.ip().is_unspecified() => Some(("127.0.0.1".to_string(), addr.port())),
        Some(addr) => Some((addr.ip().to_string(), addr.port())),
        None => {
            errors.push(
                field,
                format!("{text:?} is not IP:PORT (e.g. 127.0.0.1:8080)"),
            );
            None
        }
    }
}
