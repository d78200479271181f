//! The whole-mesh check of a Quota: its destination must be a service the
//! mesh knows, and its port one of that service's ports.

use std::collections::BTreeMap;

use crate::{ErrorReason, FieldError};
use weft_model::{Quota, Service};

/// What a quota references that the mesh does not have, if anything.
pub(super) fn unresolved(
    quota: &Quota,
    services: &BTreeMap<String, Service>,
) -> Option<FieldError> {
    let Some(service) = services.get(&quota.host) else {
        return Some(FieldError::new(
            ErrorReason::UnresolvedReference,
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
    Some(FieldError::new(
        ErrorReason::UnresolvedReference,
        "spec.destination.port",
        format!(
            "service {} has no port {port} (it has {:?})",
            quota.host,
            service.ports.iter().map(|p| p.number).collect::<Vec<_>>()
        ),
    ))
}
