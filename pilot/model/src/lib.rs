//! # weft-model: the platform-neutral mesh model
//!
//! What the mesh looks like, with no trace of where it came from (files,
//! Kubernetes) and no trace of Envoy. It must not do I/O or depend on
//! tokio, tonic or notify; weft-config builds it, weft-translate reads it.
//! [`ResourceId`] names the user resource (a mesh [`Kind`]) or Kubernetes
//! Service each model object came from.
//!
//! Everything here is validated already: durations are parsed, regexes
//! checked, hostnames fully qualified. A [`MeshSnapshot`] is immutable and
//! shared behind an `Arc`; a change builds a new one.

mod authorization;
mod destination_rule;
mod gateway;
mod l4_route;
mod mesh_config;
mod peer_authentication;
mod policy_target;
mod quota;
mod request_authentication;
mod service;
mod sidecar;
mod telemetry;
mod virtual_service;

pub use authorization::*;
pub use destination_rule::*;
pub use gateway::*;
pub use l4_route::*;
pub use mesh_config::*;
pub use peer_authentication::*;
pub use policy_target::*;
pub use quota::*;
pub use request_authentication::*;
pub use service::*;
pub use sidecar::*;
pub use telemetry::*;
pub use virtual_service::*;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use weft_crds::Kind;

/// The domain suffix of Kubernetes service hostnames.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// What kind of object a model object came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A mesh resource (Istio's kinds and Weft's Quota).
    Mesh(Kind),
    /// A Kubernetes Service, read into the service registry.
    Service,
}

impl ResourceKind {
    /// The kind as written in `kind:`, e.g. `"VirtualService"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Mesh(kind) => kind.as_str(),
            ResourceKind::Service => "Service",
        }
    }

    /// The mesh kind, if this is one.
    pub const fn mesh(self) -> Option<Kind> {
        match self {
            ResourceKind::Mesh(kind) => Some(kind),
            ResourceKind::Service => None,
        }
    }
}

