//! What decides a proxy's configuration.

use std::collections::BTreeMap;

/// Everything about a proxy that its configuration depends on. Proxies with
/// equal views get the same resources, computed once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyView {
    pub role: ProxyRole,
    /// The proxy's namespace: short names resolve here.
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    /// The workload it is a proxy of (Istio's `WORKLOAD_NAME`), for
    /// telemetry.
    pub workload_name: Option<String>,
    /// Where the HTTP "router" listener binds (`127.0.0.1:15080`), if the
    /// proxy asked for one.
    pub router_address: Option<(String, u16)>,
    /// Its traffic is captured (Istio's `INTERCEPTION_MODE: REDIRECT`):
    /// it gets the `virtualOutbound` / `virtualInbound` listeners (see
    /// `translate::capture`).
    pub capture: bool,
    /// The workload's addresses (Istio's `INSTANCE_IPS`), sorted: which
    /// service endpoints are this proxy. Empty: its labels decide.
    pub instance_ips: Vec<String>,
}

impl Default for ProxyView {
    fn default() -> Self {
        Self {
            role: ProxyRole::Sidecar,
            namespace: "default".to_string(),
            labels: BTreeMap::new(),
            service_account: None,
            workload_name: None,
            router_address: None,
            capture: false,
            instance_ips: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyRole {
    Sidecar,
    Gateway,
}
