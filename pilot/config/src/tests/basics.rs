//! VirtualService, DestinationRule and ServiceEntry basics, and the store's
//! last-good behaviour.

use super::*;

#[test]
fn converts_matches_weights_timeouts_and_retries() {
    let snapshot = mk_snapshot(&reviews_mesh(
        "  - match:
    - uri: {prefix: /api}
      method: {exact: GET}
      headers: {End-User: {regex: 'j.*'}}
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2, port: {number: 9080}}, weight: 20}
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 100ms, retryOn: '5xx,503'}
",
    ));
    let vs = &snapshot.virtual_services[0];
    assert_eq!(vs.hosts, ["reviews.default.svc.cluster.local"]);
    let route = &vs.http[0];
    let m = &route.matches[0];
    assert_eq!(m.uri, Some(StringMatch::Prefix("/api".into())));
    assert_eq!(m.method, Some(StringMatch::Exact("GET".into())));
    assert_eq!(
        m.headers,
        [("end-user".to_string(), StringMatch::Regex("j.*".into()))]
    );
    assert_eq!(
        route.destinations[0].host,
        "reviews.default.svc.cluster.local"
    );
    assert_eq!(route.destinations[1].port, Some(9080));
    assert_eq!(route.timeout, Some(std::time::Duration::from_millis(1500)));
    let retries = route.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, 3);
    assert_eq!(
        retries.per_try_timeout,
        Some(std::time::Duration::from_millis(100))
    );
    assert_eq!(retries.retry_on, ["5xx", "503"]);
}

#[test]
fn a_single_destination_without_weight_takes_all_traffic() {
    let snapshot = mk_snapshot(&reviews_mesh(
        "  - route: [{destination: {host: reviews}}]\n",
    ));
    assert_eq!(
        snapshot.virtual_services[0].http[0].destinations[0].weight,
        100
    );
}

#[test]
fn weights_must_sum_to_100() {
    let errors = errors_of(&reviews_mesh(
        "  - route:
    - {destination: {host: reviews, subset: v1}, weight: 100}
    - {destination: {host: reviews, subset: v2}, weight: 50}
",
    ));
    assert_eq!(
        errors,
        [
            "mesh.yaml: document 2: VirtualService default/reviews: spec.http[0].route: destination weights sum to 150; they must sum to 100"
        ]
    );
}

#[test]
fn an_undefined_subset_is_named_with_its_rule() {
    let errors = errors_of(&reviews_mesh(
        "  - route: [{destination: {host: reviews, subset: v9}}]\n",
    ));
    assert_eq!(
        errors,
        [
            "mesh.yaml: document 2: VirtualService default/reviews: spec.http[0].route[0].destination.subset: subset v9 is not defined by DestinationRule default/reviews for reviews.default.svc.cluster.local"
        ]
    );
    let without_rule = docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_virtual_service(
            "reviews",
            "  - route: [{destination: {host: reviews, subset: v1}}]\n",
        ),
    ]);
    assert!(errors_of(&without_rule)[0].contains("not defined by any DestinationRule"));
}

#[test]
fn bad_regexes_header_names_and_retry_conditions_are_rejected() {
    let errors = errors_of(&reviews_mesh(
        "  - match:
    - uri: {regex: '(unclosed'}
      headers: {'bad header': {exact: x}}
    route: [{destination: {host: reviews}}]
    retries: {attempts: 2, retryOn: 'sometimes'}
",
    ));
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").nth(3).unwrap_or(""))
        .collect();
    assert!(
        fields.contains(&"spec.http[0].match[0].uri.regex"),
        "{errors:#?}"
    );
    assert!(
        fields.contains(&"spec.http[0].match[0].headers.bad header"),
        "{errors:#?}"
    );
    assert!(
        fields.contains(&"spec.http[0].retries.retryOn"),
        "{errors:#?}"
    );
}

