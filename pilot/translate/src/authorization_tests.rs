//! RBAC filters from AuthorizationPolicies on fabricated meshes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use prost::Message;
use weft_envoy_api::pb::envoy::config::rbac::v3::{Rbac, permission, principal, rbac::Action};
use weft_envoy_api::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use weft_envoy_api::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

use super::rbac_filters;
use weft_config::ConfigStore;
use weft_config::testing::{mk_inputs, mk_snapshot};
use weft_model::policies_for;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The RBAC configs of the filters for a workload of `namespace` with
/// `labels` under the policies in `yaml`.
fn rbacs(yaml: &str, namespace: &str, workload: &[(&str, &str)]) -> Vec<Rbac> {
    let snapshot = mk_snapshot(yaml);
    let policies = policies_for(
        &snapshot.authorization_policies,
        &snapshot.mesh_config.root_namespace,
        namespace,
        &labels(workload),
    );
    rbac_filters(&policies)
        .into_iter()
        .map(|f| {
            assert_eq!(f.name, "envoy.filters.http.rbac");
            let Some(http_filter::ConfigType::TypedConfig(any)) = f.config_type else {
                panic!("no typed config");
            };
            RbacFilter::decode(any.value.as_slice())
                .unwrap()
                .rules
                .unwrap()
        })
        .collect()
}

const DENY_V3: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-reviews-v3, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/reviews-v3]}
";

#[test]
fn no_policy_no_filter() {
    assert!(rbacs("", "default", &[("app", "ratings")]).is_empty());
    // A policy for other workloads or another namespace does not apply.
    assert!(rbacs(DENY_V3, "default", &[("app", "reviews")]).is_empty());
    assert!(rbacs(DENY_V3, "ns2", &[("app", "ratings")]).is_empty());
}

#[test]
fn a_deny_on_a_principal_matches_the_peer_spiffe_id() {
    let rbacs = rbacs(DENY_V3, "default", &[("app", "ratings")]);
    assert_eq!(rbacs.len(), 1);
    assert_eq!(rbacs[0].action, Action::Deny as i32);
    let policy = &rbacs[0].policies["ns[default]-policy[no-reviews-v3]-rule[0]"];
    assert!(matches!(
        policy.permissions[0].rule,
        Some(permission::Rule::Any(true))
    ));
    let Some(principal::Identifier::Authenticated(auth)) = &policy.principals[0].identifier else {
        panic!("{policy:?}");
    };
    assert_eq!(
        auth.principal_name.as_ref().unwrap().match_pattern,
        Some(MatchPattern::Exact(
            "spiffe://cluster.local/ns/default/sa/reviews-v3".into()
        ))
    );
}

#[test]
fn audit_then_deny_then_allow_and_an_empty_allow_denies_everything() {
    let yaml = format!(
        "{DENY_V3}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: allow-nothing, namespace: default}}
spec: {{}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: audit-all, namespace: istio-system}}
spec:
  action: AUDIT
  rules: [{{}}]
"
    );
    let rbacs = rbacs(&yaml, "default", &[("app", "ratings")]);
    let actions: Vec<i32> = rbacs.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            Action::Log as i32,
            Action::Deny as i32,
            Action::Allow as i32
        ]
    );
    assert!(
        rbacs[2].policies.is_empty(),
        "ALLOW with no rule denies all"
    );
    // An empty rule matches every request.
    let audit = &rbacs[0].policies["ns[istio-system]-policy[audit-all]-rule[0]"];
    assert!(matches!(
        audit.permissions[0].rule,
        Some(permission::Rule::Any(true))
    ));
    assert!(matches!(
        audit.principals[0].identifier,
        Some(principal::Identifier::Any(true))
    ));
}

