//! The whole-mesh check of a Quota: its destination must be a service the
//! mesh knows, and its port one of that service's ports.

use std::collections::BTreeMap;

use super::assemble::{Checked, Resource};
use crate::FieldError;
use weft_model::{Quota, Service};

/// The Quotas of the mesh; one that references what the mesh does not
/// have is reported and rejected.
pub(super) fn resolve(
    quotas: &[Resource<'_, Quota>],
    services: &BTreeMap<String, Service>,
) -> Checked<Vec<Quota>> {
    let mut checked = Checked::<Vec<Quota>>::default();
    for (id, quota) in quotas {
        match unresolved(quota, services) {
            Some(problem) => checked.reject(id, vec![problem]),
            None => checked.served.push((*quota).clone()),
        }
    }
    checked
}

/// What a quota references that the mesh does not have, if anything.
fn unresolved(quota: &Quota, services: &BTreeMap<String, Service>) -> Option<FieldError> {
    let Some(service) = services.get(&quota.host) else {
        return Some(FieldError::unresolved(
            "spec.destination.host",
            format!(
                "no service {} in the mesh; create it (Kubernetes Service or ServiceEntry) or fix the host",
                quota.host
            ),
        ));
    };
    let port = quota.port?;
    if service.port(port).is_some() {
        return None;
    }
    Some(FieldError::unresolved(
        "spec.destination.port",
        format!(
            "service {} has no port {port} (it has {:?})",
            quota.host,
            service.ports.iter().map(|p| p.number).collect::<Vec<_>>()
        ),
    ))
}
