//! Edge load balancers (Istio's Gateway), validated.

use std::collections::BTreeMap;

use super::{Protocol, ResourceId, host_matches};

/// A Gateway: servers applied to the gateway proxies its selector picks.
#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    pub id: ResourceId,
    /// Labels a gateway proxy must carry, all of them (Istio: an empty
    /// selector selects every gateway proxy).
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<GatewayServer>,
}

impl Gateway {
    /// `<namespace>/<name>`, as VirtualServices' `gateways` name it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.id.namespace, self.id.name)
    }

    /// Whether a gateway proxy with `labels` runs this gateway.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// One port of a gateway (Istio's `Server`).
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayServer {
    /// The server's `port.number`: what routes match and name.
    pub port: u16,
    /// Where the listener binds: `targetPort`, else `port`.
    pub listen_port: u16,
    /// `port.name` (may be empty).
    pub port_name: String,
    pub protocol: Protocol,
    /// IP the listener binds to; `0.0.0.0` when unset.
    pub bind: Option<String>,
    /// Hosts exposed, namespace selectors resolved.
    pub hosts: Vec<HostSelector>,
    /// TLS handling; `None` for plain text ports.
    pub tls: Option<ServerTls>,
    /// Plain HTTP is answered with a 301 to HTTPS.
    pub https_redirect: bool,
    /// The server's optional `name`.
    pub name: Option<String>,
}

impl GatewayServer {
    /// Whether connections are terminated as HTTP (plain or after TLS).
    pub fn is_http(&self) -> bool {
        match (&self.tls, self.protocol) {
            (Some(ServerTls::Terminate(_)), Protocol::Https) => true,
            (None, p) => p.is_http(),
            _ => false,
        }
    }
}

/// How a gateway server treats TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTls {
    /// Route by SNI (VirtualService `tls` rules) without terminating.
    Passthrough,
    /// Terminate TLS with files on the proxy's disk.
    Terminate(TlsTermination),
}

/// TLS termination settings (modes SIMPLE, MUTUAL, OPTIONAL_MUTUAL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsTermination {
    pub certificate_file: String,
    pub private_key_file: String,
    /// CA bundle to verify client certificates with.
    pub client_ca_file: Option<String>,
    /// Connections without a valid client certificate are refused.
    pub require_client_certificate: bool,
    pub crl_file: Option<String>,
    pub subject_alt_names: Vec<String>,
    pub verify_certificate_spki: Vec<String>,
    pub verify_certificate_hash: Vec<String>,
    /// Istio's default minimum is TLS 1.2.
    pub min_version: TlsVersion,
    pub max_version: Option<TlsVersion>,
    pub cipher_suites: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

/// Istio's `namespace/dnsName` host selector, as in Gateway `hosts` and
/// Sidecar `egress.hosts`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostSelector {
    pub namespace: NamespaceSelector,
    /// Lower case; `*`, `*.suffix` or a name.
    pub host: String,
}

impl HostSelector {
    /// Whether a resource of `namespace` with host `hostname` is selected.
    pub fn selects(&self, namespace: &str, hostname: &str) -> bool {
        let namespace_ok = match &self.namespace {
            NamespaceSelector::Any => true,
            NamespaceSelector::Named(ns) => ns == namespace,
            NamespaceSelector::Nowhere => false,
        };
        namespace_ok && (self.host == "*" || host_matches(&self.host, hostname))
    }
}

/// The `namespace/` part of a host selector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NamespaceSelector {
    /// `*/` or no prefix.
    Any,
    /// A namespace name (`./` is resolved to the resource's namespace).
    Named(String),
    /// `~/`: nothing.
    Nowhere,
}

/// The hosts two patterns have in common, if any: the more specific of
/// the two when one covers the other (`*.example.com` and `a.example.com`
/// give `a.example.com`).
pub fn host_intersection(a: &str, b: &str) -> Option<String> {
    if a == b {
        Some(a.to_string())
    } else if a == "*" || (a.starts_with('*') && host_matches(a, b)) {
        Some(b.to_string())
    } else if b == "*" || (b.starts_with('*') && host_matches(b, a)) {
        Some(a.to_string())
    } else {
        None
    }
}