#[test]
fn a_bad_duration_names_its_field() {
    let errors = errors_of(&reviews_mesh(
        "  - route: [{destination: {host: reviews}}]\n    timeout: soon\n",
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("spec.http[0].timeout"), "{errors:#?}");
}

#[test]
fn untranslated_fields_are_reported_not_ignored() {
    let errors = errors_of(&reviews_mesh(
        "  - route: [{destination: {host: reviews}}]
    fault:
      abort: {http2Error: PROTOCOL_ERROR, percentage: {value: 1}}
      delay: {exponentialDelay: 1s}
",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.http[0].fault.abort.http2Error: not supported")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.http[0].fault.delay.exponentialDelay: not supported")),
        "{errors:#?}"
    );
}

#[test]
fn destination_rules_set_load_balancers_per_subset() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        "apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}}
"
        .to_string(),
    ]));
    let rule = &snapshot.destination_rules["reviews.default.svc.cluster.local"];
    let simple = |p: LbPolicy| Some(LoadBalancer::simple(p));
    assert_eq!(rule.load_balancer_for(None), simple(LbPolicy::Random));
    assert_eq!(
        rule.load_balancer_for(Some(&rule.subsets[1])),
        simple(LbPolicy::LeastRequest)
    );
    assert_eq!(
        rule.load_balancer_for(Some(&rule.subsets[0])),
        simple(LbPolicy::Random)
    );
}

#[test]
fn dns_service_entries_resolve_their_own_hosts() {
    let snapshot = mk_snapshot(
        "apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.example.com, www.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}]
",
    );
    let api = &snapshot.services["api.example.com"];
    assert_eq!(api.resolution, Resolution::Dns);
    assert_eq!(api.endpoints[0].address, "api.example.com");
    assert_eq!(
        snapshot.services["www.example.com"].endpoints[0].address,
        "www.example.com"
    );
}

#[test]
fn static_endpoints_must_be_ip_addresses() {
    let errors = errors_of(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: db.example.com}]
",
    );
    assert!(
        errors[0].contains("spec.endpoints[0].address"),
        "{errors:#?}"
    );
}

#[test]
fn a_bad_edit_keeps_the_last_good_version() {
    let mut store = ConfigStore::default();
    let good = reviews_mesh("  - route: [{destination: {host: reviews, subset: v1}}]\n");
    let first = store.apply(mk_inputs(&good));
    assert!(first.errors.is_empty());

    let bad = reviews_mesh("  - route: [{destination: {host: reviews, subset: v9}}]\n");
    let second = store.apply(mk_inputs(&bad));
    assert_eq!(second.errors.len(), 1);
    assert!(!second.changed, "the mesh still serves the good version");
    assert_eq!(
        second.kept,
        [ResourceId::new(
            weft_crds::Kind::VirtualService,
            "default",
            "reviews"
        )]
    );
    assert_eq!(
        second.snapshot.virtual_services[0].http[0].destinations[0]
            .subset
            .as_deref(),
        Some("v1")
    );

    let unparseable =
        reviews_mesh("  - route: [{destination: {host: reviews}}]\n    timeout: soon\n");
    let third = store.apply(mk_inputs(&unparseable));
    assert!(!third.changed);

    let fixed = reviews_mesh("  - route: [{destination: {host: reviews, subset: v2}}]\n");
    let fourth = store.apply(mk_inputs(&fixed));
    assert!(fourth.changed && fourth.errors.is_empty());
    assert_eq!(fourth.snapshot.version, first.snapshot.version + 1);
}

#[test]
fn a_file_that_is_not_yaml_keeps_what_it_held() {
    let mut store = ConfigStore::default();
    let good = reviews_mesh("  - route: [{destination: {host: reviews, subset: v1}}]\n");
    store.apply(mk_inputs(&good));
    let applied = store.apply(mk_inputs("kind: [unclosed\n"));
    assert_eq!(applied.errors.len(), 1);
    assert!(
        applied.errors[0]
            .to_string()
            .starts_with("mesh.yaml: document 0: not valid YAML")
    );
    assert!(!applied.changed);
    assert_eq!(applied.kept.len(), 3);
}

#[test]
fn removing_a_resource_removes_it() {
    let mut store = ConfigStore::default();
    store.apply(mk_inputs(&reviews_mesh(
        "  - route: [{destination: {host: reviews}}]\n",
    )));
    let applied = store.apply(mk_inputs(&mk_service_entry("reviews", &["v1"])));
    assert!(applied.changed);
    assert!(applied.snapshot.virtual_services.is_empty());
    assert!(applied.snapshot.destination_rules.is_empty());
}

#[test]
fn duplicates_and_other_kinds_are_reported() {
    let se = mk_service_entry("reviews", &["v1"]);
    let workload_entry = "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm}
spec: {address: 10.0.0.9}
"
    .to_string();
    let errors = errors_of(&docs(&[se.clone(), se, workload_entry]));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("document 1: ServiceEntry default/reviews: metadata.name: ServiceEntry default/reviews is defined twice"));
    assert!(errors[1].contains("document 2: kind: WorkloadEntry is not a kind Weft serves"));
}
