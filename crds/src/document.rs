//! [`MeshDocument`]: one mesh object (any [`Kind`]) read from a plain YAML /
//! JSON document, without kube (used by standalone mode's file source).
//!
//! [`MeshDocument::from_value`] checks `apiVersion`, `kind`, `metadata` and
//! `spec` in that order and reports the first problem as a
//! [`DocumentError`] that names the offending field by path, e.g.
//! `spec.http[0].timeout`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::Kind;
use crate::networking::{
    DestinationRuleSpec, GatewaySpec, ServiceEntrySpec, SidecarSpec, VirtualServiceSpec,
};
use crate::policy::{POLICY_GROUP, QuotaSpec};
use crate::security::{
    AuthorizationPolicySpec, PeerAuthenticationSpec, RequestAuthenticationSpec, SECURITY_GROUP,
};
use crate::telemetry::{TELEMETRY_GROUP, TelemetrySpec};

/// The API group of the kinds in this crate.
pub const GROUP: &str = "networking.istio.io";
/// Versions of [`GROUP`] that are served; all share one schema.
pub const SERVED_VERSIONS: [&str; 3] = ["v1alpha3", "v1beta1", "v1"];
/// The subset of Kubernetes object metadata a standalone document needs.
/// Unknown fields (`uid`, `resourceVersion`, ...) are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name (required).
    pub name: String,
    /// Namespace; the reader decides the default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Generation, if the document carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The spec of one of the served kinds.
// Not boxed: a document is parsed once and moved rarely, and matching on the
// plain specs keeps callers simple.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum MeshResource {
    /// A VirtualService's spec.
    VirtualService(VirtualServiceSpec),
    /// A DestinationRule's spec.
    DestinationRule(DestinationRuleSpec),
    /// A ServiceEntry's spec.
    ServiceEntry(ServiceEntrySpec),
    /// A Gateway's spec.
    Gateway(GatewaySpec),
    /// A Sidecar's spec.
    Sidecar(SidecarSpec),
    /// A PeerAuthentication's spec (security.istio.io).
    PeerAuthentication(PeerAuthenticationSpec),
    /// A RequestAuthentication's spec (security.istio.io).
    RequestAuthentication(RequestAuthenticationSpec),
    /// An AuthorizationPolicy's spec (security.istio.io).
    AuthorizationPolicy(AuthorizationPolicySpec),
    /// A Quota's spec (policy.weft.dev).
    Quota(QuotaSpec),
    /// A Telemetry's spec (telemetry.istio.io).
    Telemetry(TelemetrySpec),
}

impl MeshResource {
    /// The kind of this resource.
    pub fn kind(&self) -> Kind {
        match self {
            MeshResource::VirtualService(_) => Kind::VirtualService,
            MeshResource::DestinationRule(_) => Kind::DestinationRule,
            MeshResource::ServiceEntry(_) => Kind::ServiceEntry,
            MeshResource::Gateway(_) => Kind::Gateway,
            MeshResource::Sidecar(_) => Kind::Sidecar,
            MeshResource::PeerAuthentication(_) => Kind::PeerAuthentication,
            MeshResource::RequestAuthentication(_) => Kind::RequestAuthentication,
            MeshResource::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            MeshResource::Quota(_) => Kind::Quota,
            MeshResource::Telemetry(_) => Kind::Telemetry,
        }
    }

    /// The spec as a JSON value (Istio's camelCase field names).
    pub fn spec_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            MeshResource::VirtualService(spec) => serde_json::to_value(spec),
            MeshResource::DestinationRule(spec) => serde_json::to_value(spec),
            MeshResource::ServiceEntry(spec) => serde_json::to_value(spec),
            MeshResource::Gateway(spec) => serde_json::to_value(spec),
            MeshResource::Sidecar(spec) => serde_json::to_value(spec),
            MeshResource::PeerAuthentication(spec) => serde_json::to_value(spec),
            MeshResource::RequestAuthentication(spec) => serde_json::to_value(spec),
            MeshResource::AuthorizationPolicy(spec) => serde_json::to_value(spec),
            MeshResource::Quota(spec) => serde_json::to_value(spec),
            MeshResource::Telemetry(spec) => serde_json::to_value(spec),
        }
    }
}

impl From<VirtualServiceSpec> for MeshResource {
    fn from(spec: VirtualServiceSpec) -> Self {
        MeshResource::VirtualService(spec)
    }
}

impl From<DestinationRuleSpec> for MeshResource {
    fn from(spec: DestinationRuleSpec) -> Self {
        MeshResource::DestinationRule(spec)
    }
}

impl From<ServiceEntrySpec> for MeshResource {
    fn from(spec: ServiceEntrySpec) -> Self {
        MeshResource::ServiceEntry(spec)
    }
}

