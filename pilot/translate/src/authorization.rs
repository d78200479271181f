//! AuthorizationPolicy -> Envoy's RBAC HTTP filters on a workload's
//! inbound HTTP chains, as Istio builds them:
//!
//! ```text
//!   AUDIT policies  -> rbac (action LOG)    logs matches, decides nothing
//!   DENY policies   -> rbac (action DENY)   403 on a match
//!   ALLOW policies  -> rbac (action ALLOW)  403 unless one matches
//! ```
//!
//! in that order; a group with no policy gets no filter (with no ALLOW
//! policy everything not denied is allowed), and an ALLOW group whose
//! policies have no rules denies everything. Each rule is one Envoy
//! policy named `ns[NS]-policy[NAME]-rule[I]`: its permissions are the
//! `to` operations (any of them) and the `destination.*` / `connection.*`
//! conditions; its principals the `from` sources (any of them) and the
//! `source.*`, `remote.ip`, `request.headers` and `request.auth.*`
//! conditions. Principals and namespaces are read from the peer's mTLS
//! certificate (its SPIFFE ID), so they never match a plain-text caller;
//! request principals and `request.auth.*` from the verified JWT
//! ([`super::jwt_principals`]).

use weft_envoy_api::pb::envoy::config::core::v3::CidrRange;
use weft_envoy_api::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac, permission, principal, rbac::Action,
};
use weft_envoy_api::pb::envoy::config::route::v3::{
    HeaderMatcher, header_matcher::HeaderMatchSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use weft_envoy_api::pb::envoy::r#type::matcher::v3::{
    PathMatcher, RegexMatcher, StringMatcher, path_matcher, string_matcher::MatchPattern,
};
use weft_envoy_api::pb::google::protobuf::UInt32Value;
use weft_envoy_api::util::pack_any;

use super::jwt_principals::{claim, request_principal};

use weft_model::{
    AuthorizationAction, AuthorizationPolicy, AuthorizationRule, Cidr, ConditionKey,
    ConditionMatch, Matches, OperationMatch, Pattern, SourceMatch,
};

/// Envoy's RBAC HTTP filter.
pub(super) const RBAC_FILTER: &str = "envoy.filters.http.rbac";

/// The RBAC filters for the policies that apply to a workload, in the
/// order they must run (AUDIT, DENY, ALLOW).
pub(super) fn rbac_filters(policies: &[&AuthorizationPolicy]) -> Vec<HttpFilter> {
    [
        (AuthorizationAction::Audit, Action::Log),
        (AuthorizationAction::Deny, Action::Deny),
        (AuthorizationAction::Allow, Action::Allow),
    ]
    .into_iter()
    .filter_map(|(action, envoy_action)| {
        let group: Vec<&&AuthorizationPolicy> =
            policies.iter().filter(|p| p.action == action).collect();
        if group.is_empty() {
            return None;
        }
        let rules = Rbac {
            action: envoy_action as i32,
            policies: group
                .iter()
                .flat_map(|p| {
                    p.rules.iter().enumerate().map(|(i, rule)| {
                        (
                            format!("ns[{}]-policy[{}]-rule[{i}]", p.id.namespace, p.id.name),
                            rule_policy(rule),
                        )
                    })
                })
                .collect(),
            ..Default::default()
        };
        // A DENY or AUDIT group without rules matches nothing: no filter.
        if rules.policies.is_empty() && action != AuthorizationAction::Allow {
            return None;
        }
        let filter = RbacFilter {
            rules: Some(rules),
            ..Default::default()
        };
        Some(HttpFilter {
            name: RBAC_FILTER.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(filter))),
            ..Default::default()
        })
    })
    .collect()
}

/// One rule as an Envoy policy.
pub(super) fn rule_policy(rule: &AuthorizationRule) -> Policy {
    let mut permissions = Vec::new();
    if !rule.to.is_empty() {
        permissions.push(or_rules(rule.to.iter().map(operation).collect()));
    }
    let mut principals = Vec::new();
    if !rule.from.is_empty() {
        principals.push(or_ids(rule.from.iter().map(source).collect()));
    }
    for condition in &rule.when {
        match condition_part(condition) {
            Part::Permission(p) => permissions.push(p),
            Part::Principal(p) => principals.push(p),
        }
    }
    Policy {
        permissions: vec![and_rules(permissions)],
        principals: vec![and_ids(principals)],
        ..Default::default()
    }
}

fn operation(o: &OperationMatch) -> Permission {
    let mut parts = Vec::new();
    field(
        &mut parts,
        &o.hosts,
        |p| header_permission(":authority", p, true),
        or_rules,
        not_rule,
    );
    field(
        &mut parts,
        &o.ports,
        |p| port_permission(*p),
        or_rules,
        not_rule,
    );
    field(
        &mut parts,
        &o.methods,
        |p| header_permission(":method", p, false),
        or_rules,
        not_rule,
    );
    field(&mut parts, &o.paths, path_permission, or_rules, not_rule);
    and_rules(parts)
}

