//! The webhook's decisions on fabricated AdmissionReviews (no cluster):
//! the cluster's state is made of objects converted as the watches
//! convert them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionRequest;
use serde_json::{Value, json};

use super::decide::{ClusterState, Decision, candidate_input, decide};
use super::review::respond;

const DESTINATION_RULE: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

const ROUTE_TO_V1: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
";

/// A VirtualService `reviews` in `default` whose `http` is `http` (YAML).
fn mk_virtual_service(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
{http}"
    )
}

fn mk_object(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).unwrap()
}

/// An AdmissionReview (JSON) of `operation` on `object`.
fn mk_review(operation: &str, object: Option<Value>, old: Option<Value>) -> Value {
    let source = object.as_ref().or(old.as_ref()).unwrap();
    let kind = source["kind"].as_str().unwrap();
    let api_version = source["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let name = source["metadata"]["name"].as_str().unwrap();
    let namespace = source["metadata"]["namespace"].as_str().unwrap();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": object,
            "oldObject": old,
            "dryRun": false,
        }
    })
}

fn mk_request(review: Value) -> AdmissionRequest<DynamicObject> {
    let review: kube::core::admission::AdmissionReview<DynamicObject> =
        serde_json::from_value(review).unwrap();
    review.try_into().unwrap()
}

/// The cluster's inputs, made from `objects` as the watches make them.
fn mk_cluster(objects: &[&str]) -> ClusterState {
    let inputs = objects
        .iter()
        .map(|yaml| {
            let object: DynamicObject = serde_yaml::from_str(yaml).unwrap();
            let types = object.types.as_ref().unwrap();
            let group = types.api_version.split('/').next().unwrap();
            let kind = super::decide::validated_kind(group, &types.kind).unwrap();
            candidate_input(kind, object).unwrap()
        })
        .collect();
    ClusterState {
        inputs,
        ..ClusterState::default()
    }
}

/// The decision on creating `yaml` in a cluster holding `cluster`.
fn decide_create(yaml: &str, cluster: &[&str]) -> Decision {
    let request = mk_request(mk_review("CREATE", Some(mk_object(yaml)), None));
    decide(&request, || mk_cluster(cluster))
}

fn denied_message(decision: &Decision) -> &str {
    assert!(!decision.allowed, "not denied: {decision:?}");
    decision.message.as_deref().unwrap()
}

fn allowed_without_warnings() -> Decision {
    Decision {
        allowed: true,
        message: None,
        warnings: vec![],
    }
}

#[test]
fn a_valid_virtual_service_is_allowed_without_warnings() {
    let decision = decide_create(ROUTE_TO_V1, &[DESTINATION_RULE]);
    assert_eq!(decision, allowed_without_warnings());
}

#[test]
fn weights_that_do_not_sum_to_100_are_denied_with_the_field() {
    let vs = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 40
",
    );
    let decision = decide_create(&vs, &[DESTINATION_RULE]);
    let message = denied_message(&decision);
    assert!(
        message.starts_with("VirtualService default/reviews: spec.http[0].route"),
        "{message}"
    );
    assert!(message.contains("90"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn an_invalid_regex_is_denied() {
    let vs = mk_virtual_service(
        "  - match:
    - uri: {regex: '/api/(v1'}
    route:
    - destination: {host: reviews, subset: v1}
",
    );
    let message = denied_message(&decide_create(&vs, &[DESTINATION_RULE])).to_string();
    assert!(
        message.starts_with("VirtualService default/reviews: spec.http[0].match[0].uri.regex: "),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "one line per error: {message}");
}

#[test]
fn an_unparseable_duration_is_denied() {
    // The CRD schema says `type: string`; the apiserver lets it through.
    let vs = mk_virtual_service(
        "  - timeout: 10 seconds
    route:
    - destination: {host: reviews, subset: v1}
",
    );
    let message = denied_message(&decide_create(&vs, &[DESTINATION_RULE])).to_string();
    assert!(
        message.starts_with("VirtualService default/reviews: spec: cannot be read"),
        "{message}"
    );
    assert!(message.contains("10 seconds"), "{message}");
}

#[test]
fn an_undefined_subset_is_denied_when_the_host_has_a_destination_rule() {
    let vs = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v9}
",
    );
    let message = denied_message(&decide_create(&vs, &[DESTINATION_RULE])).to_string();
    assert!(
        message.starts_with(
            "VirtualService default/reviews: spec.http[0].route[0].destination.subset: subset v9"
        ),
        "{message}"
    );
}