impl From<GatewaySpec> for MeshResource {
    fn from(spec: GatewaySpec) -> Self {
        MeshResource::Gateway(spec)
    }
}

impl From<SidecarSpec> for MeshResource {
    fn from(spec: SidecarSpec) -> Self {
        MeshResource::Sidecar(spec)
    }
}

impl From<AuthorizationPolicySpec> for MeshResource {
    fn from(spec: AuthorizationPolicySpec) -> Self {
        MeshResource::AuthorizationPolicy(spec)
    }
}

impl From<PeerAuthenticationSpec> for MeshResource {
    fn from(spec: PeerAuthenticationSpec) -> Self {
        MeshResource::PeerAuthentication(spec)
    }
}

impl From<RequestAuthenticationSpec> for MeshResource {
    fn from(spec: RequestAuthenticationSpec) -> Self {
        MeshResource::RequestAuthentication(spec)
    }
}

impl From<QuotaSpec> for MeshResource {
    fn from(spec: QuotaSpec) -> Self {
        MeshResource::Quota(spec)
    }
}

impl From<TelemetrySpec> for MeshResource {
    fn from(spec: TelemetrySpec) -> Self {
        MeshResource::Telemetry(spec)
    }
}

/// One parsed networking object: its metadata and its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshDocument {
    /// Metadata.
    pub meta: ObjectMeta,
    /// Kind and spec.
    pub resource: MeshResource,
}

/// What is wrong with a document. [`DocumentError::field`] gives the path of
/// the offending field, [`DocumentError::kind`] a fixed label for metrics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The document is not a mapping.
    #[error(
        "a document must be a mapping with apiVersion, kind, metadata and spec (found {found})"
    )]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A required field is absent.
    #[error("{field} is missing")]
    MissingField {
        /// Path of the field.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("{field} must be {expected} (found {found})")]
    WrongType {
        /// Path of the field.
        field: &'static str,
        /// The expected type.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// `apiVersion` is not one Weft serves.
    #[error(
        "apiVersion: {api_version} is not served by Weft for this kind (networking.istio.io/v1alpha3, v1beta1 or v1; security.istio.io/v1beta1 or v1 for PeerAuthentication and AuthorizationPolicy; policy.weft.dev/v1alpha1 for Quota; telemetry.istio.io/v1alpha1 or v1 for Telemetry)"
    )]
    UnsupportedApiVersion {
        /// The value found.
        api_version: String,
    },
    /// `kind` is not one Weft serves.
    #[error("kind: {kind} is not a kind Weft serves ({})", served_kinds())]
    UnsupportedKind {
        /// The value found.
        kind: String,
    },
    /// A field failed to parse.
    #[error("{field}: {message}")]
    InvalidField {
        /// Path of the field, e.g. `spec.http[0].timeout`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl DocumentError {
    /// Path of the offending field, if the error concerns one.
    pub fn field(&self) -> Option<&str> {
        match self {
            DocumentError::NotAnObject { .. } => None,
            DocumentError::MissingField { field } | DocumentError::WrongType { field, .. } => {
                Some(field)
            }
            DocumentError::UnsupportedApiVersion { .. } => Some("apiVersion"),
            DocumentError::UnsupportedKind { .. } => Some("kind"),
            DocumentError::InvalidField { field, .. } => Some(field),
        }
    }

    /// A short, fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DocumentError::NotAnObject { .. } => "not_an_object",
            DocumentError::MissingField { .. } => "missing_field",
            DocumentError::WrongType { .. } => "wrong_type",
            DocumentError::UnsupportedApiVersion { .. } => "unsupported_api_version",
            DocumentError::UnsupportedKind { .. } => "unsupported_kind",
            DocumentError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// The served kinds, comma-separated, for messages.
fn served_kinds() -> String {
    Kind::ALL.map(Kind::as_str).join(", ")
}

/// The JSON type of `value`, as messages name it (`a mapping`, `a list`).
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Takes a string field out of the top-level mapping.
fn take_string(
    object: &mut serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<String, DocumentError> {
    match object.remove(field) {
        None | Some(Value::Null) => Err(DocumentError::MissingField { field }),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(DocumentError::WrongType {
            field,
            expected: "a string",
            found: json_type(&other),
        }),
    }
}

/// Deserializes `value`, reporting a failure as
/// [`DocumentError::InvalidField`] with the failing field's path below
/// `prefix` (`spec.http[0].timeout`; `prefix` may be empty).
pub fn parse_at<T: DeserializeOwned>(prefix: &str, value: Value) -> Result<T, DocumentError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            prefix.to_string()
        } else if path.starts_with('[') || prefix.is_empty() {
            format!("{prefix}{path}")
        } else {
            format!("{prefix}.{path}")
        };
        DocumentError::InvalidField {
            field,
            message: err.into_inner().to_string(),
        }
    })
}

