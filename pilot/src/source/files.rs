//! Standalone mode's source: a directory of Istio YAML files, the same
//! multi-document YAML a user would `kubectl apply`, watched for changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use weft_crds::{DocumentError, MeshDocument};

use super::debounce::Debouncer;
use crate::config::{ErrorReason, FieldError, Input, Origin, convert};
use crate::model::ResourceId;

/// Reads every `*.yaml` / `*.yml` file of `dir` (not recursing), in name
/// order, into inputs. Never fails: what cannot be read becomes an input
/// that says so.
pub fn read_config_dir(dir: &Path) -> Vec<Input> {
    let files = match yaml_files(dir) {
        Ok(files) => files,
        Err(err) => {
            let origin = Origin {
                source: dir.display().to_string(),
                document: None,
            };
            let error = FieldError::new(
                ErrorReason::Unreadable,
                "",
                format!("cannot list the directory: {err}"),
            );
            return vec![Input::Broken { origin, error }];
        }
    };
    files.iter().flat_map(|f| read_config_file(f)).collect()
}

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads one file's documents.
pub fn read_config_file(path: &Path) -> Vec<Input> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_documents(&source, &text),
        Err(err) => vec![Input::Broken {
            origin: Origin {
                source,
                document: None,
            },
            error: FieldError::new(
                ErrorReason::Unreadable,
                "",
                format!("cannot read the file: {err}"),
            ),
        }],
    }
}

/// Parses multi-document YAML text from `source` into inputs.
pub fn parse_documents(source: &str, text: &str) -> Vec<Input> {
    let mut inputs = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            source: source.to_string(),
            document: Some(index),
        };
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => inputs.push(document_input(origin, value)),
            Err(err) => {
                let error = FieldError::new(
                    ErrorReason::Unreadable,
                    "",
                    format!("not valid YAML: {err}"),
                );
                inputs.push(Input::Broken { origin, error });
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        }
    }
    inputs
}

fn document_input(origin: Origin, value: Value) -> Input {
    let identified = identify(&value);
    match MeshDocument::from_value(value) {
        Ok(document) => {
            let namespace = document
                .meta
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE);
            let id = ResourceId::new(
                document.resource.kind_name(),
                namespace,
                &document.meta.name,
            );
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
    let kind = match value.get("kind")?.as_str()? {
        "VirtualService" => "VirtualService",
        "DestinationRule" => "DestinationRule",
        "ServiceEntry" => "ServiceEntry",
        "Gateway" => "Gateway",
        "Sidecar" => "Sidecar",
        _ => return None,
    };
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
        "AuthorizationPolicy",
        "RequestAuthentication",
        "Telemetry",
        "WasmPlugin",
        "Quota",
    ];
    matches!(err, DocumentError::UnsupportedKind { kind } if KINDS.contains(&kind.as_str()))
}

fn document_error(err: &DocumentError, reason: ErrorReason) -> FieldError {
    match err {
        DocumentError::InvalidField { field, message } => FieldError::new(reason, field, message),
        other => FieldError::new(reason, "", other.to_string()),
    }
}

/// Watches `dir` and reports a change after `quiet` passed without another
/// one (at most `max_delay` after the first), so a burst of writes (an
/// editor's save, a `cp -r`) is one reload.
#[derive(Debug)]
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
    changes: Debouncer,
}

impl DirWatcher {
    pub fn new(dir: &Path, quiet: Duration, max_delay: Duration) -> notify::Result<Self> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = event.is_ok_and(|e| !e.kind.is_access());
                if relevant {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(Self {
            _watcher: watcher,
            changes: Debouncer::new(events, quiet, max_delay),
        })
    }

    /// Waits for the next settled change; `None` when watching stopped.
    pub async fn changed(&mut self) -> Option<()> {
        self.changes.changed().await
    }
}

#[cfg(test)]
mod tests;