#[test]
fn an_undefined_subset_only_warns_while_the_host_has_no_destination_rule() {
    let vs = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v9}
",
    );
    let decision = decide_create(&vs, &[]);
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.warnings.len(), 1, "{decision:?}");
    assert!(
        decision.warnings[0].contains("spec.http[0].route[0].destination.subset"),
        "{decision:?}"
    );
}

#[test]
fn the_candidate_replaces_the_cluster_object_of_the_same_name() {
    // The cluster's `reviews` routes to v1; an update to v2 is judged alone,
    // not as a duplicate of the object it replaces.
    let to_v2 = ROUTE_TO_V1.replace("subset: v1", "subset: v2");
    let request = mk_request(mk_review(
        "UPDATE",
        Some(mk_object(&to_v2)),
        Some(mk_object(ROUTE_TO_V1)),
    ));
    let decision = decide(&request, || mk_cluster(&[DESTINATION_RULE, ROUTE_TO_V1]));
    assert!(
        decision.allowed && decision.warnings.is_empty(),
        "{decision:?}"
    );
}

#[test]
fn an_undefined_mirror_subset_is_denied_when_the_host_has_a_destination_rule() {
    let vs = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v1}
    mirror: {host: reviews, subset: v9}
",
    );
    let message = denied_message(&decide_create(&vs, &[DESTINATION_RULE])).to_string();
    assert!(
        message.contains("spec.http[0].mirrors[0].destination.subset: subset v9"),
        "{message}"
    );
}

#[test]
fn a_second_destination_rule_for_a_host_is_denied() {
    let other = DESTINATION_RULE.replace("name: reviews,", "name: reviews-too,");
    let message = denied_message(&decide_create(&other, &[DESTINATION_RULE])).to_string();
    assert!(
        message.starts_with("DestinationRule default/reviews-too: spec.host: "),
        "{message}"
    );
}

#[test]
fn an_unsupported_field_is_allowed_with_a_warning() {
    let vs = mk_virtual_service(
        "  - fault:
      abort: {http2Error: PROTOCOL_ERROR, percentage: {value: 1}}
    route:
    - destination: {host: reviews, subset: v1}
",
    );
    let decision = decide_create(&vs, &[DESTINATION_RULE]);
    assert!(decision.allowed, "{decision:?}");
    assert!(decision.message.is_none(), "{decision:?}");
    let [warning] = decision.warnings.as_slice() else {
        panic!("one warning: {decision:?}");
    };
    assert!(
        warning
            .starts_with("VirtualService default/reviews: spec.http[0].fault.abort.http2Error: "),
        "{warning}"
    );
}

#[test]
fn delete_is_allowed_without_looking_at_the_cluster() {
    let bad = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v1}
      weight: 10
",
    );
    let request = mk_request(mk_review("DELETE", None, Some(mk_object(&bad))));
    let decision = decide(&request, || panic!("DELETE needs no cluster state"));
    assert!(decision.allowed, "{decision:?}");
}

#[test]
fn other_kinds_and_status_updates_are_allowed() {
    let service = mk_object(
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\nspec: {}\n",
    );
    let mut review = mk_review("CREATE", Some(service), None);
    review["request"]["kind"]["group"] = json!("");
    let decision = decide(&mk_request(review), || panic!("no cluster state needed"));
    assert!(decision.allowed);

    let bad = mk_object(&mk_virtual_service("  - route: []\n    timeout: nope\n"));
    let mut review = mk_review("UPDATE", Some(bad.clone()), Some(bad));
    review["request"]["subResource"] = json!("status");
    let decision = decide(&mk_request(review), || panic!("no cluster state needed"));
    assert!(decision.allowed);
}

#[test]
fn metadata_only_updates_of_a_bad_object_are_allowed() {
    let bad = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v1}
      weight: 10
",
    );
    let mut labelled = mk_object(&bad);
    labelled["metadata"]["labels"] = json!({"team": "reviews"});
    let request = mk_request(mk_review("UPDATE", Some(labelled), Some(mk_object(&bad))));
    assert!(decide(&request, || mk_cluster(&[DESTINATION_RULE])).allowed);
}