fn source(s: &SourceMatch) -> Principal {
    let mut parts = Vec::new();
    field(&mut parts, &s.principals, principal_id, or_ids, not_id);
    field(
        &mut parts,
        &s.request_principals,
        |v| request_principal(v),
        or_ids,
        not_id,
    );
    field(&mut parts, &s.namespaces, namespace_id, or_ids, not_id);
    field(
        &mut parts,
        &s.ip_blocks,
        |c| ip_id(c, false),
        or_ids,
        not_id,
    );
    field(
        &mut parts,
        &s.remote_ip_blocks,
        |c| ip_id(c, true),
        or_ids,
        not_id,
    );
    and_ids(parts)
}

/// Adds to `parts` "any of `m.any`" and "none of `m.not`", as they apply.
fn field<T, P>(
    parts: &mut Vec<P>,
    m: &Matches<T>,
    one: impl Fn(&T) -> P,
    any_of: fn(Vec<P>) -> P,
    negate: fn(P) -> P,
) {
    if !m.any.is_empty() {
        parts.push(any_of(m.any.iter().map(&one).collect()));
    }
    if !m.not.is_empty() {
        parts.push(negate(any_of(m.not.iter().map(&one).collect())));
    }
}

enum Part {
    Permission(Permission),
    Principal(Principal),
}

fn condition_part(c: &ConditionMatch) -> Part {
    let values = |m: &Matches<String>| -> Matches<Pattern> {
        let parse = |v: &String| Pattern::parse(v).unwrap_or_else(|_| Pattern::Exact(v.clone()));
        Matches {
            any: m.any.iter().map(parse).collect(),
            not: m.not.iter().map(parse).collect(),
        }
    };
    let cidrs = |m: &Matches<String>| -> Matches<Cidr> {
        // Validated at conversion; a value that does not parse is dropped.
        Matches {
            any: m.any.iter().filter_map(|v| Cidr::parse(v).ok()).collect(),
            not: m.not.iter().filter_map(|v| Cidr::parse(v).ok()).collect(),
        }
    };
    let principal = |m: Matches<Principal>| -> Part {
        let mut parts = Vec::new();
        field(&mut parts, &m, Clone::clone, or_ids, not_id);
        Part::Principal(and_ids(parts))
    };
    let permission = |m: Matches<Permission>| -> Part {
        let mut parts = Vec::new();
        field(&mut parts, &m, Clone::clone, or_rules, not_rule);
        Part::Permission(and_rules(parts))
    };
    fn map<T, U>(m: Matches<T>, f: impl Fn(&T) -> U) -> Matches<U> {
        Matches {
            any: m.any.iter().map(&f).collect(),
            not: m.not.iter().map(&f).collect(),
        }
    }
    match &c.key {
        ConditionKey::RequestHeader(name) => principal(map(values(&c.values), |p| Principal {
            identifier: Some(principal::Identifier::Header(header_matcher(
                name, p, false,
            ))),
        })),
        ConditionKey::SourceIp => principal(map(cidrs(&c.values), |c| ip_id(c, false))),
        ConditionKey::RemoteIp => principal(map(cidrs(&c.values), |c| ip_id(c, true))),
        ConditionKey::SourceNamespace => principal(map(values(&c.values), namespace_id)),
        ConditionKey::SourcePrincipal => principal(map(values(&c.values), principal_id)),
        ConditionKey::RequestPrincipal => {
            principal(map(c.values.clone(), |v| request_principal(v)))
        }
        ConditionKey::RequestAudiences => {
            principal(map(values(&c.values), |p| claim(&["aud".to_string()], p)))
        }
        ConditionKey::RequestPresenter => {
            principal(map(values(&c.values), |p| claim(&["azp".to_string()], p)))
        }
        ConditionKey::RequestClaim(path) => principal(map(values(&c.values), |p| claim(path, p))),
        ConditionKey::DestinationIp => permission(map(cidrs(&c.values), |c| Permission {
            rule: Some(permission::Rule::DestinationIp(cidr_range(c))),
        })),
        ConditionKey::DestinationPort => permission(Matches {
            any: c
                .values
                .any
                .iter()
                .filter_map(|v| v.parse().ok())
                .map(port_permission)
                .collect(),
            not: c
                .values
                .not
                .iter()
                .filter_map(|v| v.parse().ok())
                .map(port_permission)
                .collect(),
        }),
        ConditionKey::ConnectionSni => permission(map(values(&c.values), |p| Permission {
            rule: Some(permission::Rule::RequestedServerName(string_matcher(
                p, "", true,
            ))),
        })),
    }
}

/// A peer identity in Istio's form (`cluster.local/ns/NS/sa/SA`) against
/// the SPIFFE ID of the peer's certificate; `*` is any authenticated peer.
fn principal_id(p: &Pattern) -> Principal {
    let matcher = match p {
        Pattern::Any => regex_string_matcher(".+"),
        other => string_matcher(other, "spiffe://", false),
    };
    authenticated(matcher)
}