#[test]
fn operations_namespaces_and_conditions_become_permissions_and_principals() {
    let yaml = "apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: admin, namespace: default}
spec:
  action: DENY
  rules:
  - from:
    - source: {namespaces: [ns2], notIpBlocks: [10.0.0.0/8]}
    to:
    - operation: {methods: [GET], paths: [/admin*], notPorts: ['8080']}
    when:
    - {key: 'request.headers[x-user]', values: [mallory]}
    - {key: destination.port, values: ['9080']}
";
    let rbacs = rbacs(yaml, "default", &[]);
    let policy = &rbacs[0].policies["ns[default]-policy[admin]-rule[0]"];
    // Permissions: the operation, and destination.port.
    let Some(permission::Rule::AndRules(set)) = &policy.permissions[0].rule else {
        panic!("{policy:?}");
    };
    assert_eq!(set.rules.len(), 2);
    let Some(permission::Rule::AndRules(op)) = &set.rules[0].rule else {
        panic!("{set:?}");
    };
    assert_eq!(op.rules.len(), 3, "method, path, not port: {op:?}");
    assert!(matches!(
        op.rules[0].rule,
        Some(permission::Rule::NotRule(_))
    ));
    assert!(matches!(
        set.rules[1].rule,
        Some(permission::Rule::DestinationPort(9080))
    ));
    // Principals: the source (namespace from the SPIFFE ID, not the IP
    // block), and the header.
    let Some(principal::Identifier::AndIds(ids)) = &policy.principals[0].identifier else {
        panic!("{policy:?}");
    };
    assert_eq!(ids.ids.len(), 2);
    let Some(principal::Identifier::AndIds(source)) = &ids.ids[0].identifier else {
        panic!("{ids:?}");
    };
    let Some(principal::Identifier::Authenticated(auth)) = &source.ids[0].identifier else {
        panic!("{source:?}");
    };
    let Some(MatchPattern::SafeRegex(regex)) = &auth.principal_name.as_ref().unwrap().match_pattern
    else {
        panic!("{auth:?}");
    };
    assert_eq!(regex.regex, "spiffe://[^/]+/ns/ns2/.*");
    assert!(matches!(
        source.ids[1].identifier,
        Some(principal::Identifier::NotId(_))
    ));
    assert!(matches!(
        ids.ids[1].identifier,
        Some(principal::Identifier::Header(_))
    ));
}

#[test]
fn what_cannot_be_translated_is_refused_with_the_field() {
    let yaml = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: default}
spec:
  action: CUSTOM
  provider: {name: ext-authz}
  rules:
  - from:
    - source: {requestPrincipals: ['a*b'], ipBlocks: [not-an-ip]}
    to:
    - operation: {ports: ['http'], paths: ['/a*b']}
    when:
    - {key: 'request.auth.claims[]', values: [x]}
    - {key: source.nonsense, values: [x]}
    - {key: source.ip}
";
    let applied = ConfigStore::default().apply(mk_inputs(yaml));
    let mut fields: Vec<String> = applied
        .errors
        .iter()
        .map(|e| format!("{:?} {}", e.error.reason, e.error.field))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "Invalid spec.rules[0].from[0].source.ipBlocks[0]",
            "Invalid spec.rules[0].from[0].source.requestPrincipals[0]",
            "Invalid spec.rules[0].to[0].operation.paths[0]",
            "Invalid spec.rules[0].to[0].operation.ports[0]",
            "Invalid spec.rules[0].when[0].key",
            "Invalid spec.rules[0].when[1].key",
            "Invalid spec.rules[0].when[2]",
        ]
    );
    assert!(applied.snapshot.authorization_policies.is_empty());
}

#[test]
fn end_user_terms_match_the_verified_jwt_payload() {
    let yaml = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: default}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ['https://id.example.com/alice'], notRequestPrincipals: ['*/mallory']}
    when:
    - {key: 'request.auth.claims[groups]', values: [admins]}
    - {key: 'request.auth.audiences', notValues: ['other*']}
";
    let rbacs = rbacs(yaml, "default", &[]);
    let [rbac] = rbacs.as_slice() else {
        panic!("{rbacs:?}");
    };
    let policy = &rbac.policies["ns[default]-policy[jwt]-rule[0]"];
    let Some(principal::Identifier::AndIds(all)) = &policy.principals[0].identifier else {
        panic!("{policy:?}");
    };
    // from (request principal AND NOT the other), the claim, NOT the audience.
    assert_eq!(all.ids.len(), 3);
    let paths: Vec<Vec<String>> = metadata_paths(&policy.principals[0]);
    assert_eq!(
        paths,
        [
            ["payload", "iss"],
            ["payload", "sub"],
            ["payload", "iss"],
            ["payload", "sub"],
            ["payload", "groups"],
            ["payload", "aud"],
        ]
        .map(|p| p.map(String::from).to_vec())
    );
    assert!(matches!(
        all.ids[2].identifier,
        Some(principal::Identifier::NotId(_))
    ));
}

/// The payload paths of every metadata matcher under `p`, depth first.
fn metadata_paths(p: &weft_envoy_api::pb::envoy::config::rbac::v3::Principal) -> Vec<Vec<String>> {
    use weft_envoy_api::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
    match &p.identifier {
        Some(principal::Identifier::AndIds(set) | principal::Identifier::OrIds(set)) => {
            set.ids.iter().flat_map(metadata_paths).collect()
        }
        Some(principal::Identifier::NotId(inner)) => metadata_paths(inner),
        Some(principal::Identifier::SourcedMetadata(m)) => {
            let matcher = m.metadata_matcher.as_ref().unwrap();
            assert_eq!(matcher.filter, "envoy.filters.http.jwt_authn");
            vec![
                matcher
                    .path
                    .iter()
                    .map(|s| match &s.segment {
                        Some(Segment::Key(k)) => k.clone(),
                        None => String::new(),
                    })
                    .collect(),
            ]
        }
        _ => Vec::new(),
    }
}
