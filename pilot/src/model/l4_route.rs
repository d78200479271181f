//! TCP and TLS routing rules of a VirtualService.

use super::RouteDestination;

/// A TCP rule: the first whose match holds forwards the connection.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpRoute {
    pub destinations: Vec<RouteDestination>,
}

/// A TLS rule, matched on SNI without terminating TLS.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsRoute {
    pub sni_hosts: Vec<String>,
    pub destinations: Vec<RouteDestination>,
}
