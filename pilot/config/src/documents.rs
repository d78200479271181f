//! Multi-document YAML text, as a user would `kubectl apply` it, to
//! [`Input`]s: each document parsed with [`MeshDocument`] and converted.
//! Pure: the file source reads the files, this reads the text.

use serde::Deserialize;
use serde_json::Value;
use weft_crds::{DocumentError, Kind, MeshDocument};
use weft_model::ResourceId;

use crate::{ErrorReason, FieldError, Input, Origin, convert};

/// Parses multi-document YAML text from `source` into inputs.
pub fn parse_documents(source: &str, text: &str) -> Vec<Input> {
    split_documents(source, text)
        .into_iter()
        .map(|document| match document.value {
            Ok(value) => document_input(document.origin, value),
            Err(error) => Input::Broken {
                origin: document.origin,
                error,
            },
        })
        .collect()
}

/// One document of a multi-document YAML text, not yet read as any kind:
/// its JSON value, or why the text is not YAML.
#[derive(Clone, Debug)]
pub struct Document {
    pub origin: Origin,
    pub value: Result<Value, FieldError>,
}

/// Splits multi-document YAML text from `source` into documents (empty
/// ones skipped). A syntax error ends the text: the parser cannot
/// resynchronise after one.
pub fn split_documents(source: &str, text: &str) -> Vec<Document> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            source: source.to_string(),
            document: Some(index),
        };
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(Document {
                origin,
                value: Ok(value),
            }),
            Err(err) => {
                let error = FieldError::new(
                    ErrorReason::Unreadable,
                    "",
                    format!("not valid YAML: {err}"),
                );
                documents.push(Document {
                    origin,
                    value: Err(error),
                });
                break;
            }
        }
    }
    documents
}

/// Whether `value`'s `apiVersion` is in one of the API groups Weft serves
/// (`networking.istio.io`, `security.istio.io`, `telemetry.istio.io`,
/// `policy.weft.dev`), or names none: documents of other groups
/// (Deployments, Services, ConfigMaps, Gateway API, ...) are not Weft's.
pub fn is_mesh_document(value: &Value) -> bool {
    let Some(api_version) = value.get("apiVersion").and_then(Value::as_str) else {
        return true;
    };
    weft_crds::is_served_api_version(api_version)
}

/// A document as an input: a resource (converted, or its field errors),
/// a document of an Istio kind Weft does not serve, or a broken one.
pub fn document_input(origin: Origin, value: Value) -> Input {
    let identified = identify(&value);
    match MeshDocument::from_value(value) {
        Ok(document) => {
            let namespace = document
                .meta
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE);
            let id = ResourceId::new(document.resource.kind(), namespace, &document.meta.name);
            let result = convert(&id, &document.resource);
            Input::Resource { origin, id, result }
        }
        Err(err) => match identified {
            Some(id) => Input::Resource {
                origin,
                id,
                result: Err(vec![document_error(&err, ErrorReason::Invalid)]),
            },
            None if is_other_mesh_kind(&err) => Input::Unserved {
                origin,
                error: document_error(&err, ErrorReason::Unsupported),
            },
            None => Input::Broken {
                origin,
                error: document_error(&err, ErrorReason::Invalid),
            },
        },
    }
}

/// The namespace of a resource whose metadata names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The kind, namespace and name of a document whose spec does not parse,
/// so that its last good version can stand in for it.
fn identify(value: &Value) -> Option<ResourceId> {
    let kind = Kind::from_name(value.get("kind")?.as_str()?)?;
    let metadata = value.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_NAMESPACE);
    Some(ResourceId::new(kind, namespace, name))
}

/// Istio kinds that may share a directory with what Weft serves today:
/// reported, but they do not hold back the rest of their file.
fn is_other_mesh_kind(err: &DocumentError) -> bool {
    const KINDS: &[&str] = &[
        "WorkloadEntry",
        "WorkloadGroup",
        "EnvoyFilter",
        "ProxyConfig",
        "WasmPlugin",
    ];
    matches!(err, DocumentError::UnsupportedKind { kind } if KINDS.contains(&kind.as_str()))
}

fn document_error(err: &DocumentError, reason: ErrorReason) -> FieldError {
    match err {
        DocumentError::InvalidField { field, message } => FieldError::new(reason, field, message),
        other => FieldError::new(reason, "", other.to_string()),
    }
}

#[cfg(test)]
mod tests;
