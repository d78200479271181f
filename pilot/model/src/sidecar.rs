//! What a sidecar may reach and which inbound ports it declares (Istio's
//! Sidecar), validated.

use std::collections::BTreeMap;

use super::{HostSelector, OutboundTrafficPolicy, Protocol, ResourceId};

/// A Sidecar resource: narrows the services its sidecars receive.
#[derive(Clone, Debug, PartialEq)]
pub struct Sidecar {
    pub id: ResourceId,
    /// `None`: every workload of the namespace without a more specific
    /// Sidecar (and, in the root namespace, of the whole mesh).
    pub workload_selector: Option<BTreeMap<String, String>>,
    /// The hosts of the egress listener: a service is reachable when one
    /// selects it.
    pub egress_hosts: Vec<HostSelector>,
    /// The inbound listeners (`ingress`), in the resource's order.
    pub ingress: Vec<IngressListener>,
    /// `outboundTrafficPolicy.mode`; `None`: the mesh config's.
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// One `ingress` listener: the proxy listens on `bind:port` and forwards
/// to the application at `endpoint`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IngressListener {
    pub port: u16,
    pub protocol: Protocol,
    /// The port's name (Istio's `port.name`).
    pub name: String,
    /// Address to listen on (`0.0.0.0` when not given).
    pub bind: String,
    /// Where the application listens (`defaultEndpoint`), host and port.
    pub endpoint: (String, u16),
}

impl Sidecar {
    /// Whether a service of `namespace` named `hostname` is reachable.
    pub fn allows(&self, namespace: &str, hostname: &str) -> bool {
        self.egress_hosts
            .iter()
            .any(|h| h.selects(namespace, hostname))
    }
}
