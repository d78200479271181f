//! The service registry: services, their ports and endpoints.

use std::collections::BTreeMap;

use super::ResourceId;

/// A service that proxies can reach, by one fully qualified hostname.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub hostname: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    pub endpoints: Vec<Endpoint>,
    /// Namespaces it is visible to (Istio's `exportTo`; empty: all).
    pub export_to: Vec<String>,
    /// The resource that declared it.
    pub origin: ResourceId,
}

impl Service {
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// The port a request without an explicit port goes to: 80 when the
    /// service has it, else its first HTTP port.
    pub fn default_http_port(&self) -> Option<u16> {
        let http = || self.ports.iter().filter(|p| p.protocol.is_http());
        http()
            .find(|p| p.number == 80)
            .or_else(|| http().next())
            .map(|p| p.number)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub number: u16,
    pub protocol: Protocol,
    /// Where endpoints listen when they do not say (ServiceEntry `targetPort`).
    pub target_port: Option<u16>,
}

/// How a service's endpoints are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Endpoints are listed addresses, sent to proxies over EDS.
    Static,
    /// Endpoints are hostnames that the proxy resolves itself, each answer
    /// an endpoint.
    Dns,
    /// Like `Dns`, but only the first address answered is used.
    DnsRoundRobin,
    /// The proxy forwards to the address the caller asked for.
    Passthrough,
}

/// Istio's port protocols, by port `protocol` (or the name prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
    Mongo,
    Redis,
    Mysql,
    Unknown,
}

impl Protocol {
    /// Parses Istio's protocol names, case-insensitively (`HTTP`, `http2`,
    /// `GRPC-Web`, ...).
    pub fn parse(name: &str) -> Protocol {
        match name.to_ascii_uppercase().as_str() {
            "HTTP" => Protocol::Http,
            "HTTP2" => Protocol::Http2,
            "GRPC" | "GRPC-WEB" => Protocol::Grpc,
            "HTTPS" => Protocol::Https,
            "TLS" => Protocol::Tls,
            "TCP" => Protocol::Tcp,
            "MONGO" => Protocol::Mongo,
            "REDIS" => Protocol::Redis,
            "MYSQL" => Protocol::Mysql,
            _ => Protocol::Unknown,
        }
    }

    /// Traffic that Envoy routes with HTTP routes.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }

    /// Traffic that must reach upstreams over HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

/// One instance of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// An IP address, or a hostname for DNS resolution.
    pub address: String,
    /// Port overrides by service port name.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    /// Load-balancing weight; `None` is the default (1).
    pub weight: Option<u32>,
}

impl Endpoint {
    /// The port this endpoint listens on for service port `port`.
    pub fn port_for(&self, port: &ServicePort) -> u16 {
        self.ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number)
    }

    /// Whether the endpoint carries every label of `selector`.
    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}