#[test]
fn dry_run_is_validated() {
    let bad = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v1}
      weight: 10
",
    );
    let mut review = mk_review("CREATE", Some(mk_object(&bad)), None);
    review["request"]["dryRun"] = json!(true);
    let decision = decide(&mk_request(review), || mk_cluster(&[DESTINATION_RULE]));
    assert!(!decision.allowed, "{decision:?}");
}

#[test]
fn any_served_version_is_validated() {
    let bad = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v1}
      weight: 10
",
    )
    .replace("networking.istio.io/v1", "networking.istio.io/v1beta1");
    let message = denied_message(&decide_create(&bad, &[DESTINATION_RULE])).to_string();
    assert!(message.contains("spec.http[0].route"), "{message}");
}

#[test]
fn a_denial_is_an_admission_review_with_status_400() {
    let bad = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v1}
      weight: 10
",
    );
    let body = mk_review("CREATE", Some(mk_object(&bad)), None).to_string();
    let reply = respond(body.as_bytes(), || mk_cluster(&[DESTINATION_RULE]));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.reviewed, Some(("VirtualService", false)));
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    let response = &answer["response"];
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("VirtualService default/reviews: spec.http[0].route"),
        "{response}"
    );
}

#[test]
fn warnings_travel_in_the_admission_review() {
    let vs = mk_virtual_service(
        "  - route:
    - destination: {host: reviews, subset: v9}
",
    );
    let body = mk_review("CREATE", Some(mk_object(&vs)), None).to_string();
    let reply = respond(body.as_bytes(), ClusterState::default);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(answer["response"]["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn a_body_that_is_not_an_admission_review_is_a_400() {
    for body in [&b"not json"[..], b"{\"kind\": \"Pod\"}", b"[1, 2]", b""] {
        let reply = respond(body, || panic!("no cluster state needed"));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
        assert_eq!(reply.reviewed, None);
        assert!(reply.body.contains("AdmissionReview"), "{reply:?}");
    }
}

/// A PeerAuthentication `default` in `default` whose `spec` is `spec`.
fn mk_peer_authentication(spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec:
{spec}"
    )
}

#[test]
fn peer_authentications_are_validated_like_the_mesh_kinds() {
    let strict = mk_peer_authentication("  mtls: {mode: STRICT}\n");
    assert!(decide_create(&strict, &[]).allowed);
    let workload = mk_peer_authentication(
        "  selector: {matchLabels: {app: reviews}}\n  portLevelMtls:\n    '9080': {mode: DISABLE}\n",
    );
    assert!(decide_create(&workload, &[]).allowed);

    let no_selector = mk_peer_authentication(
        "  mtls: {mode: STRICT}\n  portLevelMtls:\n    '9080': {mode: DISABLE}\n",
    );
    let message = denied_message(&decide_create(&no_selector, &[])).to_string();
    assert!(
        message.starts_with("PeerAuthentication default/default: spec.portLevelMtls: "),
        "{message}"
    );
    let bad_port = mk_peer_authentication(
        "  selector: {matchLabels: {app: reviews}}\n  portLevelMtls:\n    http: {mode: DISABLE}\n",
    );
    let message = denied_message(&decide_create(&bad_port, &[])).to_string();
    assert!(message.contains("spec.portLevelMtls[http]"), "{message}");

    // v1beta1 too; an unknown mode is a schema error, named.
    let beta = strict.replace("security.istio.io/v1", "security.istio.io/v1beta1");
    assert!(decide_create(&beta, &[]).allowed);
    let unknown = mk_peer_authentication("  mtls: {mode: SOMETIMES}\n");
    let message = denied_message(&decide_create(&unknown, &[])).to_string();
    assert!(
        message.contains("PeerAuthentication default/default"),
        "{message}"
    );
}

#[test]
fn authorization_policies_and_quotas_are_validated_too() {
    let bad_policy = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admin, namespace: default}
spec:
  rules:
  - to:
    - operation: {ports: [http]}
";
    let message = denied_message(&decide_create(bad_policy, &[])).to_string();
    assert!(
        message.starts_with(
            "AuthorizationPolicy default/admin: spec.rules[0].to[0].operation.ports[0]: "
        ),
        "{message}"
    );
    let custom = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  action: CUSTOM
  provider: {name: ext-authz}
  rules: [{to: [{operation: {paths: [/admin]}}]}]
";
    // A provider the mesh config may define later is a warning.
    let decision = decide_create(custom, &[]);
    assert!(decision.allowed, "CUSTOM is valid Istio: {decision:?}");
    assert!(
        decision
            .warnings
            .iter()
            .any(|w| w.contains("spec.provider.name")),
        "{decision:?}"
    );
    // Without rules it is refused, as Istio refuses it.
    let no_rules = custom.replace("  rules: [{to: [{operation: {paths: [/admin]}}]}]\n", "");
    let message = denied_message(&decide_create(&no_rules, &[])).to_string();
    assert!(message.contains("spec.rules"), "{message}");

    let bad_quota = "apiVersion: policy.weft.dev/v1alpha1
kind: Quota
metadata: {name: ratings, namespace: default}
spec:
  destination: {host: ratings}
  maxAmount: 0
  validDuration: 1s
";
    let message = denied_message(&decide_create(bad_quota, &[])).to_string();
    assert!(
        message.contains("Quota default/ratings: spec.maxAmount"),
        "{message}"
    );
}

