//! CUSTOM AuthorizationPolicies against the mesh config: the provider each
//! names must be an external authorizer (`envoyExtAuthzHttp` or
//! `envoyExtAuthzGrpc`) whose service and port the registry has. As in
//! Istio, a policy whose provider is missing or wrong still applies, and
//! fails closed: its rules deny (the translation's business); the error
//! says why.

use std::collections::BTreeMap;

use super::{ConfigError, Origin, unresolved};
use weft_model::{AuthorizationAction, MeshSnapshot, ResourceId};

/// Reports the CUSTOM policies whose provider cannot be asked.
pub(super) fn report_unusable_providers(
    snapshot: &MeshSnapshot,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    let custom = snapshot
        .authorization_policies
        .iter()
        .filter(|p| p.action == AuthorizationAction::Custom);
    for policy in custom {
        let Some(name) = &policy.provider else {
            continue;
        };
        if let Err(message) = snapshot.ext_authz(name) {
            errors.push(unresolved(
                origins,
                &policy.id,
                "spec.provider.name",
                format!("{message}; until it is, the policy's rules deny the requests they match"),
            ));
        }
    }
}