/// Whether `api_version` (`group/version`) is in one of the API groups
/// Weft serves: `networking.istio.io`, `security.istio.io`,
/// `telemetry.istio.io`, `policy.weft.dev` (any version).
pub fn is_served_api_version(api_version: &str) -> bool {
    [GROUP, SECURITY_GROUP, POLICY_GROUP, TELEMETRY_GROUP]
        .iter()
        .any(|group| {
            api_version
                .strip_prefix(group)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

impl MeshDocument {
    /// Reads one object: `kind` must be a [`Kind`] and `apiVersion` its
    /// group plus one of its [`Kind::served_versions`], `metadata.name`
    /// must be set, and `spec` must parse (an absent spec is read as `{}`).
    pub fn from_value(value: Value) -> Result<MeshDocument, DocumentError> {
        let mut object = match value {
            Value::Object(object) => object,
            other => {
                return Err(DocumentError::NotAnObject {
                    found: json_type(&other),
                });
            }
        };

        let api_version = take_string(&mut object, "apiVersion")?;
        if !is_served_api_version(&api_version) {
            return Err(DocumentError::UnsupportedApiVersion { api_version });
        }

        let kind_name = take_string(&mut object, "kind")?;
        let Some(kind) = Kind::from_name(&kind_name) else {
            return Err(DocumentError::UnsupportedKind { kind: kind_name });
        };
        let served = api_version
            .strip_prefix(kind.group())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|version| kind.served_versions().contains(&version));
        if !served {
            return Err(DocumentError::UnsupportedApiVersion { api_version });
        }

        let meta = match object.remove("metadata") {
            None | Some(Value::Null) => {
                return Err(DocumentError::MissingField {
                    field: "metadata.name",
                });
            }
            Some(Value::Object(mut metadata)) => {
                match metadata.get("name") {
                    None | Some(Value::Null) => {
                        return Err(DocumentError::MissingField {
                            field: "metadata.name",
                        });
                    }
                    Some(Value::String(name)) if name.is_empty() => {
                        return Err(DocumentError::InvalidField {
                            field: "metadata.name".to_string(),
                            message: "must not be empty".to_string(),
                        });
                    }
                    _ => {}
                }
                // Drop fields a standalone reader has no use for but whose
                // types vary (e.g. managedFields), so they cannot fail.
                metadata.retain(|key, _| {
                    matches!(
                        key.as_str(),
                        "name" | "namespace" | "generation" | "labels" | "annotations"
                    )
                });
                parse_at::<ObjectMeta>("metadata", Value::Object(metadata))?
            }
            Some(other) => {
                return Err(DocumentError::WrongType {
                    field: "metadata",
                    expected: "a mapping",
                    found: json_type(&other),
                });
            }
        };

        let spec = match object.remove("spec") {
            None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
            Some(spec) => spec,
        };
        let resource = match kind {
            Kind::VirtualService => MeshResource::VirtualService(parse_at("spec", spec)?),
            Kind::DestinationRule => MeshResource::DestinationRule(parse_at("spec", spec)?),
            Kind::ServiceEntry => MeshResource::ServiceEntry(parse_at("spec", spec)?),
            Kind::Gateway => MeshResource::Gateway(parse_at("spec", spec)?),
            Kind::Sidecar => MeshResource::Sidecar(parse_at("spec", spec)?),
            Kind::PeerAuthentication => MeshResource::PeerAuthentication(parse_at("spec", spec)?),
            Kind::RequestAuthentication => {
                MeshResource::RequestAuthentication(parse_at("spec", spec)?)
            }
            Kind::AuthorizationPolicy => MeshResource::AuthorizationPolicy(parse_at("spec", spec)?),
            Kind::Quota => MeshResource::Quota(parse_at("spec", spec)?),
            Kind::Telemetry => MeshResource::Telemetry(parse_at("spec", spec)?),
        };

        Ok(MeshDocument { meta, resource })
    }

    /// The object as a JSON value in the given served version (e.g. `"v1"`),
    /// the inverse of [`MeshDocument::from_value`].
    pub fn to_value(&self, version: &str) -> Result<Value, serde_json::Error> {
        Ok(serde_json::json!({
            "apiVersion": format!("{}/{version}", self.resource.kind().group()),
            "kind": self.resource.kind().as_str(),
            "metadata": serde_json::to_value(&self.meta)?,
            "spec": self.resource.spec_value()?,
        }))
    }
}
