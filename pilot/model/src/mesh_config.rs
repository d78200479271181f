//! Istio's MeshConfig, validated: the mesh-wide settings that are not a
//! resource of their own (the root namespace, the trust domain, telemetry
//! providers and their defaults, the mesh access log).
//!
//! [`MeshConfig::default`] is what Istio does with an empty mesh config:
//! root namespace `istio-system`, trust domain `cluster.local`, the
//! `prometheus` provider reporting metrics, the `envoy` file access log
//! provider (on `/dev/stdout`) defined but off until asked for, and
//! `ALLOW_ANY` outbound traffic.

use std::collections::BTreeMap;

/// Istio's default root namespace.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The mesh-wide settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshConfig {
    /// Where mesh-wide policies (PeerAuthentication, Sidecar,
    /// AuthorizationPolicy, Telemetry) live.
    pub root_namespace: String,
    /// The SPIFFE trust domain of workload identities.
    pub trust_domain: String,
    /// `extensionProviders`, by name (with Istio's built-in `prometheus`
    /// and `envoy` unless redefined).
    pub providers: BTreeMap<String, Provider>,
    /// `defaultProviders`: what reports when no Telemetry names a provider.
    pub default_providers: DefaultProviders,
    /// `accessLogFile` with `accessLogEncoding`/`accessLogFormat`: logging
    /// for every proxy, on top of the Telemetry API.
    pub access_log: Option<FileAccessLog>,
    /// `enableTracing`.
    pub enable_tracing: bool,
    /// `defaultConfig.tracing.sampling`, in percent.
    pub default_sampling: f64,
    /// Who fetches the key sets RequestAuthentications name by `jwksUri`
    /// (Weft's `--jwks-fetch-mode`; not a MeshConfig field).
    pub jwks_fetch: JwksFetchMode,
    /// `outboundTrafficPolicy.mode`: where captured sidecars send traffic
    /// to destinations outside the registry (a Sidecar may override it).
    pub outbound_traffic_policy: OutboundTrafficPolicy,
}

/// Istio's `OutboundTrafficPolicy.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutboundTrafficPolicy {
    /// Unknown destinations are passed through (Istio's default).
    #[default]
    AllowAny,
    /// Only services of the registry are reachable; anything else is
    /// refused (TCP closed, HTTP 502).
    RegistryOnly,
}

/// Who fetches a `jwksUri` (istiod's `PILOT_JWT_ENABLE_REMOTE_JWKS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JwksFetchMode {
    /// The control plane, for every `jwksUri`; the keys are inlined.
    #[default]
    ControlPlane,
    /// Envoy itself (`remote_jwks`, through the service's outbound
    /// cluster) when the URL's host and port are a service of the mesh;
    /// the control plane for the rest.
    Hybrid,
}

impl Default for MeshConfig {
    fn default() -> Self {
        let providers = BTreeMap::from([
            ("prometheus".to_string(), Provider::Prometheus),
            (
                "envoy".to_string(),
                Provider::FileAccessLog(FileAccessLog::default()),
            ),
        ]);
        MeshConfig {
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            providers,
            default_providers: DefaultProviders {
                metrics: vec!["prometheus".to_string()],
                ..DefaultProviders::default()
            },
            access_log: None,
            enable_tracing: true,
            default_sampling: 1.0,
            jwks_fetch: JwksFetchMode::default(),
            outbound_traffic_policy: OutboundTrafficPolicy::default(),
        }
    }
}

impl MeshConfig {
    /// The provider called `name`, if the mesh defines it.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }
}

/// `defaultProviders`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefaultProviders {
    pub metrics: Vec<String>,
    pub access_logging: Vec<String>,
    pub tracing: Vec<String>,
}

