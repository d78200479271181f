//! AuthorizationPolicies whose terms need HTTP on workloads that serve
//! TCP only: `requestPrincipals`, `to.operation` hosts, methods and paths,
//! and the `request.*` conditions can never be read from a TCP
//! connection. Istio refuses them there; so does Weft, naming each field,
//! once every mesh workload the policy selects declares only non-HTTP
//! ports (a port of unknown protocol may carry HTTP, so it does not
//! count).

use std::collections::BTreeMap;

use super::{ConfigError, Origin, unresolved};
use weft_model::{AuthorizationPolicy, Location, MeshSnapshot, Protocol, ResourceId};

/// Reports the HTTP-only terms of policies that select TCP-only
/// workloads.
pub(super) fn report_http_terms_on_tcp(
    snapshot: &MeshSnapshot,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    let root = &snapshot.mesh_config.root_namespace;
    for policy in &snapshot.authorization_policies {
        // Most policies have no HTTP-only term: no need to look at the
        // workloads they select.
        let fields = http_only_fields(policy);
        if fields.is_empty() {
            continue;
        }
        let selected: Vec<&str> = snapshot
            .services
            .values()
            .filter(|s| s.location == Location::MeshInternal)
            .filter(|s| {
                s.endpoints
                    .iter()
                    .any(|e| policy.applies_to(root, &s.namespace, &e.labels))
            })
            .map(|s| {
                let tcp_only = s
                    .ports
                    .iter()
                    .all(|p| !p.protocol.is_http() && p.protocol != Protocol::Unknown);
                tcp_only.then_some(s.hostname.as_str())
            })
            .collect::<Option<Vec<&str>>>()
            .unwrap_or_default();
        if selected.is_empty() {
            continue;
        }
        for field in fields {
            errors.push(unresolved(
                origins,
                &policy.id,
                field,
                format!(
                    "is HTTP only, and every workload the policy selects serves TCP only ({}); the term can never match there: remove it, or declare the port's protocol as HTTP",
                    selected.join(", ")
                ),
            ));
        }
    }
}

/// The paths of the policy's terms that need HTTP.
fn http_only_fields(policy: &AuthorizationPolicy) -> Vec<String> {
    let mut fields = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        for (j, from) in rule.from.iter().enumerate() {
            let at = format!("spec.rules[{i}].from[{j}].source");
            if !from.request_principals.any.is_empty() {
                fields.push(format!("{at}.requestPrincipals"));
            }
            if !from.request_principals.not.is_empty() {
                fields.push(format!("{at}.notRequestPrincipals"));
            }
        }
        for (j, to) in rule.to.iter().enumerate() {
            let at = format!("spec.rules[{i}].to[{j}].operation");
            for (name, set) in [
                ("hosts", !to.hosts.any.is_empty()),
                ("notHosts", !to.hosts.not.is_empty()),
                ("methods", !to.methods.any.is_empty()),
                ("notMethods", !to.methods.not.is_empty()),
                ("paths", !to.paths.any.is_empty()),
                ("notPaths", !to.paths.not.is_empty()),
            ] {
                if set {
                    fields.push(format!("{at}.{name}"));
                }
            }
        }
        for (k, condition) in rule.when.iter().enumerate() {
            if condition.key.is_http_only() {
                fields.push(format!("spec.rules[{i}].when[{k}].key"));
            }
        }
    }
    fields
}
