//! Convergence measurement. A scenario marks a change at time T with a
//! [`Probe`]: a predicate over a client's [`ClientState`]; the client checks
//! its open probes after every update it ACKs (or, for a probe made with
//! [`Probe::after_updates_of`], only after updates of one type: cheaper at
//! scale), and the latency is the time from T to the first ACK of a state
//! where the predicate holds. Also the
//! predicates scenarios need ("cluster X exists", "route config R sends
//! weight W to subset S", "cluster C has endpoint A") and the p50/p99/max
//! summary. Everything here is pure except reading the clock in
//! [`Probe::observe`]'s caller.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, route::Action, route_action::ClusterSpecifier,
};

use crate::state::ClientState;

/// A predicate over a client's accepted state.
pub type Predicate = Arc<dyn Fn(&ClientState) -> bool + Send + Sync>;

/// One change a scenario waits for on one client.
#[derive(Clone)]
pub struct Probe {
    /// What the change is, for reports.
    pub name: String,
    /// When the scenario made the change.
    pub since: Instant,
    pub predicate: Predicate,
    /// When the client first ACKed a state where the predicate held.
    pub seen: Option<Instant>,
    /// Checked only after updates of this type URL (`None`: after all).
    pub only_after: Option<String>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("name", &self.name)
            .field("since", &self.since)
            .field("seen", &self.seen)
            .field("only_after", &self.only_after)
            .finish_non_exhaustive()
    }
}

impl Probe {
    pub fn new(name: impl Into<String>, since: Instant, predicate: Predicate) -> Self {
        Self {
            name: name.into(),
            since,
            predicate,
            seen: None,
            only_after: None,
        }
    }

    /// The same probe, checked only after updates of `type_url` (the type
    /// its predicate reads, e.g. `ROUTE_TYPE` for [`route_weight`]).
    pub fn after_updates_of(mut self, type_url: &str) -> Self {
        self.only_after = Some(type_url.to_string());
        self
    }

    /// [`Probe::observe`] after an update of `type_url`: skipped when the
    /// probe reads another type.
    pub fn observe_update(&mut self, state: &ClientState, type_url: &str, at: Instant) {
        if self.only_after.as_deref().is_none_or(|t| t == type_url) {
            self.observe(state, at);
        }
    }

    /// Records `at` (the time of an ACK) if the probe is still open and
    /// `state` (what was just ACKed) satisfies it.
    pub fn observe(&mut self, state: &ClientState, at: Instant) {
        if self.seen.is_none() && (self.predicate)(state) {
            self.seen = Some(at);
        }
    }

    /// Time from the change to the first ACK of a state holding it.
    pub fn latency(&self) -> Option<Duration> {
        self.seen
            .map(|seen| seen.saturating_duration_since(self.since))
    }
}

/// "Cluster `name` exists."
pub fn cluster_exists(name: &str) -> Predicate {
    let name = name.to_string();
    Arc::new(move |s: &ClientState| s.clusters().any(|c| c.name == name))
}

/// "Some route configuration (or only `route_config`, if given) sends
/// weight `weight` to a cluster of subset `subset`" (Istio-style cluster
/// names `outbound|PORT|SUBSET|HOST`).
pub fn route_weight(route_config: Option<&str>, subset: &str, weight: u32) -> Predicate {
    let route_config = route_config.map(str::to_string);
    let subset = format!("|{subset}|");
    Arc::new(move |s: &ClientState| {
        s.routes()
            .filter(|r| route_config.as_ref().is_none_or(|n| *n == r.name))
            .any(|r| sends_weight(r, &subset, weight))
    })
}

fn sends_weight(route: &RouteConfiguration, cluster_part: &str, weight: u32) -> bool {
    weighted_clusters(route).any(|(name, w)| name.contains(cluster_part) && w == Some(weight))
}

/// Every (cluster, weight) of the weighted-cluster routes of `route`.
pub fn weighted_clusters(route: &RouteConfiguration) -> impl Iterator<Item = (&str, Option<u32>)> {
    route
        .virtual_hosts
        .iter()
        .flat_map(|vh| vh.routes.iter())
        .filter_map(|r| match &r.action {
            Some(Action::Route(action)) => match &action.cluster_specifier {
                Some(ClusterSpecifier::WeightedClusters(w)) => Some(w.clusters.iter()),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .map(|c| (c.name.as_str(), c.weight.as_ref().map(|w| w.value)))
}

/// The socket addresses (IPs, without ports) of a load assignment.
pub fn addresses(assignment: &ClusterLoadAssignment) -> impl Iterator<Item = &str> {
    assignment
        .endpoints
        .iter()
        .flat_map(|l| l.lb_endpoints.iter())
        .filter_map(|lb| match &lb.host_identifier {
            Some(HostIdentifier::Endpoint(ep)) => ep.address.as_ref(),
            _ => None,
        })
        .filter_map(|a| match &a.address {
            Some(address::Address::SocketAddress(sa)) => Some(sa.address.as_str()),
            _ => None,
        })
}

/// "The load assignment of `cluster` contains address `ip` (any port)."
pub fn endpoint_address(cluster: &str, ip: &str) -> Predicate {
    let (cluster, ip) = (cluster.to_string(), ip.to_string());
    Arc::new(move |s: &ClientState| {
        s.endpoints()
            .filter(|e| e.cluster_name == cluster)
            .any(|e| addresses(e).any(|a| a == ip))
    })
}

/// p50 / p99 / max of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50={:.1?} p99={:.1?} max={:.1?}",
            self.count, self.p50, self.p99, self.max
        )
    }
}

