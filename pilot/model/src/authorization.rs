//! Who may call a workload and how (Istio's AuthorizationPolicy),
//! validated, and which policies apply to one workload.
//!
//! A policy applies to the workloads its [`PolicyTarget`] names. The
//! workload then decides each request as Istio does: AUDIT policies only
//! log; a DENY policy that matches denies; if any ALLOW policy applies,
//! a request must match one of them, else it is denied; with no ALLOW
//! policy it is allowed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{PolicyTarget, ResourceId};

/// One AuthorizationPolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorizationPolicy {
    pub id: ResourceId,
    pub target: PolicyTarget,
    pub action: AuthorizationAction,
    /// `provider.name`: the mesh config's external authorizer a CUSTOM
    /// policy asks (set exactly when the action is CUSTOM).
    pub provider: Option<String>,
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
        self.target
            .applies_to(&self.id.namespace, root_namespace, namespace, labels)
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

/// `action`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthorizationAction {
    #[default]
    Allow,
    Deny,
    Audit,
    /// Matching requests are decided by the external authorizer
    /// `provider` names.
    Custom,
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

    /// Whether `ip` is in the block (never across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(block), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix_len).unwrap_or(0);
                u32::from(block) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(block), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix_len).unwrap_or(0);
                u128::from(block) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
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
    /// End-user identities, `ISS/SUB` of a verified JWT, as written
    /// (checked with [`Pattern::parse`]; split at the last `/` when
    /// translated).
    pub request_principals: Matches<String>,
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
    /// `request.auth.principal`: `ISS/SUB` of the verified JWT.
    RequestPrincipal,
    /// `request.auth.audiences`: its `aud`.
    RequestAudiences,
    /// `request.auth.presenter`: its `azp`.
    RequestPresenter,
    /// `request.auth.claims[NAME]` (nested: `[a][b]`): a claim of the
    /// verified JWT, one value of a list claim matching.
    RequestClaim(Vec<String>),
}

impl ConditionKey {
    /// Istio's key syntax; `Err(true)` for keys Istio has that Weft does
    /// not translate (`experimental.envoy.filters.*`), `Err(false)` for
    /// keys that do not exist.
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
            "request.auth.principal" => Ok(ConditionKey::RequestPrincipal),
            "request.auth.audiences" => Ok(ConditionKey::RequestAudiences),
            "request.auth.presenter" => Ok(ConditionKey::RequestPresenter),
            k if k.starts_with("request.auth.claims") => {
                claim_path(&k["request.auth.claims".len()..])
                    .map(ConditionKey::RequestClaim)
                    .ok_or(false)
            }
            k if k.starts_with("experimental.envoy.filters.") => Err(true),
            _ => Err(false),
        }
    }
}

impl ConditionKey {
    /// Whether the key reads the request (headers, the verified JWT), so
    /// that it means nothing on a TCP port.
    pub fn is_http_only(&self) -> bool {
        matches!(
            self,
            ConditionKey::RequestHeader(_)
                | ConditionKey::RequestPrincipal
                | ConditionKey::RequestAudiences
                | ConditionKey::RequestPresenter
                | ConditionKey::RequestClaim(_)
        )
    }
}

/// The claim names of `[a][b]...` (Istio's nested form) or of `[a.b]`
/// (one name, dots and all); `None` when it is neither or a name is empty.
fn claim_path(brackets: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = brackets;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let name = &inner[..end];
        if name.is_empty() || name.contains('[') {
            return one_claim(brackets);
        }
        names.push(name.to_string());
        rest = &inner[end + 1..];
    }
    if names.is_empty() { None } else { Some(names) }
}

/// `[name]`, whatever the name holds.
fn one_claim(brackets: &str) -> Option<Vec<String>> {
    let name = brackets.strip_prefix('[')?.strip_suffix(']')?;
    (!name.is_empty()).then(|| vec![name.to_string()])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        let link_local = Cidr::parse("169.254.0.0/16").unwrap();
        assert!(link_local.contains("169.254.169.254".parse().unwrap()));
        assert!(!link_local.contains("10.0.0.1".parse().unwrap()));
        assert!(!link_local.contains("fe80::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("fe80::/10")
                .unwrap()
                .contains("fe80::1".parse().unwrap())
        );
        assert_eq!(
            ConditionKey::parse("request.headers[X-Token]"),
            Ok(ConditionKey::RequestHeader("x-token".into()))
        );
        assert_eq!(
            ConditionKey::parse("request.auth.claims[iss]"),
            Ok(ConditionKey::RequestClaim(vec!["iss".into()]))
        );
        assert_eq!(
            ConditionKey::parse("request.auth.claims[realm][roles]"),
            Ok(ConditionKey::RequestClaim(vec![
                "realm".into(),
                "roles".into()
            ]))
        );
        assert_eq!(
            ConditionKey::parse("request.auth.claims[a.b]"),
            Ok(ConditionKey::RequestClaim(vec!["a.b".into()]))
        );
        assert_eq!(ConditionKey::parse("request.auth.claims[]"), Err(false));
        assert_eq!(ConditionKey::parse("request.auth.claims"), Err(false));
        assert_eq!(ConditionKey::parse("request.auth.claims[a]x"), Err(false));
        assert_eq!(
            ConditionKey::parse("request.auth.principal"),
            Ok(ConditionKey::RequestPrincipal)
        );
        assert_eq!(ConditionKey::parse("request.auth.nonsense"), Err(false));
        assert_eq!(ConditionKey::parse("source.nonsense"), Err(false));
    }
}
