//! Istio's MeshConfig, as YAML (`weft standalone --mesh-config FILE`, or
//! key `mesh` of ConfigMap `istio`), to [`MeshConfig`].
//!
//! Read: `rootNamespace`, `trustDomain`, `extensionProviders` (`prometheus`,
//! `envoyFileAccessLog`, `envoyOtelAls`, `zipkin`, `opentelemetry`,
//! `envoyExtAuthzHttp`, `envoyExtAuthzGrpc`; Istio's
//! other provider kinds, and fields of these that Weft does not honour,
//! are refused as not supported), `defaultProviders`, `accessLogFile`,
//! `accessLogEncoding`, `accessLogFormat`, `enableTracing`,
//! `defaultConfig.tracing.sampling` and `outboundTrafficPolicy.mode`; each
//! also under its proto name
//! (`trust_domain`), as Istio reads them. What is absent keeps its default
//! (Istio's, or the control plane's own: [`parse_mesh_config_over`]); the
//! built-in providers `prometheus` and `envoy` stay unless a provider of
//! the same name replaces them. MeshConfig has many more fields: they are
//! accepted and ignored (users copy whole configs), but a known field of
//! the wrong type is refused, naming it (`extensionProviders[2].zipkin.port`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use weft_crds::{DocumentError, json_type};
use weft_model::{
    DefaultProviders, FileAccessLog, LogFormat, MeshConfig, OtelAccessLog, OutboundTrafficPolicy,
    Provider, ProviderService, Tracer, qualify_host,
};

use crate::convert::is_dns_label;
use crate::{ErrorReason, FieldError};

/// Istio's default `logName` of an `envoyOtelAls` provider.
pub const DEFAULT_OTEL_LOG_NAME: &str = "otel_envoy_accesslog";

/// Parses Istio's MeshConfig YAML over Istio's defaults
/// ([`MeshConfig::default`]); empty text is the defaults.
pub fn parse_mesh_config(yaml: &str) -> Result<MeshConfig, Vec<FieldError>> {
    parse_mesh_config_over(yaml, &MeshConfig::default())
}

