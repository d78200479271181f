//! Whole-mesh rules for hosts: a host is declared by one ServiceEntry, and
//! has one DestinationRule. In both cases the first resource (in
//! namespace/name order) wins and the later one is reported.

use std::collections::BTreeMap;

use super::assemble::{Checked, Resource};
use crate::FieldError;
use weft_model::{DestinationRule, Service};

/// The services of the mesh by hostname, from each ServiceEntry's list (one
/// service per host). A host declared again is reported and left out; the
/// other hosts of its ServiceEntry are served.
pub(super) fn declare_services(
    entries: &[Resource<'_, [Service]>],
) -> Checked<BTreeMap<String, Service>> {
    let mut checked = Checked::<BTreeMap<String, Service>>::default();
    for (id, list) in entries {
        for (i, service) in list.iter().enumerate() {
            if let Some(other) = checked.served.get(&service.hostname) {
                let message = format!(
                    "host {} is already declared by {}",
                    service.hostname, other.origin
                );
                checked.errors.push((
                    (*id).clone(),
                    FieldError::unresolved(format!("spec.hosts[{i}]"), message),
                ));
            } else {
                checked
                    .served
                    .insert(service.hostname.clone(), service.clone());
            }
        }
    }
    checked
}

/// The DestinationRules of the mesh by host. A second rule for a host is
/// reported and not served; it is not rejected (it stays the resource's
/// last good version).
pub(super) fn one_rule_per_host(
    rules: &[Resource<'_, DestinationRule>],
) -> Checked<BTreeMap<String, DestinationRule>> {
    let mut checked = Checked::<BTreeMap<String, DestinationRule>>::default();
    for (id, rule) in rules {
        if let Some(other) = checked.served.get(&rule.host) {
            let message = format!(
                "host {} already has {}; one DestinationRule applies per host",
                rule.host, other.id
            );
            checked
                .errors
                .push(((*id).clone(), FieldError::unresolved("spec.host", message)));
        } else {
            checked.served.insert(rule.host.clone(), (*rule).clone());
        }
    }
    checked
}
