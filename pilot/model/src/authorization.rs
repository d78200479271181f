//! Who may call a workload and how (Istio's AuthorizationPolicy),
//! validated, and which policies apply to one workload.
//!
//! A policy applies to a workload when it is in the workload's namespace
//! and has no `selector` or a selector its labels match, or when it is in
//! the root namespace (mesh-wide) with no selector or a matching one. The
//! workload then decides each request as Istio does: AUDIT policies only
//! log; a DENY policy that matches denies; if any ALLOW policy applies,
//! a request must match one of them, else it is denied; with no ALLOW
//! policy it is allowed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::ResourceId;

/// One AuthorizationPolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorizationPolicy {
    pub id: ResourceId,
    /// `None`: every workload of the namespace (of the mesh in the root
    /// namespace).
    pub selector: Option<BTreeMap<String, String>>,
    pub action: AuthorizationAction,
    /// A request matching any rule matches the policy; none: nothing
    /// matches (an ALLOW policy without rules denies everything).
    pub rules: Vec<AuthorizationRule>,
}

impl AuthorizationPolicy {
    /// Whether the policy applies to a workload of `namespace` with
    /// `labels` (policies of `root_namespace` apply mesh-wide).
    pub fn applies_to(
        &self,
        root_namespace: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        (self.id.namespace == namespace || self.id.namespace == root_namespace)
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// The policies of `policies` that apply to a workload of `namespace` with
/// `labels`, in the snapshot's order (namespace, name).
pub fn policies_for<'a>(
    policies: &'a [AuthorizationPolicy],
    root_namespace: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a AuthorizationPolicy> {
    policies
        .iter()
        .filter(|p| p.applies_to(root_namespace, namespace, labels))
        .collect()
}

/// `action`; CUSTOM is refused by validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthorizationAction {
    #[default]
    Allow,
    Deny,
    Audit,
}

/// One rule: every part given must match (`from`: any source; `to`: any
/// operation; `when`: every condition).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthorizationRule {
    pub from: Vec<SourceMatch>,
    pub to: Vec<OperationMatch>,
    pub when: Vec<ConditionMatch>,
}

/// Values a field must match (any of `any`, when not empty) and must not
/// match (none of `not`).
#[derive(Clone, Debug, PartialEq)]
pub struct Matches<T> {
    pub any: Vec<T>,
    pub not: Vec<T>,
}

impl<T> Default for Matches<T> {
    fn default() -> Self {
        Self {
            any: Vec::new(),
            not: Vec::new(),
        }
    }
}

impl<T> Matches<T> {
    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.not.is_empty()
    }
}

/// An Istio string match: exact, `prefix*`, `*suffix`, or `*` (any
/// value, present).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Any,
}

impl Pattern {
    /// Istio's syntax: one `*`, at the start or the end, or alone.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text == "*" {
            return Ok(Pattern::Any);
        }
        let pattern = if let Some(rest) = text.strip_suffix('*') {
            Pattern::Prefix(rest.to_string())
        } else if let Some(rest) = text.strip_prefix('*') {
            Pattern::Suffix(rest.to_string())
        } else {
            Pattern::Exact(text.to_string())
        };
        let inner = match &pattern {
            Pattern::Exact(s) | Pattern::Prefix(s) | Pattern::Suffix(s) => s,
            Pattern::Any => "",
        };
        if inner.contains('*') {
            return Err(format!(
                "{text:?}: `*` may only be the first or the last character, or the whole value"
            ));
        }
        if text.is_empty() {
            return Err("an empty value matches nothing; remove it".to_string());
        }
        Ok(pattern)
    }
}

/// An address block: an IP or `IP/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix_len: u32,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0-{max}"))?,
        };
        Ok(Cidr {
            address,
            prefix_len,
        })
    }
}

/// `from[].source`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceMatch {
    /// Peer identities without `spiffe://` (Istio's form).
    pub principals: Matches<Pattern>,
    pub namespaces: Matches<Pattern>,
    pub ip_blocks: Matches<Cidr>,
    pub remote_ip_blocks: Matches<Cidr>,
}

/// `to[].operation`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperationMatch {
    pub hosts: Matches<Pattern>,
    pub ports: Matches<u16>,
    pub methods: Matches<Pattern>,
    pub paths: Matches<Pattern>,
}

/// `when[]`: one attribute against values.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionMatch {
    pub key: ConditionKey,
    pub values: Matches<String>,
}

