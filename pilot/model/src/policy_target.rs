//! [`PolicyTarget`]: which workloads a security policy (AuthorizationPolicy,
//! RequestAuthentication) applies to, by Istio's rules.

use std::collections::BTreeMap;

use super::GATEWAY_NAME_LABEL;

/// `selector`, or `targetRefs` naming Kubernetes Gateways.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyTarget {
    /// `selector.matchLabels`; `None`: every workload of the namespace
    /// (of the mesh in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    /// `targetRefs` (and `targetRef`): Gateways of the policy's own
    /// namespace, by name. When set, the selector is unset.
    pub gateways: Vec<String>,
}

impl PolicyTarget {
    /// Whether a policy of `policy_namespace` with this target applies to
    /// a workload of `namespace` with `labels`: a Gateway target to that
    /// Gateway's pods in its own namespace only (as Istio, never
    /// mesh-wide); otherwise the policy's namespace, or every namespace
    /// from the root namespace, narrowed by the selector.
    pub fn applies_to(
        &self,
        policy_namespace: &str,
        root_namespace: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        if !self.gateways.is_empty() {
            return policy_namespace == namespace
                && labels
                    .get(GATEWAY_NAME_LABEL)
                    .is_some_and(|name| self.gateways.contains(name));
        }
        (policy_namespace == namespace || policy_namespace == root_namespace)
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }

    /// Whether it names workloads (a selector or Gateways) rather than a
    /// whole namespace.
    pub fn is_workload_scoped(&self) -> bool {
        self.selector.is_some() || !self.gateways.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_ROOT_NAMESPACE as ROOT;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_namespaces_and_the_root_namespace() {
        let app = labels(&[("app", "ratings")]);
        let all = PolicyTarget::default();
        let ratings = PolicyTarget {
            selector: Some(labels(&[("app", "ratings")])),
            ..Default::default()
        };
        let reviews = PolicyTarget {
            selector: Some(labels(&[("app", "reviews")])),
            ..Default::default()
        };
        assert!(all.applies_to("default", ROOT, "default", &app));
        assert!(ratings.applies_to("default", ROOT, "default", &app));
        assert!(!reviews.applies_to("default", ROOT, "default", &app));
        assert!(!all.applies_to("other", ROOT, "default", &app));
        assert!(all.applies_to(ROOT, ROOT, "default", &app));
        assert!(ratings.applies_to(ROOT, ROOT, "default", &app));
        assert!(!reviews.applies_to(ROOT, ROOT, "default", &app));
    }

    #[test]
    fn gateway_targets_apply_to_their_gateway_in_their_namespace_only() {
        let target = PolicyTarget {
            gateways: vec!["ingress".into()],
            ..Default::default()
        };
        let ingress = labels(&[(GATEWAY_NAME_LABEL, "ingress")]);
        assert!(target.applies_to("edge", ROOT, "edge", &ingress));
        assert!(!target.applies_to("edge", ROOT, "other", &ingress));
        assert!(!target.applies_to(ROOT, ROOT, "edge", &ingress));
        let other = labels(&[(GATEWAY_NAME_LABEL, "egress")]);
        assert!(!target.applies_to("edge", ROOT, "edge", &other));
        assert!(!target.applies_to("edge", ROOT, "edge", &BTreeMap::new()));
    }
}
