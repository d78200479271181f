//! Weft's Quota, validated: how many calls a destination admits per
//! window, by default and per kind of caller.
//!
//! **Precedence of overrides.** A call gets the amount of the most
//! specific override that matches its caller, ranked:
//!
//! ```text
//!   3  sourcePrincipal (with or without other fields)
//!   2  sourceNamespace + sourceLabels
//!   1  sourceLabels
//!   0  sourceNamespace
//! ```
//!
//! Among overrides of equal rank the first listed wins; when none matches,
//! the default `maxAmount` / `validDuration` applies. Every field an
//! override names must match. [`Quota::ranked`] gives the order and
//! [`Quota::select`] applies it to a [`Caller`]; translation builds Envoy
//! rate-limit descriptors that make the same choice.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ResourceId;

/// An amount of calls per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Amount {
    /// Calls admitted per window; at least 1.
    pub max_amount: u32,
    /// The window; at least one second.
    pub valid_duration: Duration,
}

/// Who counts a quota's calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum QuotaScope {
    /// Each destination instance, with Envoy's local rate limit.
    #[default]
    Local,
    /// Weft's quota service, for all instances together.
    Global,
}

/// What a Global quota does when the quota service cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FailureMode {
    /// Admit the call.
    #[default]
    Open,
    /// Refuse the call.
    Closed,
}

/// Which callers an override applies to; every field set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CallerMatch {
    pub labels: BTreeMap<String, String>,
    pub namespace: Option<String>,
    pub principal: Option<String>,
}

impl CallerMatch {
    /// The precedence rank (see the module doc): higher wins.
    pub fn rank(&self) -> u8 {
        match (&self.principal, &self.namespace, self.labels.is_empty()) {
            (Some(_), _, _) => 3,
            (None, Some(_), false) => 2,
            (None, None, false) => 1,
            (None, _, true) => 0,
        }
    }

    /// Whether `caller` is one of the callers this selects.
    pub fn matches(&self, caller: &Caller) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| caller.principal.as_ref() == Some(p))
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| caller.namespace.as_ref() == Some(n))
            && self
                .labels
                .iter()
                .all(|(k, v)| caller.labels.get(k) == Some(v))
    }
}

/// What is known of a caller: from its mTLS certificate (principal and
/// namespace) and its sidecar's `x-weft-source` header (labels).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub principal: Option<String>,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Another amount for some callers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuotaOverride {
    pub caller: CallerMatch,
    pub amount: Amount,
}

/// One Quota.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    pub id: ResourceId,
    /// The destination service, fully qualified.
    pub host: String,
    /// Only calls to this service port.
    pub port: Option<u16>,
    /// Only calls whose path starts with this.
    pub path_prefix: Option<String>,
    /// The amount when no override matches.
    pub default: Amount,
    /// In the order written.
    pub overrides: Vec<QuotaOverride>,
    pub scope: QuotaScope,
    pub failure_mode: FailureMode,
}

impl Quota {
    /// The overrides' indexes (as written) in precedence order: rank
    /// descending, then as listed.
    pub fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.overrides.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.overrides[i].caller.rank()));
        order
    }

    /// The index of the override that applies to `caller`, `None` for the
    /// default.
    pub fn select(&self, caller: &Caller) -> Option<usize> {
        self.ranked()
            .into_iter()
            .find(|&i| self.overrides[i].caller.matches(caller))
    }

    /// The amount of override `index`, or the default for `None` (or an
    /// index that does not exist).
    pub fn amount(&self, index: Option<usize>) -> Amount {
        index
            .and_then(|i| self.overrides.get(i))
            .map_or(self.default, |o| o.amount)
    }

    /// The name the quota service and metrics know this quota by:
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.id.namespace, self.id.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(n: u32, secs: u64) -> Amount {
        Amount {
            max_amount: n,
            valid_duration: Duration::from_secs(secs),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn mk_override(
        labels: &[(&str, &str)],
        namespace: Option<&str>,
        principal: Option<&str>,
        n: u32,
    ) -> QuotaOverride {
        QuotaOverride {
            caller: CallerMatch {
                labels: self::labels(labels),
                namespace: namespace.map(str::to_string),
                principal: principal.map(str::to_string),
            },
            amount: amount(n, 1),
        }
    }

    fn mk_quota(overrides: Vec<QuotaOverride>) -> Quota {
        Quota {
            id: ResourceId::new(crate::Kind::Quota, "prod", "ratings"),
            host: "ratings.prod.svc.cluster.local".to_string(),
            port: None,
            path_prefix: None,
            default: amount(100, 1),
            overrides,
            scope: QuotaScope::Local,
            failure_mode: FailureMode::Open,
        }
    }

    #[test]
    fn principal_beats_namespace_and_labels_beats_labels_beats_namespace() {
        let q = mk_quota(vec![
            mk_override(&[], Some("prod"), None, 1),
            mk_override(&[("version", "v3")], None, None, 2),
            mk_override(&[("version", "v3")], Some("prod"), None, 3),
            mk_override(&[], None, Some("spiffe://cluster.local/ns/prod/sa/r"), 4),
        ]);
        assert_eq!(q.ranked(), [3, 2, 1, 0]);
        let mut caller = Caller {
            principal: Some("spiffe://cluster.local/ns/prod/sa/r".to_string()),
            namespace: Some("prod".to_string()),
            labels: labels(&[("version", "v3")]),
        };
        assert_eq!(q.select(&caller), Some(3));
        caller.principal = None;
        assert_eq!(q.select(&caller), Some(2));
        caller.namespace = Some("dev".to_string());
        assert_eq!(q.select(&caller), Some(1));
        caller.namespace = Some("prod".to_string());
        caller.labels = labels(&[("version", "v2")]);
        assert_eq!(q.select(&caller), Some(0));
        caller.namespace = None;
        assert_eq!(q.select(&caller), None);
        assert_eq!(q.amount(None), amount(100, 1));
        assert_eq!(q.amount(Some(2)).max_amount, 3);
    }

    #[test]
    fn among_equals_the_first_listed_wins() {
        let q = mk_quota(vec![
            mk_override(&[("app", "reviews")], None, None, 1),
            mk_override(&[("version", "v3")], None, None, 2),
        ]);
        let caller = Caller {
            labels: labels(&[("app", "reviews"), ("version", "v3")]),
            ..Caller::default()
        };
        assert_eq!(q.select(&caller), Some(0));
        assert_eq!(q.key(), "prod/ratings");
    }
}
