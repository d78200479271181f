//! The JWT filter from RequestAuthentications on fabricated meshes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use weft_envoy_api::pb::envoy::config::core::v3::data_source::Specifier;
use weft_envoy_api::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtRequirement, jwt_provider::JwksSourceSpecifier,
    jwt_requirement::RequiresType, requirement_rule::RequirementType,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;

use super::{FAIL_CLOSED_JWKS, jwt_authn_filter, local_reply_config};
use weft_config::ConfigStore;
use weft_config::testing::{mk_inputs, mk_snapshot};
use weft_envoy_api::pb::envoy::config::accesslog::v3::{
    access_log_filter::FilterSpecifier, extension_filter,
};
use weft_envoy_api::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use weft_model::{FetchedJwks, JwksLocation, MeshSnapshot, jwt_rules_for};

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"BBBB","kid":"k1"}]}"#;

fn policies() -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: api, namespace: prod}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  jwtRules:
  - issuer: https://zeta.example.com
    jwks: '{JWKS}'
    audiences: [api]
    fromHeaders: [{{name: x-token, prefix: 'Token '}}]
    outputClaimToHeaders: [{{header: x-user, claim: sub}}]
    forwardOriginalToken: true
---
apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {{name: mesh, namespace: istio-system}}
spec:
  jwtRules:
  - issuer: https://alpha.example.com
    jwksUri: https://alpha.example.com/keys
    outputPayloadToHeader: x-payload
    spaceDelimitedClaims: [roles]
"
    )
}

fn filter_config(snapshot: &MeshSnapshot, namespace: &str, app: &str) -> Option<JwtAuthentication> {
    let labels = BTreeMap::from([("app".to_string(), app.to_string())]);
    let rules = jwt_rules_for(
        &snapshot.request_authentications,
        &snapshot.mesh_config.root_namespace,
        namespace,
        &labels,
    );
    let filter = jwt_authn_filter(snapshot, &rules)?;
    assert_eq!(filter.name, "envoy.filters.http.jwt_authn");
    let Some(http_filter::ConfigType::TypedConfig(any)) = filter.config_type else {
        panic!("no typed config");
    };
    Some(JwtAuthentication::decode(any.value.as_slice()).unwrap())
}