/// Parses Istio's MeshConfig YAML; a field it leaves out keeps its value
/// in `defaults` (the control plane's flags over Istio's defaults), and
/// its `extensionProviders` are added to `defaults`' providers, replacing
/// those of the same name.
pub fn parse_mesh_config_over(
    yaml: &str,
    defaults: &MeshConfig,
) -> Result<MeshConfig, Vec<FieldError>> {
    let raw = parse_raw(yaml).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut mesh = defaults.clone();
    if let Some(log) = access_log(&raw, &mut errors) {
        mesh.access_log = log;
    }
    if let Some(ns) = raw.root_namespace.filter(|ns| !ns.is_empty()) {
        if is_dns_label(&ns) {
            mesh.root_namespace = ns;
        } else {
            errors.push(invalid(
                "rootNamespace",
                format!("{ns:?} is not a namespace name"),
            ));
        }
    }
    if let Some(domain) = raw.trust_domain.filter(|d| !d.is_empty()) {
        if is_trust_domain(&domain) {
            mesh.trust_domain = domain;
        } else {
            errors.push(invalid(
                "trustDomain",
                format!(
                    "{domain:?} is not a trust domain (letters, digits, '-', '.' and '_', as in cluster.local)"
                ),
            ));
        }
    }
    let mut defined: BTreeMap<String, usize> = BTreeMap::new();
    for (i, value) in raw.extension_providers.iter().enumerate() {
        let path = format!("extensionProviders[{i}]");
        let Some((name, provider)) = extension_provider(&path, value, &mut errors) else {
            continue;
        };
        if let Some(first) = defined.insert(name.clone(), i) {
            errors.push(invalid(
                format!("{path}.name"),
                format!("{name:?} is defined twice (first at extensionProviders[{first}]); provider names are unique"),
            ));
        }
        mesh.providers.insert(name, provider);
    }
    if let Some(default_providers) = raw.default_providers {
        mesh.default_providers = default_providers_of(
            default_providers,
            &mesh,
            &mesh.default_providers,
            &mut errors,
        );
    }
    if let Some(enabled) = raw.enable_tracing {
        mesh.enable_tracing = enabled;
    }
    if let Some(mode) = raw.outbound_traffic_policy.and_then(|p| p.mode) {
        mesh.outbound_traffic_policy = match mode {
            RawOutboundMode::AllowAny => OutboundTrafficPolicy::AllowAny,
            RawOutboundMode::RegistryOnly => OutboundTrafficPolicy::RegistryOnly,
        };
    }
    let sampling = raw
        .default_config
        .and_then(|c| c.tracing)
        .and_then(|t| t.sampling);
    if let Some(sampling) = sampling {
        if (0.0..=100.0).contains(&sampling) {
            mesh.default_sampling = sampling;
        } else {
            errors.push(invalid(
                "defaultConfig.tracing.sampling",
                format!("{sampling} is not a percentage (0 to 100)"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(mesh)
    } else {
        Err(errors)
    }
}

/// The telemetry signal a provider is named for, and which providers can
/// serve it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Metrics,
    Tracing,
    AccessLogging,
}

impl Signal {
    /// Whether `provider` reports this signal.
    pub(crate) fn accepts(self, provider: &Provider) -> bool {
        match self {
            Signal::Metrics => matches!(provider, Provider::Prometheus),
            Signal::Tracing => matches!(provider, Provider::Zipkin(_) | Provider::OpenTelemetry(_)),
            Signal::AccessLogging => matches!(
                provider,
                Provider::FileAccessLog(_) | Provider::OtelAccessLog(_)
            ),
        }
    }

    /// What the signal needs, for messages.
    pub(crate) fn needs(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics need a prometheus provider",
            Signal::Tracing => "tracing needs a zipkin or opentelemetry provider",
            Signal::AccessLogging => {
                "access logging needs an envoyFileAccessLog or envoyOtelAls provider"
            }
        }
    }

    /// Why `name` cannot serve this signal in `mesh`, if it cannot.
    pub(crate) fn refuses(self, mesh: &MeshConfig, name: &str) -> Option<String> {
        match mesh.provider(name) {
            None => {
                let names: Vec<&str> = mesh.providers.keys().map(String::as_str).collect();
                Some(format!(
                    "the mesh config defines no provider {name:?} (it has {}); add it to extensionProviders or fix the name",
                    names.join(", ")
                ))
            }
            Some(provider) if !self.accepts(provider) => Some(format!(
                "provider {name:?} is a {} provider; {}",
                provider.kind(),
                self.needs()
            )),
            Some(_) => None,
        }
    }
}

/// The fields of MeshConfig Weft reads; serde ignores the others.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMeshConfig {
    #[serde(default, alias = "root_namespace")]
    root_namespace: Option<String>,
    #[serde(default, alias = "trust_domain")]
    trust_domain: Option<String>,
    #[serde(default, alias = "extension_providers", deserialize_with = "list")]
    extension_providers: Vec<Value>,
    #[serde(default, alias = "default_providers")]
    default_providers: Option<RawDefaultProviders>,
    #[serde(default, alias = "access_log_file")]
    access_log_file: Option<String>,
    #[serde(default, alias = "access_log_encoding")]
    access_log_encoding: Option<AccessLogEncoding>,
    #[serde(default, alias = "access_log_format")]
    access_log_format: Option<String>,
    #[serde(default, alias = "enable_tracing")]
    enable_tracing: Option<bool>,
    #[serde(default, alias = "default_config")]
    default_config: Option<RawProxyConfig>,
    #[serde(default, alias = "outbound_traffic_policy")]
    outbound_traffic_policy: Option<RawOutboundTrafficPolicy>,
}

/// `outboundTrafficPolicy`.
#[derive(Debug, Default, Deserialize)]
struct RawOutboundTrafficPolicy {
    #[serde(default)]
    mode: Option<RawOutboundMode>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
enum RawOutboundMode {
    #[serde(rename = "ALLOW_ANY")]
    AllowAny,
    #[serde(rename = "REGISTRY_ONLY")]
    RegistryOnly,
}

/// `accessLogEncoding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
enum AccessLogEncoding {
    #[default]
    #[serde(rename = "TEXT")]
    Text,
    #[serde(rename = "JSON")]
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDefaultProviders {
    #[serde(default)]
    metrics: Option<Vec<String>>,
    #[serde(default)]
    tracing: Option<Vec<String>>,
    #[serde(default, alias = "access_logging")]
    access_logging: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawProxyConfig {
    #[serde(default)]
    tracing: Option<RawTracing>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTracing {
    #[serde(default)]
    sampling: Option<f64>,
}

/// A list field, `null` read as absent.
fn list<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The text as [`RawMeshConfig`]; the first type error names its field.
fn parse_raw(yaml: &str) -> Result<RawMeshConfig, FieldError> {
    if yaml.trim().is_empty() {
        return Ok(RawMeshConfig::default());
    }
    let value: Value =
        serde_yaml::from_str(yaml).map_err(|err| invalid("", format!("not valid YAML: {err}")))?;
    match value {
        Value::Null => Ok(RawMeshConfig::default()),
        Value::Object(_) => parse_at("", value),
        other => Err(invalid(
            "",
            format!(
                "a mesh config is a mapping of MeshConfig fields (found {})",
                json_type(&other)
            ),
        )),
    }
}

/// Deserializes `value`, naming the failing field's path below `prefix`.
fn parse_at<T: DeserializeOwned>(prefix: &str, value: Value) -> Result<T, FieldError> {
    weft_crds::parse_at(prefix, value).map_err(|err| match err {
        DocumentError::InvalidField { field, message } => invalid(field, message),
        other => invalid(prefix, other.to_string()),
    })
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(ErrorReason::Invalid, field, message)
}

/// `snake_case` as `camelCase` (protobuf's JSON names), so that both
/// spellings Istio reads are recognised.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A proto zero value (`false`, `0`, `""`, `{}`, `[]`, null): what an
/// unset field reads as.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Provider kinds Weft reads.
const SUPPORTED_PROVIDERS: [&str; 7] = [
    "prometheus",
    "envoyFileAccessLog",
    "envoyOtelAls",
    "zipkin",
    "opentelemetry",
    "envoyExtAuthzHttp",
    "envoyExtAuthzGrpc",
];

/// Istio's other provider kinds.
const OTHER_ISTIO_PROVIDERS: [&str; 8] = [
    "stackdriver",
    "skywalking",
    "datadog",
    "lightstep",
    "opencensus",
    "envoyHttpAls",
    "envoyTcpAls",
    "sds",
];

/// One `extensionProviders` entry: `name` and exactly one provider.
fn extension_provider(
    path: &str,
    value: &Value,
    errors: &mut Vec<FieldError>,
) -> Option<(String, Provider)> {
    let Value::Object(entry) = value else {
        errors.push(invalid(
            path,
            format!(
                "an extension provider is a mapping of name and one provider (found {})",
                json_type(value)
            ),
        ));
        return None;
    };
    let name = match entry.get("name") {
        Some(Value::String(name)) if !name.is_empty() => Some(name.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            errors.push(invalid(
                format!("{path}.name"),
                "is required: the name Telemetry resources use",
            ));
            None
        }
        Some(other) => {
            errors.push(invalid(
                format!("{path}.name"),
                format!("must be a string (found {})", json_type(other)),
            ));
            None
        }
    };
    let kinds: Vec<(&String, &Value)> = entry.iter().filter(|(key, _)| *key != "name").collect();
    let [(key, config)] = kinds.as_slice() else {
        let found: Vec<&str> = kinds.iter().map(|(key, _)| key.as_str()).collect();
        errors.push(invalid(
            path,
            format!(
                "sets {} providers ({}); an entry defines exactly one of {}",
                found.len(),
                found.join(", "),
                SUPPORTED_PROVIDERS.join(", ")
            ),
        ));
        return None;
    };
    let field = format!("{path}.{key}");
    let kind = camel_case(key);
    let provider = match kind.as_str() {
        "prometheus" => prometheus(&field, config, errors),
        "envoyFileAccessLog" => file_access_log(&field, config, errors),
        "envoyOtelAls" => otel_access_log(&field, config, errors),
        "zipkin" => tracer(&field, config, errors).map(Provider::Zipkin),
        "opentelemetry" => tracer(&field, config, errors).map(Provider::OpenTelemetry),
        "envoyExtAuthzHttp" => ext_authz(&field, config, true, errors).map(Provider::ExtAuthzHttp),
        "envoyExtAuthzGrpc" => ext_authz(&field, config, false, errors).map(Provider::ExtAuthzGrpc),
        other if OTHER_ISTIO_PROVIDERS.contains(&other) => {
            errors.push(FieldError::unsupported(
                field,
                format!(
                    "{other} providers are not supported by Weft yet (it has {}); remove the provider",
                    SUPPORTED_PROVIDERS.join(", ")
                ),
            ));
            None
        }
        other => {
            errors.push(invalid(
                field,
                format!(
                    "{other:?} is not a provider kind (Weft has {})",
                    SUPPORTED_PROVIDERS.join(", ")
                ),
            ));
            None
        }
    }?;
    Some((name?, provider))
}

/// Refuses, as not supported, the fields of the mapping `value` at `path`
/// that `known` does not list and that are set (not a zero value).
fn refuse_unknown_fields(path: &str, value: &Value, known: &[&str], errors: &mut Vec<FieldError>) {
    let Value::Object(fields) = value else { return };
    for (key, field) in fields {
        if !known.contains(&camel_case(key).as_str()) && !is_zero(field) {
            errors.push(FieldError::unsupported(
                format!("{path}.{key}"),
                format!(
                    "not supported by Weft yet (it reads {} here); remove it",
                    known.join(", ")
                ),
            ));
        }
    }
}

/// `prometheus: {}`.
fn prometheus(field: &str, config: &Value, errors: &mut Vec<FieldError>) -> Option<Provider> {
    match config {
        Value::Null | Value::Object(_) => {
            refuse_unknown_fields(field, config, &[], errors);
            Some(Provider::Prometheus)
        }
        other => {
            errors.push(invalid(
                field,
                format!("must be a mapping, `{{}}` (found {})", json_type(other)),
            ));
            None
        }
    }
}

/// A provider's `logFormat`: `text`, `labels` (command operators as
/// strings).
#[derive(Debug, Default, Deserialize)]
struct RawLogFormat {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    labels: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFileAccessLog {
    #[serde(default)]
    path: Option<String>,
    #[serde(default, alias = "log_format")]
    log_format: Option<Value>,
}

fn file_access_log(field: &str, config: &Value, errors: &mut Vec<FieldError>) -> Option<Provider> {
    refuse_unknown_fields(field, config, &["path", "logFormat"], errors);
    let raw: RawFileAccessLog = parse_or_push(field, config, errors)?;
    let mut log = FileAccessLog::default();
    if let Some(path) = raw.path.filter(|p| !p.is_empty()) {
        log.path = path;
    }
    if let Some(format) = raw.log_format.filter(|f| !f.is_null()) {
        let path = format!("{field}.logFormat");
        let format = log_format(&path, &format, errors)?;
        log.format = match format {
            (Some(_), Some(_)) => {
                errors.push(invalid(
                    path,
                    "text and labels are one of: set one (a text line or JSON)",
                ));
                return None;
            }
            (Some(text), None) => LogFormat::Text(text),
            (None, Some(labels)) if labels.is_empty() => LogFormat::DefaultJson,
            (None, Some(labels)) => LogFormat::Json(labels),
            (None, None) => LogFormat::DefaultText,
        };
    }
    Some(Provider::FileAccessLog(log))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOtelAccessLog {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default, alias = "log_name")]
    log_name: Option<String>,
    #[serde(default, alias = "log_format")]
    log_format: Option<Value>,
}

fn otel_access_log(field: &str, config: &Value, errors: &mut Vec<FieldError>) -> Option<Provider> {
    refuse_unknown_fields(
        field,
        config,
        &["service", "port", "logName", "logFormat"],
        errors,
    );
    let raw: RawOtelAccessLog = parse_or_push(field, config, errors)?;
    let service = provider_service(field, raw.service.as_deref(), raw.port, errors);
    let (body, attributes) = match raw.log_format.filter(|f| !f.is_null()) {
        Some(format) => log_format(&format!("{field}.logFormat"), &format, errors)?,
        None => (None, None),
    };
    Some(Provider::OtelAccessLog(OtelAccessLog {
        service: service?,
        log_name: raw
            .log_name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_OTEL_LOG_NAME.to_string()),
        body: body.filter(|b| !b.is_empty()),
        attributes: attributes.unwrap_or_default(),
    }))
}

/// `logFormat`'s `text` and `labels`, each `None` when unset.
#[allow(clippy::type_complexity)]
fn log_format(
    path: &str,
    format: &Value,
    errors: &mut Vec<FieldError>,
) -> Option<(Option<String>, Option<BTreeMap<String, String>>)> {
    refuse_unknown_fields(path, format, &["text", "labels"], errors);
    let raw: RawLogFormat = parse_or_push(path, format, errors)?;
    let labels = match raw.labels {
        Some(labels) => Some(string_values(&format!("{path}.labels"), labels, errors)?),
        None => None,
    };
    Some((raw.text.filter(|t| !t.is_empty()), labels))
}

/// JSON log fields: each value a string of command operators.
fn string_values(
    path: &str,
    fields: Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in fields {
        match value {
            Value::String(text) => {
                out.insert(key, text);
            }
            other => {
                errors.push(FieldError::unsupported(
                    format!("{path}.{key}"),
                    format!(
                        "only strings (Envoy command operators, e.g. \"%RESPONSE_CODE%\") are supported by Weft as log fields (found {})",
                        json_type(&other)
                    ),
                ));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTracer {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default, alias = "max_tag_length")]
    max_tag_length: Option<u32>,
}

fn tracer(field: &str, config: &Value, errors: &mut Vec<FieldError>) -> Option<Tracer> {
    refuse_unknown_fields(field, config, &["service", "port", "maxTagLength"], errors);
    let raw: RawTracer = parse_or_push(field, config, errors)?;
    Some(Tracer {
        service: provider_service(field, raw.service.as_deref(), raw.port, errors)?,
        max_tag_length: raw.max_tag_length.unwrap_or(0),
    })
}

/// `config` as `T`, or its first type error pushed.
fn parse_or_push<T: DeserializeOwned + Default>(
    field: &str,
    config: &Value,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match config {
        Value::Null => Some(T::default()),
        Value::Object(_) => match parse_at(field, config.clone()) {
            Ok(raw) => Some(raw),
            Err(err) => {
                errors.push(err);
                None
            }
        },
        other => {
            errors.push(invalid(
                field,
                format!("must be a mapping (found {})", json_type(other)),
            ));
            None
        }
    }
}

/// A provider's `service` (`[namespace/]hostname`, stored fully
/// qualified) and `port`.
fn provider_service(
    field: &str,
    service: Option<&str>,
    port: Option<u32>,
    errors: &mut Vec<FieldError>,
) -> Option<ProviderService> {
    let port = match port {
        Some(port @ 1..=65535) => u16::try_from(port).ok(),
        Some(port) => {
            errors.push(invalid(
                format!("{field}.port"),
                format!("{port} is not a port number (1-65535)"),
            ));
            None
        }
        None => {
            errors.push(invalid(
                format!("{field}.port"),
                "is required: the service's port",
            ));
            None
        }
    };
    let field = format!("{field}.service");
    let Some(service) = service.filter(|s| !s.is_empty()) else {
        errors.push(invalid(
            field,
            "is required: the service's host, [namespace/]hostname (e.g. zipkin.istio-system.svc.cluster.local)",
        ));
        return None;
    };
    let host = match service.split_once('/') {
        Some((namespace, host)) if is_dns_label(namespace) && is_hostname(host) => {
            qualify_host(host, namespace)
        }
        Some(("*", host)) if is_hostname(host) && host.contains('.') => host.to_ascii_lowercase(),
        None if is_hostname(service) && service.contains('.') => service.to_ascii_lowercase(),
        None if is_hostname(service) => {
            errors.push(invalid(
                field,
                format!(
                    "{service:?} is not fully qualified: write {service}.NAMESPACE.svc.cluster.local or NAMESPACE/{service}"
                ),
            ));
            return None;
        }
        _ => {
            errors.push(invalid(
                field,
                format!("{service:?} is not [namespace/]hostname"),
            ));
            return None;
        }
    };
    Some(ProviderService { host, port: port? })
}

/// `defaultProviders`: each list given replaces `previous`' one; every
/// name must be a provider of `mesh` for that signal.
fn default_providers_of(
    raw: RawDefaultProviders,
    mesh: &MeshConfig,
    previous: &DefaultProviders,
    errors: &mut Vec<FieldError>,
) -> DefaultProviders {
    let mut checked =
        |list: &str, signal: Signal, names: Option<Vec<String>>, previous: &[String]| {
            let names = names.unwrap_or_else(|| previous.to_vec());
            for (i, name) in names.iter().enumerate() {
                if let Some(problem) = signal.refuses(mesh, name) {
                    errors.push(invalid(format!("defaultProviders.{list}[{i}]"), problem));
                }
            }
            names
        };
    DefaultProviders {
        metrics: checked("metrics", Signal::Metrics, raw.metrics, &previous.metrics),
        tracing: checked("tracing", Signal::Tracing, raw.tracing, &previous.tracing),
        access_logging: checked(
            "accessLogging",
            Signal::AccessLogging,
            raw.access_logging,
            &previous.access_logging,
        ),
    }
}

/// `accessLogFile` with `accessLogEncoding` and `accessLogFormat`:
/// `Some(None)` when `accessLogFile` is empty (no mesh access log),
/// `None` when nothing is said or the fields are wrong.
fn access_log(raw: &RawMeshConfig, errors: &mut Vec<FieldError>) -> Option<Option<FileAccessLog>> {
    let path = raw.access_log_file.as_ref()?;
    if path.is_empty() {
        return Some(None);
    }
    let encoding = raw.access_log_encoding.unwrap_or_default();
    let text = raw.access_log_format.as_deref().unwrap_or_default();
    let format = match (encoding, text.trim().is_empty()) {
        (AccessLogEncoding::Text, true) => LogFormat::DefaultText,
        (AccessLogEncoding::Text, false) => LogFormat::Text(text.to_string()),
        (AccessLogEncoding::Json, true) => LogFormat::DefaultJson,
        (AccessLogEncoding::Json, false) => {
            let fields = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(fields)) => fields,
                Ok(other) => {
                    errors.push(invalid(
                        "accessLogFormat",
                        format!(
                            "with accessLogEncoding JSON, a JSON object of field names to command operators (found {})",
                            json_type(&other)
                        ),
                    ));
                    return None;
                }
                Err(err) => {
                    errors.push(invalid(
                        "accessLogFormat",
                        format!("with accessLogEncoding JSON, a JSON object of field names to command operators: {err}"),
                    ));
                    return None;
                }
            };
            LogFormat::Json(string_values("accessLogFormat", fields, errors)?)
        }
    };
    Some(Some(FileAccessLog {
        path: path.clone(),
        format,
    }))
}

/// A DNS name (or an IP address, which is made of the same characters).
fn is_hostname(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_trust_domain(text: &str) -> bool {
    text.len() <= 255
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[path = "mesh_config_ext_authz.rs"]
mod ext_authz_provider;
use ext_authz_provider::ext_authz;

#[cfg(test)]
#[path = "mesh_config_tests.rs"]
mod tests;
