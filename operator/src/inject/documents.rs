//! `weft inject -f`'s logic: every Pod of a multi-document YAML text
//! injected as the webhook would (or left unchanged, with the reason),
//! every other document left as it is. Pure: the command line reads the
//! file and prints the result.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Error, InjectConfig, Outcome, inject_pod};

/// Why a text could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    #[error("document {document} is not valid YAML")]
    Yaml {
        document: usize,
        source: serde_yaml::Error,
    },
    #[error("cannot inject Pod {pod}")]
    Inject { pod: String, source: Error },
    #[error("cannot print the documents as YAML")]
    Print(serde_yaml::Error),
}

impl DocumentsError {
    pub fn kind(&self) -> &'static str {
        match self {
            DocumentsError::Yaml { .. } => "yaml",
            DocumentsError::Inject { source, .. } => source.kind(),
            DocumentsError::Print(_) => "print",
        }
    }
}

/// The printed documents and what was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub yaml: String,
    pub notes: Vec<String>,
}

/// Injects every Pod of `text` (YAML, `---`-separated documents).
pub fn inject_documents(
    text: &str,
    default_namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    config: &InjectConfig,
) -> Result<Injected, DocumentsError> {
    let mut documents = Vec::new();
    let mut notes = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|source| DocumentsError::Yaml {
            document: index + 1,
            source,
        })?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(Value::as_str) != Some("Pod") {
            documents.push(value);
            continue;
        }
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(default_namespace)
            .to_string();
        let name = value
            .pointer("/metadata/name")
            .or_else(|| value.pointer("/metadata/generateName"))
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
            .to_string();
        let outcome =
            inject_pod(&value, &namespace, namespace_labels, config).map_err(|source| {
                DocumentsError::Inject {
                    pod: format!("{namespace}/{name}"),
                    source,
                }
            })?;
        match outcome {
            Outcome::Injected(pod) => documents.push(pod),
            Outcome::Skipped(skip) => {
                notes.push(format!(
                    "Pod {namespace}/{name} not injected: {}",
                    skip.reason()
                ));
                documents.push(value);
            }
        }
    }
    let mut yaml = String::new();
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(&serde_yaml::to_string(document).map_err(DocumentsError::Print)?);
    }
    Ok(Injected { yaml, notes })
}
