//! Gateway -> model: servers, their ports, binds and hosts here; a
//! server's TLS in `tls`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use weft_crds::{GatewaySpec, Server};

use super::common::host_selector;
use super::{Errors, port_number};
use weft_model::{Gateway, GatewayServer, Protocol, ResourceId};

mod tls;

use tls::{TlsHandling, server_tls};

pub(super) fn convert(id: &ResourceId, spec: &GatewaySpec, errors: &mut Errors) -> Gateway {
    if spec.servers.is_empty() {
        errors.push("spec.servers", "at least one server is required");
    }
    let mut servers: Vec<GatewayServer> = Vec::new();
    for (i, s) in spec.servers.iter().enumerate() {
        let path = format!("spec.servers[{i}]");
        let Some(converted) = server(&path, s, &id.namespace, errors) else {
            continue;
        };
        let same_port = servers.iter().find(|other| {
            other.listen_port == converted.listen_port && other.bind == converted.bind
        });
        if let Some(other) = same_port
            && port_family(other) != port_family(&converted)
        {
            errors.push(
                format!("{path}.port"),
                format!(
                    "port {} is already used by a {} server of this Gateway; servers may share a port only when all are plain HTTP, or all are HTTPS / TLS (told apart by SNI)",
                    converted.listen_port,
                    port_family(other)
                ),
            );
            continue;
        }
        if let Some(other) = same_port
            && port_family(&converted) == "plain TCP"
        {
            errors.push(
                format!("{path}.port"),
                format!(
                    "port {} is already used by another TCP server of this Gateway (port {}); TCP servers cannot share a port",
                    converted.listen_port, other.port
                ),
            );
            continue;
        }
        servers.push(converted);
    }
    let mut names = BTreeSet::new();
    for (i, s) in spec.servers.iter().enumerate() {
        if let Some(name) = s.name.as_deref().filter(|n| !n.is_empty())
            && !names.insert(name)
        {
            errors.push(
                format!("spec.servers[{i}].name"),
                format!("server name {name:?} is used twice; names must be unique"),
            );
        }
    }
    Gateway {
        id: id.clone(),
        selector: spec.selector.clone(),
        servers,
    }
}

/// Which servers can share a listener.
fn port_family(server: &GatewayServer) -> &'static str {
    match (&server.tls, server.protocol) {
        (None, p) if p.is_http() => "plain HTTP",
        (Some(_), _) => "HTTPS / TLS",
        (None, _) => "plain TCP",
    }
}

fn server(path: &str, s: &Server, namespace: &str, errors: &mut Errors) -> Option<GatewayServer> {
    if s.default_endpoint.is_some() {
        errors.unsupported(format!("{path}.defaultEndpoint"));
    }
    let Some(port) = &s.port else {
        errors.push(format!("{path}.port"), "a port is required");
        return None;
    };
    let number = port_number(&format!("{path}.port.number"), port.number, errors)?;
    let listen_port = match port.target_port {
        Some(target) => port_number(&format!("{path}.port.targetPort"), target, errors)?,
        None => number,
    };
    let protocol_name = port.protocol.as_deref().unwrap_or_default();
    let protocol = Protocol::parse(protocol_name);
    if protocol_name.is_empty() {
        errors.push(
            format!("{path}.port.protocol"),
            "a protocol is required (HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS)",
        );
    } else if protocol == Protocol::Unknown {
        errors.push(
            format!("{path}.port.protocol"),
            format!("unknown protocol {protocol_name:?}; use HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS"),
        );
    }
    let bind = s.bind.as_deref().filter(|b| !b.is_empty()).and_then(|b| {
        if b.starts_with("unix://") {
            errors.unsupported(format!("{path}.bind"));
            None
        } else if b.parse::<IpAddr>().is_err() {
            errors.push(
                format!("{path}.bind"),
                format!("{b:?} is not an IP address"),
            );
            None
        } else {
            Some(b.to_string())
        }
    });
    if s.hosts.is_empty() {
        errors.push(format!("{path}.hosts"), "at least one host is required");
    }
    let hosts = s
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(k, h)| {
            host_selector(&format!("{path}.hosts[{k}]"), h, namespace, false, errors)
        })
        .collect();
    let TlsHandling {
        tls,
        https_redirect,
    } = server_tls(path, s.tls.as_ref(), protocol, errors);
    Some(GatewayServer {
        port: number,
        listen_port,
        port_name: port.name.clone().unwrap_or_default(),
        protocol,
        bind,
        hosts,
        tls,
        https_redirect,
        name: s.name.clone().filter(|n| !n.is_empty()),
    })
}
