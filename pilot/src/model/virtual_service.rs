//! Routing rules (Istio's VirtualService), validated and host-qualified.

use std::time::Duration;

use super::{ResourceId, TcpRoute, TlsRoute};

/// Routing rules for a set of hosts (Istio's VirtualService).
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    pub id: ResourceId,
    /// Fully qualified hosts or wildcard patterns.
    pub hosts: Vec<String>,
    /// Gateways the rules apply to (`mesh`: the sidecars); empty means `mesh`.
    pub gateways: Vec<String>,
    pub http: Vec<HttpRoute>,
    pub tcp: Vec<TcpRoute>,
    pub tls: Vec<TlsRoute>,
}

/// The reserved gateway name for every sidecar of the mesh.
pub const MESH_GATEWAY: &str = "mesh";

impl VirtualService {
    /// Whether the rules apply to sidecars (rather than only to gateways).
    pub fn binds_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == MESH_GATEWAY)
    }
}

/// One HTTP rule: the first rule whose match holds decides a request.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRoute {
    pub name: Option<String>,
    /// Any one of these must hold; none means every request.
    pub matches: Vec<RouteMatch>,
    pub destinations: Vec<RouteDestination>,
    /// `None` disables the request timeout (Istio's default).
    pub timeout: Option<Duration>,
    /// `None` applies Istio's default retry policy.
    pub retries: Option<RetryPolicy>,
}

/// Conditions that must all hold for a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteMatch {
    pub uri: Option<StringMatch>,
    pub method: Option<StringMatch>,
    /// Header name (lower case) and how its value must match.
    pub headers: Vec<(String, StringMatch)>,
    pub ignore_uri_case: bool,
    /// Only for requests to this service port.
    pub port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    /// RE2 syntax, already checked.
    Regex(String),
}

/// A weighted destination of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDestination {
    /// Fully qualified.
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
    /// Share of traffic, out of 100.
    pub weight: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Zero disables retries.
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// Envoy retry conditions and status codes, as the user wrote them.
    pub retry_on: Vec<String>,
}