/// The summary of `samples` (nearest-rank percentiles), or `None` if empty.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let max = *sorted.last()?;
    Some(Summary {
        count: sorted.len(),
        p50: percentile(&sorted, 50),
        p99: percentile(&sorted, 99),
        max,
    })
}

/// Nearest-rank percentile `p` (1..=100) of non-empty, sorted `sorted`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted
        .get(rank - 1)
        .or(sorted.last())
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use envoy_types::pb::envoy::config::route::v3::{
        Route, RouteAction, VirtualHost, WeightedCluster, weighted_cluster::ClusterWeight,
    };
    use envoy_types::pb::google::protobuf::UInt32Value;
    use std::collections::BTreeMap;

    use crate::state::{ROUTE_TYPE, Resource};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn summary_of_nothing_is_none() {
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn summary_of_one_is_that_one() {
        let s = summarize(&[ms(7)]).unwrap();
        assert_eq!((s.count, s.p50, s.p99, s.max), (1, ms(7), ms(7), ms(7)));
    }

    #[test]
    fn summary_uses_nearest_rank_whatever_the_order() {
        let samples: Vec<_> = (1..=100).rev().map(ms).collect();
        let s = summarize(&samples).unwrap();
        assert_eq!(
            (s.count, s.p50, s.p99, s.max),
            (100, ms(50), ms(99), ms(100))
        );
        let s = summarize(&[ms(3), ms(1), ms(2), ms(4)]).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (ms(2), ms(4), ms(4)));
    }

    fn mk_routes(name: &str, weights: &[(&str, u32)]) -> ClientState {
        let clusters = weights
            .iter()
            .map(|(subset, w)| ClusterWeight {
                name: format!("outbound|9080|{subset}|reviews.default.svc.cluster.local"),
                weight: Some(UInt32Value { value: *w }),
                ..Default::default()
            })
            .collect();
        let route = RouteConfiguration {
            name: name.to_string(),
            virtual_hosts: vec![VirtualHost {
                routes: vec![Route {
                    action: Some(Action::Route(RouteAction {
                        cluster_specifier: Some(ClusterSpecifier::WeightedClusters(
                            WeightedCluster {
                                clusters,
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut state = ClientState::default();
        state.replace(
            Instant::now(),
            ROUTE_TYPE,
            "1",
            BTreeMap::from([(name.to_string(), Resource::Route(Arc::new(route)))]),
        );
        state
    }

    #[test]
    fn route_weight_matches_subset_and_weight_and_config_name() {
        let state = mk_routes("router", &[("v1", 40), ("v3", 60)]);
        assert!(route_weight(None, "v3", 60)(&state));
        assert!(route_weight(Some("router"), "v3", 60)(&state));
        assert!(!route_weight(Some("9080"), "v3", 60)(&state));
        assert!(!route_weight(None, "v3", 40)(&state));
        assert!(!route_weight(None, "v2", 60)(&state));
    }

    #[test]
    fn probe_keeps_the_first_ack_that_holds() {
        let t0 = Instant::now();
        let mut probe = Probe::new("v3 at 60", t0, route_weight(None, "v3", 60));
        probe.observe(&mk_routes("r", &[("v3", 10)]), t0 + ms(5));
        assert_eq!(probe.latency(), None);
        probe.observe(&mk_routes("r", &[("v3", 60)]), t0 + ms(8));
        probe.observe(&mk_routes("r", &[("v3", 60)]), t0 + ms(20));
        assert_eq!(probe.latency(), Some(ms(8)));
    }

    #[test]
    fn a_typed_probe_looks_only_after_updates_of_its_type() {
        let t0 = Instant::now();
        let mut probe =
            Probe::new("v3 at 60", t0, route_weight(None, "v3", 60)).after_updates_of(ROUTE_TYPE);
        let state = mk_routes("r", &[("v3", 60)]);
        probe.observe_update(&state, crate::state::CLUSTER_TYPE, t0 + ms(3));
        assert_eq!(probe.latency(), None);
        probe.observe_update(&state, ROUTE_TYPE, t0 + ms(4));
        assert_eq!(probe.latency(), Some(ms(4)));
    }
}
