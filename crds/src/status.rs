//! [`ResourceStatus`]: the `status` Weft writes on the networking kinds.
//!
//! The Rust type is typed (conditions and `observedGeneration`), but the
//! schema it contributes to the CRDs is deliberately open: an `object` with
//! `x-kubernetes-preserve-unknown-fields: true`, as Istio's own CRDs declare
//! their status. That keeps status written by other controllers (or a later
//! Weft) from being pruned, and lets a later change tighten the schema
//! without breaking stored objects. Parsing ignores fields it does not know.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Status of a networking resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// Current conditions, one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One status condition, in the Kubernetes `metav1.Condition` shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Accepted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason, CamelCase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time of the last status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl JsonSchema for ResourceStatus {
    fn schema_name() -> Cow<'static, str> {
        "ResourceStatus".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::ResourceStatus").into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}
