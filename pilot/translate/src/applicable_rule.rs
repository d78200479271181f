//! Picks the DestinationRule that applies to a proxy for a host, and the
//! traffic policy it gives one of that host's clusters.

use weft_model::{DestinationRule, MeshSnapshot, PolicySettings, Subset, is_exported};

use super::ProxyView;

/// The destination rule for `host` if it applies to `view`: exported to
/// the proxy's namespace (`exportTo`) and, with a `workloadSelector`, only
/// for proxies in the rule's own namespace carrying every selected label
/// (Istio: selectors do not cross namespaces). A rule that does not apply
/// is as if absent: its subsets do not exist for that proxy.
pub(super) fn applicable_rule<'a>(
    snapshot: &'a MeshSnapshot,
    view: &ProxyView,
    host: &str,
) -> Option<&'a DestinationRule> {
    let rule = snapshot.destination_rules.get(host)?;
    let exported = is_exported(&rule.export_to, &rule.id.namespace, &view.namespace);
    let selected = rule.workload_selector.as_ref().is_none_or(|s| {
        view.namespace == rule.id.namespace && s.iter().all(|(k, v)| view.labels.get(k) == Some(v))
    });
    (exported && selected).then_some(rule)
}

/// The effective policy of cluster (`port`, `subset`) under `rule`.
pub(super) fn cluster_policy(
    rule: Option<&DestinationRule>,
    port: u16,
    subset: Option<&Subset>,
) -> PolicySettings {
    rule.map(|r| r.policy_for(Some(port), subset))
        .unwrap_or_default()
}
