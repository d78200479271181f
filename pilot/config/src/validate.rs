//! Whole-mesh validation: what `weft validate`, the validating webhook and
//! standalone's reloads all check, by one code path.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use weft_model::{MeshConfig, MeshSnapshot, ResourceId, ResourceKind};

use crate::analyze::{Cluster, Sorted, sort_documents};
use crate::{
    ConfigError, ConfigStore, Document, ErrorReason, FieldError, Input, Origin, Verdict, verdict,
};

/// What validating some inputs found.
#[derive(Debug)]
pub struct Validation {
    /// The documents that name a resource.
    pub resources: usize,
    /// Every error, as standalone would log it.
    pub errors: Vec<ConfigError>,
    /// The mesh the inputs make (without what failed).
    pub snapshot: Arc<MeshSnapshot>,
}

impl Validation {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Applies `inputs` to an empty store, as one mesh with Istio's default
/// mesh config: conversion errors and whole-mesh checks (subsets,
/// duplicate hosts, merging, Telemetry providers) alike.
pub fn validate_inputs(inputs: Vec<Input>) -> Validation {
    validate_inputs_with(inputs, Arc::new(MeshConfig::default()))
}

/// [`validate_inputs`] with `mesh_config` (the providers Telemetry
/// resources may name, the root namespace).
pub fn validate_inputs_with(inputs: Vec<Input>, mesh_config: Arc<MeshConfig>) -> Validation {
    let resources = inputs
        .iter()
        .filter(|input| matches!(input, Input::Resource { .. }))
        .count();
    let mut store = ConfigStore::default();
    store.set_mesh_config(mesh_config);
    let applied = store.apply(inputs);
    Validation {
        resources,
        errors: applied.errors,
        snapshot: applied.snapshot,
    }
}

/// What `weft validate` makes of some documents: [`validate_inputs_with`]
/// on the mesh resources, each error judged by [`verdict()`] (an error, or
/// a warning when a later apply may fix it), documents of kinds Weft does
/// not own skipped and counted, and Services' port names checked (the
/// analysis's `WA0301`, as a warning).
#[derive(Debug)]
pub struct DocumentValidation {
    pub resources: usize,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
    /// Documents of other kinds, by kind.
    pub skipped: BTreeMap<String, usize>,
}

/// Validates `documents` with `mesh_config` (see [`DocumentValidation`]).
pub fn validate_documents(
    documents: Vec<Document>,
    mesh_config: Arc<MeshConfig>,
) -> DocumentValidation {
    let Sorted {
        inputs,
        objects,
        cluster,
    } = sort_documents(documents);
    let validation = validate_inputs_with(inputs, mesh_config);
    let mut errors = Vec::new();
    let mut warnings = port_name_warnings(&cluster);
    let null = Value::Null;
    for error in validation.errors {
        let object = error
            .resource
            .as_ref()
            .and_then(|id| objects.get(id))
            .unwrap_or(&null);
        let namespace = error
            .resource
            .as_ref()
            .map(|id| id.namespace.as_str())
            .unwrap_or_default();
        match verdict(&error, object, namespace, &validation.snapshot) {
            Verdict::Deny => errors.push(error),
            Verdict::Warn => warnings.push(error),
        }
    }
    // Services are read for their ports only.
    let mut skipped = cluster.skipped;
    for (kind, count) in [
        ("Namespace", cluster.namespaces.len()),
        ("Service", cluster.services.len()),
        ("Pod", cluster.pods.iter().filter(|p| !p.template).count()),
    ] {
        if count > 0 {
            *skipped.entry(kind.to_string()).or_default() += count;
        }
    }
    for workload in &cluster.workloads {
        *skipped.entry(workload.kind.clone()).or_default() += 1;
    }
    DocumentValidation {
        resources: validation.resources,
        errors,
        warnings,
        skipped,
    }
}

fn port_name_warnings(cluster: &Cluster) -> Vec<ConfigError> {
    crate::analyze::port_name_findings(cluster)
        .into_iter()
        .map(|finding| ConfigError {
            origin: Origin {
                source: finding
                    .origin
                    .clone()
                    .unwrap_or_else(|| "kubernetes".to_string()),
                document: None,
            },
            resource: Some(ResourceId::new(
                ResourceKind::Service,
                finding.resource.namespace.clone(),
                finding.resource.name.clone(),
            )),
            error: FieldError::new(
                ErrorReason::Unsupported,
                finding.field,
                format!("{}; {} ({})", finding.message, finding.fix, finding.code),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use weft_model::MeshConfig;

    use crate::{split_documents, validate_documents};

    const APP: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}]}
";

    #[test]
    fn references_a_later_apply_may_fix_are_warnings_and_other_kinds_skipped() {
        let checked = validate_documents(
            split_documents("app.yaml", APP),
            Arc::new(MeshConfig::default()),
        );
        assert!(checked.errors.is_empty(), "{:?}", checked.errors);
        let fields: Vec<&str> = checked
            .warnings
            .iter()
            .map(|w| w.error.field.as_str())
            .collect();
        assert_eq!(fields, ["spec.http[0].route[0].destination.subset"]);
        assert_eq!(checked.resources, 1);
        let skipped: Vec<(&str, usize)> = checked
            .skipped
            .iter()
            .map(|(k, n)| (k.as_str(), *n))
            .collect();
        assert_eq!(skipped, [("ConfigMap", 1), ("Service", 1)]);
    }

    #[test]
    fn a_subset_its_destination_rule_lacks_is_an_error() {
        let text = format!(
            "{APP}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec: {{host: reviews, subsets: [{{name: v2, labels: {{version: v2}}}}]}}
"
        );
        let checked = validate_documents(
            split_documents("app.yaml", &text),
            Arc::new(MeshConfig::default()),
        );
        let errors: Vec<&str> = checked
            .errors
            .iter()
            .map(|e| e.error.field.as_str())
            .collect();
        assert_eq!(errors, ["spec.http[0].route[0].destination.subset"]);
    }

    #[test]
    fn a_service_port_without_protocol_is_a_warning() {
        let text = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: web, port: 80}]}
";
        let checked = validate_documents(
            split_documents("s.yaml", text),
            Arc::new(MeshConfig::default()),
        );
        assert_eq!(checked.warnings.len(), 1);
        assert_eq!(
            checked.warnings[0].to_string(),
            "s.yaml: document 0: Service shop/web: spec.ports[0].name: port 80 is named \"web\", which does not give its protocol, and has no appProtocol; its traffic is treated as opaque TCP; name the port <protocol>[-<suffix>] (e.g. http-web, grpc-web, tcp-web) or set appProtocol: http (WA0301)"
        );
    }
}
