//! Traffic policy and subsets (Istio's DestinationRule), validated.
//!
//! Policies merge the way Istio merges them (`MergeTrafficPolicy`): for one
//! cluster (port, subset) the rule's policy applies, replaced by the rule's
//! `portLevelSettings` for that port (a port-level entry does not inherit:
//! its omitted fields fall back to defaults). A subset's policy then
//! overrides field by field (`loadBalancer`, `connectionPool`,
//! `outlierDetection`, `tls`), and the subset's own `portLevelSettings` for
//! the port replace all four again. See [`DestinationRule::policy_for`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::ResourceId;

/// Traffic policy and subsets for one host (Istio's DestinationRule).
#[derive(Clone, Debug, PartialEq)]
pub struct DestinationRule {
    pub id: ResourceId,
    /// Fully qualified.
    pub host: String,
    /// Boxed: policies are large and most rules have few.
    pub traffic_policy: Box<TrafficPolicy>,
    pub subsets: Vec<Subset>,
    /// Namespaces it is visible to (Istio's `exportTo`; empty: all).
    pub export_to: Vec<String>,
    /// When set, the rule applies only to proxies carrying every label.
    pub workload_selector: Option<BTreeMap<String, String>>,
}

impl DestinationRule {
    /// The effective policy of the cluster for `port` and `subset`.
    pub fn policy_for(&self, port: Option<u16>, subset: Option<&Subset>) -> PolicySettings {
        let base = self.traffic_policy.for_port(port);
        match subset.and_then(|s| s.traffic_policy.as_ref()) {
            None => base,
            Some(sp) => {
                if let Some(p) = port.and_then(|p| sp.port_level.get(&p)) {
                    return p.clone();
                }
                let o = &sp.settings;
                PolicySettings {
                    load_balancer: o.load_balancer.clone().or(base.load_balancer),
                    connection_pool: o.connection_pool.clone().or(base.connection_pool),
                    outlier_detection: o.outlier_detection.clone().or(base.outlier_detection),
                    tls: o.tls.clone().or(base.tls),
                }
            }
        }
    }

    /// The load balancer for `subset` on any port (the subset's own policy
    /// wins); ignores port-level settings.
    pub fn load_balancer_for(&self, subset: Option<&Subset>) -> Option<LoadBalancer> {
        self.policy_for(None, subset).load_balancer
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub traffic_policy: Option<TrafficPolicy>,
}

/// DestinationRule `trafficPolicy` (of the rule or of a subset).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficPolicy {
    pub settings: PolicySettings,
    /// `portLevelSettings`, by port number.
    pub port_level: BTreeMap<u16, PolicySettings>,
}

impl TrafficPolicy {
    /// The settings for `port`: its port-level entry, else the policy's.
    pub fn for_port(&self, port: Option<u16>) -> PolicySettings {
        port.and_then(|p| self.port_level.get(&p))
            .unwrap_or(&self.settings)
            .clone()
    }
}

/// The four settings a policy, a subset or a port can set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySettings {
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTls>,
}

/// DestinationRule `loadBalancer`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadBalancer {
    pub policy: LbPolicy,
    /// `warmup` (or the deprecated `warmupDurationSecs`): slow start.
    pub warmup: Option<Warmup>,
}

impl LoadBalancer {
    pub fn simple(policy: LbPolicy) -> Self {
        Self {
            policy,
            warmup: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum LbPolicy {
    /// `loadBalancer` without `simple` / `consistentHash`: Istio's default.
    Default,
    RoundRobin,
    LeastRequest,
    Random,
    Passthrough,
    ConsistentHash(ConsistentHash),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConsistentHash {
    pub key: HashKey,
    pub algorithm: HashAlgorithm,
}

/// What a consistent hash hashes.
#[derive(Clone, Debug, PartialEq)]
pub enum HashKey {
    Header(String),
    Cookie {
        name: String,
        path: Option<String>,
        /// With a TTL the proxy sets the cookie when it is missing; zero
        /// makes it a session cookie.
        ttl: Option<Duration>,
    },
    SourceIp,
    QueryParameter(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    RingHash { minimum_ring_size: Option<u64> },
    Maglev { table_size: Option<u64> },
}

/// Slow start for new endpoints (ROUND_ROBIN and LEAST_REQUEST only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup {
    pub duration: Duration,
    /// 0..=100.
    pub minimum_percent: Option<f64>,
    /// >= 0; 1 is linear.
    pub aggression: Option<f64>,
}

/// DestinationRule `connectionPool`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionPool {
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<Duration>,
    pub tcp_keepalive: Option<TcpKeepalive>,
    pub max_connection_duration: Option<Duration>,
    pub tcp_idle_timeout: Option<Duration>,
    pub http1_max_pending_requests: Option<u32>,
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_retries: Option<u32>,
    pub http_idle_timeout: Option<Duration>,
    pub h2_upgrade: Option<bool>,
    pub use_client_protocol: bool,
    pub max_concurrent_streams: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    /// Whole seconds.
    pub time: Option<u32>,
    /// Whole seconds.
    pub interval: Option<u32>,
}

/// DestinationRule `outlierDetection`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutlierDetection {
    pub consecutive_5xx_errors: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    pub consecutive_local_origin_failures: Option<u32>,
    pub split_external_local_origin_errors: bool,
    pub interval: Option<Duration>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
    /// Istio's default is 0 (panic threshold off).
    pub min_health_percent: u32,
}

/// DestinationRule `tls`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientTls {
    pub mode: TlsMode,
    pub client_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    pub ca_crl: Option<String>,
    pub subject_alt_names: Vec<String>,
    pub sni: Option<String>,
    pub insecure_skip_verify: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Simple,
    Mutual,
    /// Mutual TLS with the mesh's certificates (from SDS: `default` and
    /// `ROOTCA`).
    IstioMutual,
}