fn inline_keys(config: &JwtAuthentication, provider: &str) -> String {
    match &config.providers[provider].jwks_source_specifier {
        Some(JwksSourceSpecifier::LocalJwks(source)) => match &source.specifier {
            Some(Specifier::InlineString(s)) => s.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn provider_names(r: &JwtRequirement) -> Vec<String> {
    match &r.requires_type {
        Some(RequiresType::ProviderName(n)) => vec![n.clone()],
        Some(RequiresType::AllowMissing(_)) => vec!["<missing>".into()],
        Some(RequiresType::RequiresAny(list)) => {
            let mut names = vec!["any(".to_string()];
            names.extend(list.requirements.iter().flat_map(provider_names));
            names.push(")".into());
            names
        }
        Some(RequiresType::RequiresAll(list)) => {
            let mut names = vec!["all(".to_string()];
            names.extend(list.requirements.iter().flat_map(provider_names));
            names.push(")".into());
            names
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rules_of_every_policy_that_applies_merge_sorted_by_issuer() {
    let snapshot = mk_snapshot(&policies());
    let config = filter_config(&snapshot, "prod", "api").unwrap();
    assert_eq!(config.providers.len(), 2);
    let alpha = &config.providers["origins-0"];
    let zeta = &config.providers["origins-1"];
    assert_eq!(alpha.issuer, "https://alpha.example.com");
    assert_eq!(alpha.forward_payload_header, "x-payload");
    assert_eq!(
        alpha
            .normalize_payload_in_metadata
            .as_ref()
            .unwrap()
            .space_delimited_claims,
        ["permission", "roles", "scope"]
    );
    assert_eq!(zeta.issuer, "https://zeta.example.com");
    assert_eq!(zeta.audiences, ["api"]);
    assert!(zeta.forward);
    assert_eq!(zeta.from_headers[0].name, "x-token");
    assert_eq!(zeta.from_headers[0].value_prefix, "Token ");
    assert_eq!(zeta.claim_to_headers[0].header_name, "x-user");
    assert_eq!(zeta.payload_in_metadata, "payload");
    assert_eq!(inline_keys(&config, "origins-1"), JWKS);
    assert!(config.bypass_cors_preflight);
    let Some(RequirementType::Requires(requires)) = &config.rules[0].requirement_type else {
        panic!("{config:?}");
    };
    // Either token alone, or: each, if present, valid.
    assert_eq!(
        provider_names(requires).join(" "),
        "any( origins-0 origins-1 all( any( origins-0 <missing> ) any( origins-1 <missing> ) ) )"
    );

    // Another workload of prod has the mesh-wide rule only.
    let other = filter_config(&snapshot, "prod", "web").unwrap();
    let Some(RequirementType::Requires(requires)) = &other.rules[0].requirement_type else {
        panic!("{other:?}");
    };
    assert_eq!(
        provider_names(requires).join(" "),
        "any( origins-0 <missing> )"
    );
}

#[test]
fn remote_keys_are_inlined_once_fetched_and_fail_closed_before() {
    let mut store = ConfigStore::default();
    let applied = store.apply(mk_inputs(&policies()));
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    let before = filter_config(&applied.snapshot, "prod", "web").unwrap();
    assert_eq!(inline_keys(&before, "origins-0"), FAIL_CLOSED_JWKS);

    let location = JwksLocation::Uri("https://alpha.example.com/keys".into());
    // A failed first fetch: the rule is reported, its tokens refused.
    let failed = FetchedJwks {
        keys: None,
        error: Some("connection refused".into()),
    };
    let applied = store.set_fetched_jwks(BTreeMap::from([(location.clone(), failed)]));
    let reported: Vec<String> = applied
        .errors
        .iter()
        .map(|e| format!("{} {}", e.resource.as_ref().unwrap(), e.error.field))
        .collect();
    assert_eq!(
        reported,
        ["RequestAuthentication istio-system/mesh spec.jwtRules[0]"]
    );
    assert!(
        applied.errors[0]
            .error
            .message
            .contains("connection refused")
    );
    let failing = filter_config(&applied.snapshot, "prod", "web").unwrap();
    assert_eq!(inline_keys(&failing, "origins-0"), FAIL_CLOSED_JWKS);

    let fetched = FetchedJwks {
        keys: Some(JWKS.to_string()),
        error: None,
    };
    let applied = store.set_fetched_jwks(BTreeMap::from([(location, fetched)]));
    assert!(applied.changed);
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    let after = filter_config(&applied.snapshot, "prod", "web").unwrap();
    assert_eq!(inline_keys(&after, "origins-0"), JWKS);
    assert!(Arc::strong_count(&applied.snapshot.fetched_jwks) >= 1);
}

#[test]
fn no_rules_no_filter() {
    let prod_only = policies().split("---").next().unwrap().to_string();
    let snapshot = mk_snapshot(&prod_only);
    assert!(filter_config(&snapshot, "prod", "api").is_some());
    assert!(filter_config(&snapshot, "prod", "web").is_none());
    assert!(filter_config(&snapshot, "other", "api").is_none());
}

#[test]
fn only_chains_with_the_jwt_filter_turn_its_wrong_audience_403_into_401() {
    let snapshot = mk_snapshot(&policies());
    let labels = BTreeMap::from([("app".to_string(), "api".to_string())]);
    let rules = jwt_rules_for(
        &snapshot.request_authentications,
        "istio-system",
        "prod",
        &labels,
    );
    let jwt = jwt_authn_filter(&snapshot, &rules).unwrap();
    let config = local_reply_config(std::slice::from_ref(&jwt)).unwrap();
    let [mapper] = config.mappers.as_slice() else {
        panic!("{config:?}");
    };
    assert_eq!(mapper.status_code.map(|c| c.value), Some(401));
    let Some(FilterSpecifier::ExtensionFilter(cel)) = mapper
        .filter
        .as_ref()
        .and_then(|f| f.filter_specifier.as_ref())
    else {
        panic!("{mapper:?}");
    };
    let Some(extension_filter::ConfigType::TypedConfig(any)) = &cel.config_type else {
        panic!("{cel:?}");
    };
    let expression = ExpressionFilter::decode(any.value.as_slice())
        .unwrap()
        .expression;
    assert!(expression.contains("response.code == 403"), "{expression}");
    assert!(
        expression.contains("'jwt_authn_access_denied'"),
        "{expression}"
    );

    let rbac_only = HttpFilter {
        name: "envoy.filters.http.rbac".to_string(),
        ..Default::default()
    };
    assert_eq!(local_reply_config(&[rbac_only]), None);
}

#[test]
fn bad_rules_are_refused_with_the_field() {
    let yaml = "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: bad, namespace: prod}
spec:
  selector: {matchLabels: {app: api}}
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: edge}]
  jwtRules:
  - jwks: '{\"keys\": []}'
    jwksUri: https://keys.example.com/jwks
    audiences: ['']
    fromHeaders: [{name: ''}]
    fromParams: ['']
    outputClaimToHeaders: [{header: 'bad header', claim: ''}]
    outputPayloadToHeader: 'x:payload'
    timeout: 0s
  - issuer: not-a-url
";
    let applied = ConfigStore::default().apply(mk_inputs(yaml));
    let mut fields: Vec<String> = applied
        .errors
        .iter()
        .map(|e| e.error.field.clone())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "spec.jwtRules[0].audiences[0]",
            "spec.jwtRules[0].fromHeaders[0].name",
            "spec.jwtRules[0].fromParams[0]",
            "spec.jwtRules[0].issuer",
            "spec.jwtRules[0].jwks",
            "spec.jwtRules[0].jwksUri",
            "spec.jwtRules[0].outputClaimToHeaders[0].claim",
            "spec.jwtRules[0].outputClaimToHeaders[0].header",
            "spec.jwtRules[0].outputPayloadToHeader",
            "spec.jwtRules[0].timeout",
            "spec.jwtRules[1].issuer",
            "spec.selector",
        ]
    );
    assert!(applied.snapshot.request_authentications.is_empty());
}
