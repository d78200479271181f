//! `weft analyze`: checks over a whole mesh and the Kubernetes objects
//! around it (Istio's `istioctl analyze`, for Weft). Pure: the binary reads
//! files or lists the cluster's objects, and hands them here as
//! [`Document`]s.
//!
//! ```text
//! documents ──▶ mesh kinds: document_input ─┐
//!           └─▶ Namespace, Service, Pod, workloads: Cluster (cluster.rs)
//!                                           ▼
//!   validate_inputs_with (mesh inputs + the Services as model services)
//!     errors ─▶ findings by reason and field (validation.rs)
//!     snapshot + Cluster + converted resources ─▶ one module per group:
//!       routes.rs (destinations, gateways), injection.rs (proxies),
//!       annotations.rs, ports.rs (Service ports), selectors.rs (subsets,
//!       Sidecars, AuthorizationPolicies)
//! ```
//!
//! Each finding has a stable [`Code`] (the table in [`codes`]), a
//! [`Severity`], the resource, a field path and a one-line fix. Checks that
//! need workloads run only when the documents hold pods (a file of
//! VirtualServices says nothing about them); the unknown-namespace check
//! only when they hold Namespaces.

mod annotations;
pub mod cluster;
pub mod codes;
mod injection;
mod ports;
mod routes;
mod selectors;
mod validation;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use weft_model::{MeshConfig, MeshSnapshot, ResourceId};

pub use cluster::{Cluster, kubernetes_port_protocol};
pub use codes::{Code, Severity};

use crate::{ConvertedResource, Document, Input, Origin, document_input, is_mesh_document};

/// The resource a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Resource {
    pub kind: String,
    /// Empty for cluster-scoped objects and documents too broken to name.
    pub namespace: String,
    pub name: String,
}

impl Resource {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn of(id: &ResourceId) -> Self {
        Self::new(id.kind.as_str(), &id.namespace, &id.name)
    }

    fn of_meta(meta: &cluster::Meta) -> Self {
        Self::new(&meta.kind, &meta.namespace, &meta.name)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind.is_empty(), self.namespace.is_empty()) {
            (true, _) => f.write_str("document"),
            (false, true) => write!(f, "{} {}", self.kind, self.name),
            (false, false) => write!(f, "{} {}/{}", self.kind, self.namespace, self.name),
        }
    }
}

/// One thing analysis found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: Code,
    /// The check's name (Istio's, where it has the message).
    pub name: &'static str,
    /// Istio's code for the same message, if any.
    pub istio: Option<&'static str>,
    pub severity: Severity,
    pub resource: Resource,
    /// Path in the resource, e.g. `spec.http[0].route[1].destination.subset`.
    pub field: String,
    pub message: String,
    /// What to do about it, in one line.
    pub fix: String,
    /// The file and document, when it came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl Finding {
    pub fn new(
        code: Code,
        resource: Resource,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            code,
            name: code.name(),
            istio: code.istio(),
            severity: code.severity(),
            resource,
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
            origin: None,
        }
    }

    /// Where the resource came from (files only: a cluster's objects are
    /// named by the resource).
    fn at(mut self, origin: &Origin) -> Self {
        if origin.document.is_some() || origin.source != "kubernetes" {
            self.origin = Some(origin.to_string());
        }
        self
    }
}

/// `Error [WA0101] (VirtualService default/reviews) spec.http[0]...:
/// message. Fix: ... (file: document N)`, as `istioctl analyze` prints.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] ({})", self.severity, self.code, self.resource)?;
        if !self.field.is_empty() {
            write!(f, " {}:", self.field)?;
        }
        let message = self.message.trim_end_matches('.');
        write!(f, " {message}. Fix: {}", self.fix)?;
        if let Some(origin) = &self.origin {
            write!(f, " ({origin})")?;
        }
        Ok(())
    }
}

/// What an analysis found, and what it read.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Sorted: errors first, then by resource and field.
    pub findings: Vec<Finding>,
    /// Mesh resources read.
    pub resources: usize,
    /// Namespaces, Services, Pods and workloads read.
    pub kubernetes_objects: usize,
    /// Documents of other kinds, by kind.
    pub skipped: BTreeMap<String, usize>,
}