/// The attributes `when` may test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionKey {
    /// `request.headers[NAME]`
    RequestHeader(String),
    /// `source.ip`: the connection's peer address.
    SourceIp,
    /// `remote.ip`: the original client (`X-Forwarded-For`).
    RemoteIp,
    /// `source.namespace`, from the peer's mTLS identity.
    SourceNamespace,
    /// `source.principal`, the peer's mTLS identity.
    SourcePrincipal,
    /// `destination.ip`
    DestinationIp,
    /// `destination.port`
    DestinationPort,
    /// `connection.sni`
    ConnectionSni,
}

impl ConditionKey {
    /// Istio's key syntax; `Err(true)` for keys Istio has that Weft does
    /// not translate (`request.auth.*`, needing RequestAuthentication),
    /// `Err(false)` for keys that do not exist.
    pub fn parse(key: &str) -> Result<ConditionKey, bool> {
        if let Some(name) = key
            .strip_prefix("request.headers[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return if name.is_empty() {
                Err(false)
            } else {
                Ok(ConditionKey::RequestHeader(name.to_ascii_lowercase()))
            };
        }
        match key {
            "source.ip" => Ok(ConditionKey::SourceIp),
            "remote.ip" => Ok(ConditionKey::RemoteIp),
            "source.namespace" => Ok(ConditionKey::SourceNamespace),
            "source.principal" => Ok(ConditionKey::SourcePrincipal),
            "destination.ip" => Ok(ConditionKey::DestinationIp),
            "destination.port" => Ok(ConditionKey::DestinationPort),
            "connection.sni" => Ok(ConditionKey::ConnectionSni),
            k if k.starts_with("request.auth.") || k == "experimental.envoy.filters" => Err(true),
            _ => Err(false),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::DEFAULT_ROOT_NAMESPACE as ROOT_NAMESPACE;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn mk_policy(namespace: &str, selector: Option<&[(&str, &str)]>) -> AuthorizationPolicy {
        AuthorizationPolicy {
            id: ResourceId::new(crate::Kind::AuthorizationPolicy, namespace, "p"),
            selector: selector.map(labels),
            action: AuthorizationAction::Allow,
            rules: Vec::new(),
        }
    }

    #[test]
    fn policies_apply_by_namespace_selector_and_root_namespace() {
        let app = labels(&[("app", "ratings")]);
        assert!(mk_policy("default", None).applies_to(ROOT_NAMESPACE, "default", &app));
        assert!(
            mk_policy("default", Some(&[("app", "ratings")])).applies_to(
                ROOT_NAMESPACE,
                "default",
                &app
            )
        );
        assert!(
            !mk_policy("default", Some(&[("app", "reviews")])).applies_to(
                ROOT_NAMESPACE,
                "default",
                &app
            )
        );
        assert!(!mk_policy("other", None).applies_to(ROOT_NAMESPACE, "default", &app));
        assert!(mk_policy(ROOT_NAMESPACE, None).applies_to(ROOT_NAMESPACE, "default", &app));
        assert!(
            mk_policy(ROOT_NAMESPACE, Some(&[("app", "ratings")])).applies_to(
                ROOT_NAMESPACE,
                "default",
                &app
            )
        );
    }

    #[test]
    fn patterns_follow_istio() {
        assert_eq!(Pattern::parse("*").unwrap(), Pattern::Any);
        assert_eq!(
            Pattern::parse("/admin*").unwrap(),
            Pattern::Prefix("/admin".into())
        );
        assert_eq!(
            Pattern::parse("*.example.com").unwrap(),
            Pattern::Suffix(".example.com".into())
        );
        assert_eq!(Pattern::parse("GET").unwrap(), Pattern::Exact("GET".into()));
        assert!(Pattern::parse("/a*b").is_err());
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn cidrs_and_keys_parse() {
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().prefix_len, 8);
        assert_eq!(Cidr::parse("10.1.2.3").unwrap().prefix_len, 32);
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten").is_err());
        assert_eq!(
            ConditionKey::parse("request.headers[X-Token]"),
            Ok(ConditionKey::RequestHeader("x-token".into()))
        );
        assert_eq!(ConditionKey::parse("request.auth.claims[iss]"), Err(true));
        assert_eq!(ConditionKey::parse("source.nonsense"), Err(false));
    }
}
