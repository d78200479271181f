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
    /// Virtual IPs or CIDR blocks of the service (ServiceEntry
    /// `addresses`), as written; for TCP routing by destination address.
    pub addresses: Vec<String>,
    /// Whether the service is part of the mesh (ServiceEntry `location`).
    pub location: Location,
}

/// ServiceEntry `location`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Location {
    /// Outside the mesh: no mesh identity (Istio's default).
    #[default]
    MeshExternal,
    /// Inside the mesh, like a Kubernetes service.
    MeshInternal,
}

impl Default for Service {
    /// An empty STATIC service declared by an unnamed ServiceEntry (for
    /// struct-update syntax in tests).
    fn default() -> Self {
        Self {
            hostname: String::new(),
            namespace: String::new(),
            ports: Vec::new(),
            resolution: Resolution::Static,
            endpoints: Vec::new(),
            export_to: Vec::new(),
            origin: ResourceId::new(crate::Kind::ServiceEntry, "", ""),
            addresses: Vec::new(),
            location: Location::MeshExternal,
        }
    }
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolution {
    /// Endpoints are listed addresses, sent to proxies over EDS.
    #[default]
    Static,
    /// Endpoints are hostnames that the proxy resolves itself, each answer
    /// an endpoint.
    Dns,
    /// Like `Dns`, but only the first address answered is used.
    DnsRoundRobin,
    /// The proxy forwards to the address the caller asked for (its
    /// original destination). The HTTP router listener has none: see the
    /// README ("resolution NONE").
    Passthrough,
}

/// Istio's port protocols, by port `protocol` (or the name prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// An IP address, or a hostname for DNS resolution.
    pub address: String,
    /// Port overrides by service port name.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    /// Load-balancing weight; `None` is the default (1).
    pub weight: Option<u32>,
    /// `region/zone/subzone`, parts optional.
    pub locality: Option<Locality>,
    /// The endpoint's network (multi-network meshes); kept, not yet used
    /// (Weft's standalone mesh is one network).
    pub network: Option<String>,
    /// The workload's service account (its mesh identity); kept for mTLS.
    pub service_account: Option<String>,
    /// The workload (Deployment, StatefulSet, ...) it belongs to, when
    /// known: `destination_workload` in Istio's metrics.
    pub workload_name: Option<String>,
}

/// Where an endpoint runs (WorkloadEntry `locality`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
}

impl Locality {
    /// Parses `region/zone/subzone` (trailing parts optional).
    pub fn parse(text: &str) -> Option<Locality> {
        let mut parts = text.split('/');
        let locality = Locality {
            region: parts.next().unwrap_or_default().to_string(),
            zone: parts.next().unwrap_or_default().to_string(),
            sub_zone: parts.next().unwrap_or_default().to_string(),
        };
        (parts.next().is_none() && !locality.region.is_empty()).then_some(locality)
    }
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
