//! Traffic policy and subsets (Istio's DestinationRule), validated.

use std::collections::BTreeMap;

use super::ResourceId;

/// Traffic policy and subsets for one host (Istio's DestinationRule).
#[derive(Clone, Debug, PartialEq)]
pub struct DestinationRule {
    pub id: ResourceId,
    /// Fully qualified.
    pub host: String,
    pub load_balancer: Option<LoadBalancer>,
    pub subsets: Vec<Subset>,
}

impl DestinationRule {
    /// The load balancer for `subset` (the subset's own policy wins).
    pub fn load_balancer_for(&self, subset: Option<&Subset>) -> Option<LoadBalancer> {
        subset.and_then(|s| s.load_balancer).or(self.load_balancer)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub load_balancer: Option<LoadBalancer>,
}

/// DestinationRule `loadBalancer.simple`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadBalancer {
    RoundRobin,
    LeastRequest,
    Random,
    Passthrough,
}
