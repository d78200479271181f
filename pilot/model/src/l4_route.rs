//! TCP and TLS routing rules of a VirtualService.

use std::collections::BTreeMap;

use super::{MESH_GATEWAY, RouteContext, RouteDestination};

/// A TCP rule: the first whose match holds forwards the connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TcpRoute {
    /// Any one of these must hold; none means every connection.
    pub matches: Vec<L4Match>,
    /// Weighted destinations, weights summing to 100.
    pub destinations: Vec<RouteDestination>,
}

impl TcpRoute {
    /// Whether the rule takes a connection, `holds` saying which of its
    /// matches hold there (a rule without matches takes every one).
    pub fn applies(&self, holds: impl Fn(&L4Match) -> bool) -> bool {
        self.matches.is_empty() || self.matches.iter().any(holds)
    }
}

/// A TLS rule, matched on SNI without terminating TLS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsRoute {
    /// Any one of these must hold (Istio requires at least one).
    pub matches: Vec<TlsMatch>,
    /// Weighted destinations, weights summing to 100.
    pub destinations: Vec<RouteDestination>,
}

/// Istio's `L4MatchAttributes`: conditions on a connection, all of which
/// must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L4Match {
    /// Destination IPs or CIDRs (validated), as written.
    pub destination_subnets: Vec<String>,
    /// Only for connections to this (gateway server or service) port.
    pub port: Option<u16>,
    /// Only for proxies whose workload carries all these labels.
    pub source_labels: BTreeMap<String, String>,
    /// Only on these gateways (`mesh` or `<namespace>/<name>`, qualified);
    /// empty: wherever the VirtualService applies.
    pub gateways: Vec<String>,
    /// Only for proxies in this namespace.
    pub source_namespace: Option<String>,
}

impl L4Match {
    /// Whether the match can hold on a proxy of `namespace` with `labels`
    /// in `context`, for connections to `port`. `destination_subnets` are
    /// not looked at here: they constrain the connection, not the proxy.
    pub fn applies_to(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        context: RouteContext<'_>,
        port: u16,
    ) -> bool {
        let here = context.gateway.unwrap_or(MESH_GATEWAY);
        self.port.is_none_or(|p| p == port)
            && self
                .source_namespace
                .as_deref()
                .is_none_or(|ns| ns == namespace)
            && self
                .source_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
            && (self.gateways.is_empty() || self.gateways.iter().any(|g| g == here))
    }
}

/// Istio's `TLSMatchAttributes`: SNI names plus the L4 conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsMatch {
    /// SNI names (lower case; `*.suffix` wildcards allowed); at least one.
    pub sni_hosts: Vec<String>,
    pub l4: L4Match,
}
