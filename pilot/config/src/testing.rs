//! Test fixtures: meshes written as the YAML a user would write.

use crate::documents::parse_documents;
use crate::{ConfigStore, Input};
use weft_model::MeshSnapshot;

/// The inputs of one YAML text, as if read from `mesh.yaml`.
pub fn mk_inputs(yaml: &str) -> Vec<Input> {
    parse_documents("mesh.yaml", yaml)
}

/// A snapshot of a mesh that must be free of errors.
pub fn mk_snapshot(yaml: &str) -> MeshSnapshot {
    let applied = ConfigStore::default().apply(mk_inputs(yaml));
    assert!(
        applied.errors.is_empty(),
        "unexpected errors: {:#?}",
        applied.errors
    );
    (*applied.snapshot).clone()
}

/// A ServiceEntry for `name` in `default` on port 9080 with one endpoint
/// per version, at 10.0.0.<n>.
pub fn mk_service_entry(name: &str, versions: &[&str]) -> String {
    let endpoints: String = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "  - {{address: 10.0.0.{}, labels: {{version: {v}}}}}\n",
                i + 1
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}.default.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
{endpoints}"
    )
}

/// A DestinationRule for `name` with a subset per version.
pub fn mk_destination_rule(name: &str, versions: &[&str]) -> String {
    let subsets: String = versions
        .iter()
        .map(|v| format!("  - {{name: {v}, labels: {{version: {v}}}}}\n"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: default}}
spec:
  host: {name}
  subsets:
{subsets}"
    )
}

/// A VirtualService for `name` whose `http` is the given YAML block.
pub fn mk_virtual_service(name: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}]
  http:
{http}"
    )
}

/// Joins documents into one multi-document text.
pub fn docs(parts: &[String]) -> String {
    parts.join("---\n")
}
