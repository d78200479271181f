//! Routing rules (Istio's VirtualService), validated and host-qualified.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ResourceId, TcpRoute, TlsRoute};

/// Routing rules for a set of hosts (Istio's VirtualService).
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    pub id: ResourceId,
    /// Fully qualified hosts or wildcard patterns. Empty for a delegate
    /// (a VirtualService whose rules another one includes).
    pub hosts: Vec<String>,
    /// Gateways the rules apply to (`mesh`: the sidecars); empty means `mesh`.
    pub gateways: Vec<String>,
    pub http: Vec<HttpRoute>,
    pub tcp: Vec<TcpRoute>,
    pub tls: Vec<TlsRoute>,
    /// Namespaces it is visible to (Istio's `exportTo`; empty: all).
    pub export_to: Vec<String>,
}

/// The reserved gateway name for every sidecar of the mesh.
pub const MESH_GATEWAY: &str = "mesh";

impl VirtualService {
    /// Whether the rules apply to sidecars (rather than only to gateways).
    pub fn binds_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == MESH_GATEWAY)
    }

    /// Whether the rules apply in `context`: to sidecars (`gateway: None`),
    /// or to the gateway `<namespace>/<name>`.
    pub fn binds(&self, context: RouteContext<'_>) -> bool {
        match context.gateway {
            None => self.binds_mesh(),
            Some(gateway) => self
                .gateways
                .iter()
                .any(|g| qualify_gateway(g, &self.id.namespace) == gateway),
        }
    }

    /// A delegate has no hosts: only a root VirtualService's `delegate`
    /// brings its rules into effect.
    pub fn is_delegate(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// Where routes are built: for the sidecars of the mesh (`gateway: None`)
/// or for one gateway, named `<namespace>/<name>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteContext<'a> {
    pub gateway: Option<&'a str>,
}

impl RouteContext<'_> {
    /// The sidecars of the mesh.
    pub const MESH: RouteContext<'static> = RouteContext { gateway: None };
}

/// Istio's gateway reference resolution: `mesh` stays; `name` is
/// `<namespace>/name`; `./name` too; `ns/name` stays.
pub fn qualify_gateway(gateway: &str, namespace: &str) -> String {
    if gateway == MESH_GATEWAY {
        return gateway.to_string();
    }
    match gateway.split_once('/') {
        Some((".", name)) => format!("{namespace}/{name}"),
        Some(_) => gateway.to_string(),
        None => format!("{namespace}/{gateway}"),
    }
}

/// One HTTP rule: the first rule whose match holds decides a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpRoute {
    pub name: Option<String>,
    /// Any one of these must hold; none means every request.
    pub matches: Vec<RouteMatch>,
    /// Where to forward; empty when the rule answers itself (redirect,
    /// direct response) or delegates.
    pub destinations: Vec<RouteDestination>,
    pub redirect: Option<Redirect>,
    pub direct_response: Option<DirectResponse>,
    /// The delegate whose rules replace this one (resolved by the config
    /// store; translation never sees it).
    pub delegate: Option<ResourceId>,
    pub rewrite: Option<Rewrite>,
    /// `None` disables the request timeout (Istio's default).
    pub timeout: Option<Duration>,
    /// `None` applies Istio's default retry policy.
    pub retries: Option<RetryPolicy>,
    pub fault: Option<Fault>,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<CorsPolicy>,
    pub headers: HeaderRules,
}

/// Conditions that must all hold for a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteMatch {
    /// Appended to the rule's name in the Envoy route's name.
    pub name: Option<String>,
    /// The Envoy route's `stat_prefix` (per-route statistics).
    pub stat_prefix: Option<String>,
    pub uri: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    /// Header name (lower case) and how its value must match.
    pub headers: Vec<(String, StringMatch)>,
    /// Headers that must not match.
    pub without_headers: Vec<(String, StringMatch)>,
    /// Query parameter name and how its value must match.
    pub query_params: Vec<(String, StringMatch)>,
    pub ignore_uri_case: bool,
    /// Only for requests to this service port.
    pub port: Option<u16>,
    /// Only for proxies whose workload carries all these labels.
    pub source_labels: BTreeMap<String, String>,
    /// Only for proxies in this namespace.
    pub source_namespace: Option<String>,
    /// Only on these gateways (`mesh` or `<namespace>/<name>`); empty:
    /// wherever the VirtualService applies.
    pub gateways: Vec<String>,
}

impl RouteMatch {
    /// Whether the match can hold for a proxy of `namespace` with `labels`
    /// in `context` (source namespace, source labels, match gateways). The
    /// VirtualService's own gateways are checked by [`VirtualService::binds`].
    pub fn applies_to(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        context: RouteContext<'_>,
    ) -> bool {
        let source = self
            .source_namespace
            .as_deref()
            .is_none_or(|ns| ns == namespace)
            && self
                .source_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v));
        let gateway = self.gateways.is_empty()
            || self
                .gateways
                .iter()
                .any(|g| Some(g.as_str()) == context.gateway.or(Some(MESH_GATEWAY)));
        source && gateway
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    /// RE2 syntax, already checked.
    Regex(String),
    /// Istio's `{}`: present, with any value.
    Present,
}

/// A weighted destination of a route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteDestination {
    /// Fully qualified.
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
    /// Share of traffic, out of 100.
    pub weight: u32,
    /// Header rules for this destination only.
    pub headers: HeaderRules,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Zero disables retries.
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// Envoy retry conditions and status codes, as the user wrote them.
    pub retry_on: Vec<String>,
    /// Retries prefer other localities (priorities) than those tried.
    pub retry_remote_localities: bool,
    /// Retries avoid hosts already tried (Istio's default: yes).
    pub ignore_previous_hosts: bool,
    /// Base interval between retries.
    pub backoff: Option<Duration>,
}

/// Request and response header manipulation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderRules {
    pub request: HeaderOperations,
    pub response: HeaderOperations,
}

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// Header names are lower case; maps are sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderOperations {
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

impl HeaderOperations {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Answer with a redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub port: RedirectPort,
    pub scheme: Option<String>,
    /// 301, 302, 303, 307 or 308.
    pub code: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectPort {
    /// Keep the request's port (Istio: unset).
    Unset,
    Fixed(u16),
    /// The scheme's default port.
    FromProtocolDefault,
    /// The port the request came in on.
    FromRequestPort,
}

/// The largest `directResponse` body Weft accepts (Istio's limit, 1 MiB).
pub const MAX_DIRECT_RESPONSE_BODY_BYTES: u32 = 1 << 20;

/// Answer with a fixed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectResponse {
    pub status: u16,
    pub body: Option<Body>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// Replaces the matched prefix (or the whole path for exact matches).
    pub uri: Option<String>,
    pub authority: Option<String>,
    /// RE2 pattern and substitution.
    pub uri_regex: Option<(String, String)>,
}

/// Fault injection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FaultDelay {
    pub fixed_delay: Duration,
    /// 0 to 100.
    pub percentage: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FaultAbort {
    pub error: AbortError,
    /// 0 to 100.
    pub percentage: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortError {
    HttpStatus(u16),
    /// A gRPC status code (0 to 16).
    GrpcStatus(u32),
}

/// Traffic copied to another destination; its answers are dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct Mirror {
    pub destination: RouteDestination,
    /// 0 to 100.
    pub percentage: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CorsPolicy {
    pub allow_origins: Vec<StringMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
    pub allow_credentials: Option<bool>,
    /// Whether preflights from origins that do not match go upstream
    /// (Istio's default: forward).
    pub forward_unmatched_preflights: bool,
}