impl From<Kind> for ResourceKind {
    fn from(kind: Kind) -> Self {
        ResourceKind::Mesh(kind)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered by name, as the kinds read.
impl Ord for ResourceKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for ResourceKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Which user resource a model object came from: used in errors and status.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub kind: ResourceKind,
    pub namespace: String,
    pub name: String,
}

impl ResourceId {
    pub fn new(
        kind: impl Into<ResourceKind>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One immutable, versioned view of the whole mesh.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeshSnapshot {
    /// Increases with every applied change; content hashes, not this, decide
    /// what a proxy is sent.
    pub version: u64,
    /// The service registry, by fully qualified hostname.
    pub services: BTreeMap<String, Service>,
    /// Routing rules, sorted by namespace and name.
    pub virtual_services: Vec<VirtualService>,
    /// Traffic policy and subsets, by the fully qualified host they apply to.
    pub destination_rules: BTreeMap<String, DestinationRule>,
    /// Gateways, sorted by namespace and name.
    pub gateways: Vec<Gateway>,
    /// Sidecar resources, sorted by namespace and name.
    pub sidecars: Vec<Sidecar>,
    /// PeerAuthentication resources, sorted by namespace and name.
    pub peer_authentications: Vec<PeerAuthentication>,
    /// RequestAuthentication resources, sorted by namespace and name.
    pub request_authentications: Vec<RequestAuthentication>,
    /// AuthorizationPolicy resources, sorted by namespace and name.
    pub authorization_policies: Vec<AuthorizationPolicy>,
    /// Quotas whose destination exists, sorted by namespace and name.
    pub quotas: Vec<Quota>,
    /// Telemetry resources, sorted by namespace and name.
    pub telemetries: Vec<Telemetry>,
    /// The mesh-wide settings (shared: it changes far less often).
    pub mesh_config: Arc<MeshConfig>,
    /// The key sets the control plane fetched for RequestAuthentications'
    /// `jwksUri` and issuers (shared: refreshed on its own clock).
    pub fetched_jwks: Arc<BTreeMap<JwksLocation, FetchedJwks>>,
}

impl MeshSnapshot {
    /// The external authorizer a CUSTOM AuthorizationPolicy's provider
    /// `name` is, when it can be asked: an `envoyExtAuthzHttp` or
    /// `envoyExtAuthzGrpc` provider of the mesh config whose service has
    /// its port. The error says what is missing.
    pub fn ext_authz(&self, name: &str) -> Result<&ExtAuthz, String> {
        let mesh = &self.mesh_config;
        let Some(provider) = mesh.provider(name) else {
            let authorizers: Vec<&str> = mesh
                .providers
                .iter()
                .filter(|(_, p)| p.ext_authz().is_some())
                .map(|(n, _)| n.as_str())
                .collect();
            return Err(format!(
                "the mesh config defines no extension provider {name:?} (its external authorizers: {})",
                if authorizers.is_empty() {
                    "none".to_string()
                } else {
                    authorizers.join(", ")
                }
            ));
        };
        let Some(authz) = provider.ext_authz() else {
            return Err(format!(
                "provider {name:?} is a {} provider, not envoyExtAuthzHttp or envoyExtAuthzGrpc",
                provider.kind()
            ));
        };
        let service = &authz.service;
        match self.services.get(&service.host) {
            Some(s) if s.ports.iter().any(|p| p.number == service.port) => Ok(authz),
            Some(_) => Err(format!(
                "provider {name:?}'s service {} has no port {}",
                service.host, service.port
            )),
            None => Err(format!(
                "provider {name:?}'s service {} is not in the registry (a Service or ServiceEntry)",
                service.host
            )),
        }
    }

    /// The mesh service (host, port) Envoy fetches the key set at `uri`
    /// from itself: in [`JwksFetchMode::Hybrid`], when the URL's host and
    /// port are a service of the registry.
    pub fn envoy_fetched_jwks(&self, uri: &str) -> Option<(String, u16)> {
        if self.mesh_config.jwks_fetch != JwksFetchMode::Hybrid {
            return None;
        }
        let (host, port) = url_host_port(uri)?;
        self.services
            .get(&host)
            .filter(|s| s.ports.iter().any(|p| p.number == port))
            .map(|_| (host, port))
    }

    /// The virtual services that route mesh traffic for `hostname`, in a
    /// stable order (namespace, then name).
    pub fn virtual_services_for<'a>(
        &'a self,
        hostname: &'a str,
    ) -> impl Iterator<Item = &'a VirtualService> + 'a {
        self.virtual_services
            .iter()
            .filter(move |vs| vs.binds_mesh() && vs.hosts.iter().any(|h| host_matches(h, hostname)))
    }

    /// The subset `name` of the destination rule for `hostname`, if defined.
    pub fn subset(&self, hostname: &str, name: &str) -> Option<&Subset> {
        self.destination_rules
            .get(hostname)?
            .subsets
            .iter()
            .find(|s| s.name == name)
    }
}

/// Resolves a host as written in a resource of `namespace` to a fully
/// qualified name, the way Istio does: a name without dots is a short name
/// of a Kubernetes service in that namespace; anything else is taken as is.
pub fn qualify_host(host: &str, namespace: &str) -> String {
    if host.contains('.') || host.starts_with('*') {
        host.to_ascii_lowercase()
    } else {
        format!("{}.{namespace}.{CLUSTER_DOMAIN}", host.to_ascii_lowercase())
    }
}

/// Whether a host pattern (`reviews.default.svc.cluster.local`,
/// `*.example.com`, `*`) matches a concrete hostname.
pub fn host_matches(pattern: &str, hostname: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => hostname.ends_with(suffix) && hostname.len() > suffix.len(),
        None => pattern == hostname,
    }
}

/// Istio's `exportTo`: whether a resource of `owner_namespace` is visible
/// to proxies in `viewer_namespace`. Empty means `*` (everywhere); `.` is
/// the owner's namespace, `~` nowhere, anything else a namespace name.
pub fn is_exported(export_to: &[String], owner_namespace: &str, viewer_namespace: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => owner_namespace == viewer_namespace,
            "~" => false,
            ns => ns == viewer_namespace,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_qualified_in_the_resource_namespace() {
        assert_eq!(
            qualify_host("reviews", "prod"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(qualify_host("httpbin.org", "prod"), "httpbin.org");
        assert_eq!(qualify_host("*.example.com", "prod"), "*.example.com");
    }

    #[test]
    fn export_to_follows_istio() {
        let to = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_exported(&[], "a", "b"));
        assert!(is_exported(&to(&["*"]), "a", "b"));
        assert!(is_exported(&to(&["."]), "a", "a"));
        assert!(!is_exported(&to(&["."]), "a", "b"));
        assert!(!is_exported(&to(&["~"]), "a", "a"));
        assert!(is_exported(&to(&[".", "b"]), "a", "b"));
    }

    #[test]
    fn wildcard_hosts_match_by_suffix() {
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("*", "anything"));
        assert!(host_matches("a.b", "a.b"));
        assert!(!host_matches("a.b", "a.c"));
    }
}