/// One `extensionProviders` entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Provider {
    /// `prometheus`: Istio's standard metrics.
    Prometheus,
    /// `envoyFileAccessLog`.
    FileAccessLog(FileAccessLog),
    /// `envoyOtelAls`: access logs to an OpenTelemetry collector (gRPC).
    OtelAccessLog(OtelAccessLog),
    /// `zipkin`.
    Zipkin(Tracer),
    /// `opentelemetry` (tracing over OTLP gRPC).
    OpenTelemetry(Tracer),
    /// `envoyExtAuthzHttp`: an external authorizer asked over HTTP.
    ExtAuthzHttp(ExtAuthz),
    /// `envoyExtAuthzGrpc`: an external authorizer asked over gRPC
    /// (`envoy.service.auth.v3.Authorization`).
    ExtAuthzGrpc(ExtAuthz),
}

impl Provider {
    /// What the provider does, as Istio's field names say it.
    pub const fn kind(&self) -> &'static str {
        match self {
            Provider::Prometheus => "prometheus",
            Provider::FileAccessLog(_) => "envoyFileAccessLog",
            Provider::OtelAccessLog(_) => "envoyOtelAls",
            Provider::Zipkin(_) => "zipkin",
            Provider::OpenTelemetry(_) => "opentelemetry",
            Provider::ExtAuthzHttp(_) => "envoyExtAuthzHttp",
            Provider::ExtAuthzGrpc(_) => "envoyExtAuthzGrpc",
        }
    }

    /// The external authorizer, for the providers that are one.
    pub fn ext_authz(&self) -> Option<&ExtAuthz> {
        match self {
            Provider::ExtAuthzHttp(e) | Provider::ExtAuthzGrpc(e) => Some(e),
            _ => None,
        }
    }
}

/// `envoyExtAuthzHttp` / `envoyExtAuthzGrpc`: where an AuthorizationPolicy
/// with `action: CUSTOM` sends its requests, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtAuthz {
    pub service: ProviderService,
    /// How long a check may take (600s when unset, Istio's default).
    pub timeout: std::time::Duration,
    /// Allow the request when the authorizer cannot be reached.
    pub fail_open: bool,
    /// The status answered when the authorizer fails (Envoy's 403 when
    /// unset).
    pub status_on_error: Option<u16>,
    /// HTTP only: put before the request's path in the check.
    pub path_prefix: String,
    /// HTTP only: request headers sent in the check (besides Envoy's
    /// defaults); `*` prefix or suffix wildcards.
    pub include_request_headers: Vec<String>,
    /// HTTP only: headers added to the check.
    pub include_additional_headers: BTreeMap<String, String>,
    /// HTTP only: the authorizer's headers copied upstream on allow, to
    /// the client on deny and on allow.
    pub headers_to_upstream_on_allow: Vec<String>,
    pub headers_to_downstream_on_deny: Vec<String>,
    pub headers_to_downstream_on_allow: Vec<String>,
    /// Send the request body too.
    pub request_body: Option<ExtAuthzRequestBody>,
}

/// `includeRequestBodyInCheck`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtAuthzRequestBody {
    pub max_request_bytes: u32,
    pub allow_partial_message: bool,
    pub pack_as_bytes: bool,
}

/// An access log written to a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAccessLog {
    pub path: String,
    pub format: LogFormat,
}

impl Default for FileAccessLog {
    fn default() -> Self {
        FileAccessLog {
            path: "/dev/stdout".to_string(),
            format: LogFormat::DefaultText,
        }
    }
}

/// How an access log line is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Istio's default text line.
    DefaultText,
    /// Istio's default fields, as one JSON object.
    DefaultJson,
    /// A format string of Envoy command operators.
    Text(String),
    /// JSON keys to command operators.
    Json(BTreeMap<String, String>),
}

/// `envoyOtelAls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtelAccessLog {
    pub service: ProviderService,
    pub log_name: String,
    /// The log body (command operators); Istio's default text when empty.
    pub body: Option<String>,
    /// Extra attributes, names to command operators.
    pub attributes: BTreeMap<String, String>,
}

/// A `zipkin` or `opentelemetry` tracer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracer {
    pub service: ProviderService,
    /// `maxTagLength`; 0 is Envoy's default (256).
    pub max_tag_length: u32,
}

/// Where a provider sends: a service of the mesh (`service`/`port`, a
/// hostname that must be in the registry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderService {
    pub host: String,
    pub port: u16,
}