/// The namespace in the peer's SPIFFE ID (`spiffe://TD/ns/NS/sa/SA`).
fn namespace_id(p: &Pattern) -> Principal {
    let ns = match p {
        Pattern::Exact(ns) => regex::escape(ns),
        Pattern::Prefix(prefix) => format!("{}[^/]*", regex::escape(prefix)),
        Pattern::Suffix(suffix) => format!("[^/]*{}", regex::escape(suffix)),
        Pattern::Any => "[^/]+".to_string(),
    };
    authenticated(regex_string_matcher(&format!("spiffe://[^/]+/ns/{ns}/.*")))
}

fn authenticated(matcher: StringMatcher) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Authenticated(
            principal::Authenticated {
                principal_name: Some(matcher),
            },
        )),
    }
}

fn ip_id(c: &Cidr, remote: bool) -> Principal {
    let range = cidr_range(c);
    Principal {
        identifier: Some(if remote {
            principal::Identifier::RemoteIp(range)
        } else {
            principal::Identifier::DirectRemoteIp(range)
        }),
    }
}

fn cidr_range(c: &Cidr) -> CidrRange {
    CidrRange {
        address_prefix: c.address.to_string(),
        prefix_len: Some(UInt32Value {
            value: c.prefix_len,
        }),
    }
}

fn header_permission(name: &str, p: &Pattern, ignore_case: bool) -> Permission {
    Permission {
        rule: Some(permission::Rule::Header(header_matcher(
            name,
            p,
            ignore_case,
        ))),
    }
}

fn header_matcher(name: &str, p: &Pattern, ignore_case: bool) -> HeaderMatcher {
    let specifier = match p {
        Pattern::Any => HeaderMatchSpecifier::PresentMatch(true),
        other => HeaderMatchSpecifier::StringMatch(string_matcher(other, "", ignore_case)),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

fn port_permission(port: u16) -> Permission {
    Permission {
        rule: Some(permission::Rule::DestinationPort(u32::from(port))),
    }
}

fn path_permission(p: &Pattern) -> Permission {
    let matcher = match p {
        Pattern::Any => regex_string_matcher(".*"),
        other => string_matcher(other, "", false),
    };
    Permission {
        rule: Some(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(matcher)),
        })),
    }
}

/// `p` as a string matcher, `prefix` put before exact and prefix values.
fn string_matcher(p: &Pattern, prefix: &str, ignore_case: bool) -> StringMatcher {
    let pattern = match p {
        Pattern::Exact(v) => MatchPattern::Exact(format!("{prefix}{v}")),
        Pattern::Prefix(v) => MatchPattern::Prefix(format!("{prefix}{v}")),
        Pattern::Suffix(v) => MatchPattern::Suffix(v.clone()),
        Pattern::Any => MatchPattern::SafeRegex(RegexMatcher {
            regex: ".*".to_string(),
            ..Default::default()
        }),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

fn regex_string_matcher(regex: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
            regex: regex.to_string(),
            ..Default::default()
        })),
        ignore_case: false,
    }
}

fn and_rules(rules: Vec<Permission>) -> Permission {
    set_or_any(
        rules,
        |rules| permission::Rule::AndRules(permission::Set { rules }),
        |r| Permission { rule: Some(r) },
        permission::Rule::Any(true),
    )
}

fn or_rules(rules: Vec<Permission>) -> Permission {
    set_or_any(
        rules,
        |rules| permission::Rule::OrRules(permission::Set { rules }),
        |r| Permission { rule: Some(r) },
        permission::Rule::Any(true),
    )
}

fn not_rule(p: Permission) -> Permission {
    Permission {
        rule: Some(permission::Rule::NotRule(Box::new(p))),
    }
}

fn and_ids(ids: Vec<Principal>) -> Principal {
    set_or_any(
        ids,
        |ids| principal::Identifier::AndIds(principal::Set { ids }),
        |i| Principal {
            identifier: Some(i),
        },
        principal::Identifier::Any(true),
    )
}

fn or_ids(ids: Vec<Principal>) -> Principal {
    set_or_any(
        ids,
        |ids| principal::Identifier::OrIds(principal::Set { ids }),
        |i| Principal {
            identifier: Some(i),
        },
        principal::Identifier::Any(true),
    )
}

fn not_id(p: Principal) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::NotId(Box::new(p))),
    }
}

/// One item stays itself; several make a set; none is "any" (an empty
/// rule part constrains nothing).
fn set_or_any<T, R>(
    mut items: Vec<T>,
    set: impl FnOnce(Vec<T>) -> R,
    wrap: impl FnOnce(R) -> T,
    any: R,
) -> T {
    match items.len() {
        0 => wrap(any),
        1 => items.remove(0),
        _ => wrap(set(items)),
    }
}

#[cfg(test)]
#[path = "authorization_tests.rs"]
mod tests;
