//! The whole-mesh rule for Sidecars: one namespace-wide Sidecar (without
//! `workloadSelector`) per namespace.

use super::assemble::{Checked, Resource};
use crate::FieldError;
use weft_model::Sidecar;

/// The Sidecars of the mesh. A second namespace-wide Sidecar in a
/// namespace is reported and rejected: Istio uses one, Weft reports the
/// other.
pub(super) fn one_namespace_wide(sidecars: &[Resource<'_, Sidecar>]) -> Checked<Vec<Sidecar>> {
    let mut checked = Checked::<Vec<Sidecar>>::default();
    for (id, sidecar) in sidecars {
        match conflict(&checked.served, sidecar) {
            Some(problem) => checked.reject(id, vec![problem]),
            None => checked.served.push((*sidecar).clone()),
        }
    }
    checked
}

/// A namespace-wide `sidecar` in the same namespace as an earlier one.
fn conflict(sidecars: &[Sidecar], sidecar: &Sidecar) -> Option<FieldError> {
    if sidecar.workload_selector.is_some() {
        return None;
    }
    let other = sidecars
        .iter()
        .find(|s| s.id.namespace == sidecar.id.namespace && s.workload_selector.is_none())?;
    Some(FieldError::unresolved(
        "spec.workloadSelector",
        format!(
            "namespace {} already has a Sidecar without workloadSelector ({}); only one may apply to the whole namespace",
            sidecar.id.namespace, other.id
        ),
    ))
}
