//! The whole-mesh checks of Telemetry: every provider it names is one the
//! mesh config defines, of a kind its rule can use (metrics: `prometheus`;
//! tracing: `zipkin`, `opentelemetry`; access logs: `envoyFileAccessLog`,
//! `envoyOtelAls`), and a namespace has one Telemetry for the whole
//! namespace (without `selector` or `targetRefs`).

use super::assemble::{Checked, Resource};
use crate::FieldError;
use crate::mesh_config::Signal;
use weft_model::{MeshConfig, Telemetry};

/// The Telemetries of the mesh, in namespace and name order; one that
/// names a provider `mesh` does not have, or a second namespace-wide one
/// in a namespace, is reported and rejected (the rest of the mesh is
/// served as usual).
pub(super) fn resolve(
    telemetries: &[Resource<'_, Telemetry>],
    mesh: &MeshConfig,
) -> Checked<Vec<Telemetry>> {
    let mut checked = Checked::<Vec<Telemetry>>::default();
    for (id, telemetry) in telemetries {
        let mut problems = unresolved_providers(telemetry, mesh);
        problems.extend(conflict(&checked.served, telemetry));
        if problems.is_empty() {
            checked.served.push((*telemetry).clone());
        } else {
            checked.reject(id, problems);
        }
    }
    checked
}

/// Every provider name `telemetry` uses that `mesh` does not define, or
/// defines as a provider of another signal.
fn unresolved_providers(telemetry: &Telemetry, mesh: &MeshConfig) -> Vec<FieldError> {
    let rules = telemetry
        .metrics
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("spec.metrics[{i}]"), Signal::Metrics, &r.providers))
        .chain(
            telemetry
                .tracing
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("spec.tracing[{i}]"), Signal::Tracing, &r.providers)),
        )
        .chain(telemetry.access_logging.iter().enumerate().map(|(i, r)| {
            (
                format!("spec.accessLogging[{i}]"),
                Signal::AccessLogging,
                &r.providers,
            )
        }));
    let mut problems = Vec::new();
    for (path, signal, providers) in rules {
        for (j, name) in providers.iter().enumerate() {
            if let Some(problem) = signal.refuses(mesh, name) {
                problems.push(FieldError::unresolved(
                    format!("{path}.providers[{j}].name"),
                    problem,
                ));
            }
        }
    }
    problems
}

/// A namespace-wide `telemetry` in the same namespace as an earlier one.
fn conflict(served: &[Telemetry], telemetry: &Telemetry) -> Option<FieldError> {
    if telemetry.is_workload_scoped() {
        return None;
    }
    let other = served
        .iter()
        .find(|t| t.id.namespace == telemetry.id.namespace && !t.is_workload_scoped())?;
    Some(FieldError::unresolved(
        "spec.selector",
        format!(
            "namespace {} already has a Telemetry without selector or targetRefs ({}); only one may apply to the whole namespace",
            telemetry.id.namespace, other.id
        ),
    ))
}
