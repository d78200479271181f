//! What a sidecar may reach (Istio's Sidecar), validated.

use std::collections::BTreeMap;

use super::{HostSelector, ResourceId};

/// Istio's root namespace: a Sidecar there without a workload selector is
/// the mesh-wide default.
pub const ROOT_NAMESPACE: &str = "istio-system";

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
}

impl Sidecar {
    /// Whether a service of `namespace` named `hostname` is reachable.
    pub fn allows(&self, namespace: &str, hostname: &str) -> bool {
        self.egress_hosts
            .iter()
            .any(|h| h.selects(namespace, hostname))
    }
}