#[test]
fn request_authentications_and_end_user_rules_are_validated() {
    let both_key_sources = "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: https://id.example.com
    jwksUri: https://id.example.com/keys
    jwks: '{\"keys\": []}'
";
    let message = denied_message(&decide_create(both_key_sources, &[])).to_string();
    assert!(
        message.starts_with("RequestAuthentication default/jwt: spec.jwtRules[0]"),
        "{message}"
    );
    assert!(message.contains("jwks"), "{message}");
    let no_issuer = "apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  jwtRules:
  - jwksUri: https://id.example.com/keys
";
    let message = denied_message(&decide_create(no_issuer, &[])).to_string();
    assert!(message.contains("spec.jwtRules[0].issuer"), "{message}");
    let good = both_key_sources.replace("    jwks: '{\"keys\": []}'\n", "");
    assert!(decide_create(&good, &[]).allowed);

    let end_users = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admins, namespace: default}
spec:
  rules:
  - from: [{source: {requestPrincipals: ['https://id.example.com/*']}}]
    when: [{key: 'request.auth.claims[groups]', values: [admins]}]
";
    assert_eq!(decide_create(end_users, &[]), allowed_without_warnings());
    let unknown_key =
        end_users.replace("request.auth.claims[groups]", "request.auth.claim[groups]");
    let message = denied_message(&decide_create(&unknown_key, &[])).to_string();
    assert!(message.contains("spec.rules[0].when[0].key"), "{message}");
}

const TRACING_TELEMETRY: &str = "
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: zipkin}]
";

#[test]
fn telemetry_providers_are_checked_against_the_mesh_config_the_plane_runs_with() {
    let request = mk_request(mk_review(
        "CREATE",
        Some(mk_object(TRACING_TELEMETRY)),
        None,
    ));
    let decision = decide(&request, ClusterState::default);
    assert!(
        decision.allowed,
        "the provider may be defined next: {decision:?}"
    );
    assert_eq!(decision.warnings.len(), 1, "{decision:?}");
    assert!(
        decision.warnings[0].contains(
            "Telemetry istio-system/mesh-default: spec.tracing[0].providers[0].name: the mesh config defines no provider \"zipkin\""
        ),
        "{decision:?}"
    );
    let mesh = weft_config::parse_mesh_config(
        "extensionProviders:\n- name: zipkin\n  zipkin: {service: istio-system/zipkin, port: 9411}\n",
    )
    .unwrap();
    let decision = decide(&request, || ClusterState {
        inputs: Vec::new(),
        mesh_config: std::sync::Arc::new(mesh),
    });
    assert_eq!(decision, allowed_without_warnings());
}

#[test]
fn a_second_namespace_wide_telemetry_is_denied() {
    let second = TRACING_TELEMETRY
        .replace("mesh-default", "other")
        .replace("zipkin", "envoy")
        .replace("tracing", "accessLogging");
    let decision = decide_create(
        &second,
        &[&TRACING_TELEMETRY
            .replace("zipkin", "envoy")
            .replace("tracing", "accessLogging")],
    );
    let message = denied_message(&decision);
    assert!(
        message.contains("Telemetry istio-system/other: spec.selector: namespace istio-system already has a Telemetry without selector or targetRefs (Telemetry istio-system/mesh-default)"),
        "{message}"
    );
}