impl Analysis {
    /// Whether some finding is at least as bad as `threshold`.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity <= threshold)
    }
}

/// A mesh resource as converted, with where it came from.
struct Converted<'a> {
    origin: &'a Origin,
    id: &'a ResourceId,
    resource: &'a ConvertedResource,
}

/// What every check reads.
struct Context<'a> {
    snapshot: &'a MeshSnapshot,
    cluster: &'a Cluster,
    resources: Vec<Converted<'a>>,
    root_namespace: &'a str,
}

impl Context<'_> {
    /// Whether the analysis knows the workloads (it read pods).
    fn knows_workloads(&self) -> bool {
        !self.cluster.pods.is_empty()
    }
}

/// Documents sorted: the mesh resources as inputs (with their JSON, by
/// resource), the Kubernetes objects read into a [`Cluster`].
pub(crate) struct Sorted {
    pub(crate) inputs: Vec<Input>,
    pub(crate) objects: BTreeMap<ResourceId, serde_json::Value>,
    pub(crate) cluster: Cluster,
}

pub(crate) fn sort_documents(documents: Vec<Document>) -> Sorted {
    let mut sorted = Sorted {
        inputs: Vec::new(),
        objects: BTreeMap::new(),
        cluster: Cluster::default(),
    };
    for document in documents {
        match document.value {
            Ok(value) if is_mesh_document(&value) => {
                let input = document_input(document.origin, value.clone());
                if let Input::Resource { id, .. } = &input {
                    sorted.objects.entry(id.clone()).or_insert(value);
                }
                sorted.inputs.push(input);
            }
            Ok(value) => sorted.cluster.add(&document.origin, &value),
            Err(error) => sorted.inputs.push(Input::Broken {
                origin: document.origin,
                error,
            }),
        }
    }
    sorted
}

/// Analyses `documents` (mesh resources and the Kubernetes objects around
/// them) as one mesh with `mesh_config`.
pub fn analyze(documents: Vec<Document>, mesh_config: Arc<MeshConfig>) -> Analysis {
    let mut findings = Vec::new();
    let Sorted {
        mut inputs,
        cluster,
        ..
    } = sort_documents(documents);
    let resources = inputs
        .iter()
        .filter(|input| matches!(input, Input::Resource { .. }))
        .count();
    let mesh_inputs = inputs.clone();
    inputs.extend(cluster.service_inputs());
    let validation = crate::validate_inputs_with(inputs, mesh_config.clone());
    findings.extend(validation::findings(&validation.errors));
    let context = Context {
        snapshot: &validation.snapshot,
        cluster: &cluster,
        resources: mesh_inputs
            .iter()
            .filter_map(|input| match input {
                Input::Resource {
                    origin,
                    id,
                    result: Ok(resource),
                } => Some(Converted {
                    origin,
                    id,
                    resource,
                }),
                _ => None,
            })
            .collect(),
        root_namespace: &mesh_config.root_namespace,
    };
    findings.extend(routes::check(&context));
    findings.extend(injection::check(&context));
    findings.extend(annotations::check(&context));
    findings.extend(ports::check(&context));
    findings.extend(selectors::check(&context));
    findings.sort_by(|a, b| {
        (a.severity, &a.resource, &a.field, a.code).cmp(&(
            b.severity,
            &b.resource,
            &b.field,
            b.code,
        ))
    });
    findings.dedup();
    Analysis {
        findings,
        resources,
        kubernetes_objects: cluster.namespaces.len()
            + cluster.services.len()
            + cluster.pods.iter().filter(|p| !p.template).count()
            + cluster.workloads.len(),
        skipped: cluster.skipped,
    }
}

/// The Service port-name check alone (`WA0301`), which `weft validate`
/// runs on the Services it is given.
pub fn port_name_findings(cluster: &Cluster) -> Vec<Finding> {
    ports::port_names(cluster)
}

#[cfg(test)]
mod tests;
