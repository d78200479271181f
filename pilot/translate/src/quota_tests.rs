//! Quota translation: which workloads get a filter, the descriptors'
//! precedence, and the outbound `x-weft-source` header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::Message;
use weft_envoy_api::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;

use super::*;
use weft_config::testing::mk_snapshot;

const RATINGS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: prod}
spec:
  hosts: [ratings.prod.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - address: 10.0.0.1
    ports: {http: 15006}
    labels: {app: ratings, security.istio.io/tlsMode: istio}
---
apiVersion: policy.weft.dev/v1alpha1
kind: Quota
metadata: {name: ratings, namespace: prod}
spec:
  destination: {host: ratings}
  maxAmount: 5
  validDuration: 10s
  overrides:
  - match: {sourceNamespace: prod}
    maxAmount: 3
    validDuration: 1s
  - match: {sourceLabels: {version: v3}}
    maxAmount: 1
    validDuration: 5s
";

fn view(labels: &[(&str, &str)]) -> ProxyView {
    ProxyView {
        namespace: "prod".to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn local(filter: &HttpFilter) -> LocalRateLimit {
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("no config")
    };
    LocalRateLimit::decode(any.value.as_slice()).unwrap()
}

#[test]
fn only_instances_of_the_destination_on_its_port_get_the_filter() {
    let snapshot = mk_snapshot(RATINGS);
    assert_eq!(snapshot.quotas.len(), 1);
    let ratings = view(&[("app", "ratings")]);
    assert_eq!(quota_filters(&snapshot, &ratings, 15006).len(), 1);
    assert!(quota_filters(&snapshot, &ratings, 9999).is_empty());
    assert!(quota_filters(&snapshot, &view(&[("app", "reviews")]), 15006).is_empty());
    let mut elsewhere = ratings.clone();
    elsewhere.namespace = "dev".to_string();
    assert!(quota_filters(&snapshot, &elsewhere, 15006).is_empty());
}

#[test]
fn descriptors_follow_precedence_and_exclude_higher_overrides() {
    let snapshot = mk_snapshot(RATINGS);
    let filters = quota_filters(&snapshot, &view(&[("app", "ratings")]), 15006);
    let config = local(&filters[0]);
    assert_eq!(
        config
            .filter_enforced
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        100
    );
    assert!(!config.always_consume_default_token_bucket.unwrap().value);
    assert_eq!(
        config.enable_x_ratelimit_headers,
        XRateLimitHeadersRfcVersion::DraftVersion03 as i32
    );
    type Described = (Vec<(String, String)>, u32, u64);
    let described: Vec<Described> = config
        .descriptors
        .iter()
        .map(|d| {
            let bucket = d.token_bucket.unwrap();
            (
                d.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.clone()))
                    .collect(),
                bucket.max_tokens,
                bucket.fill_interval.unwrap().seconds as u64,
            )
        })
        .collect();
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    // Labels (o1) rank above namespace (o0); the default excludes both.
    assert_eq!(
        described,
        vec![
            (
                vec![kv("quota", "prod/ratings"), kv("override", "o1")],
                1,
                5
            ),
            (
                vec![
                    kv("quota", "prod/ratings"),
                    kv("override", "o0"),
                    kv("not", "o1")
                ],
                3,
                1
            ),
            (
                vec![
                    kv("quota", "prod/ratings"),
                    kv("not", "o1"),
                    kv("not", "o0")
                ],
                5,
                10
            ),
        ]
    );
    // The rate_limits generate exactly those entries.
    assert_eq!(config.rate_limits.len(), 3);
    for (limit, descriptor) in config.rate_limits.iter().zip(&config.descriptors) {
        assert_eq!(entries(&limit.actions), descriptor.entries);
    }
    // Labels are trusted only with a client certificate.
    let o1 = match &config.rate_limits[0].actions[1].action_specifier {
        Some(ActionSpecifier::HeaderValueMatch(h)) => h.headers.clone(),
        other => panic!("{other:?}"),
    };
    let names: Vec<_> = o1.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["x-forwarded-client-cert", "x-weft-source"]);
}

#[test]
fn global_quotas_ask_the_quota_service_and_parse_back() {
    let yaml = RATINGS.replace(
        "  validDuration: 10s\n",
        "  validDuration: 10s\n  scope: Global\n  failureMode: Closed\n",
    );
    let snapshot = mk_snapshot(&yaml);
    let filters = quota_filters(&snapshot, &view(&[("app", "ratings")]), 15006);
    assert_eq!(filters[0].name, "envoy.filters.http.ratelimit");
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filters[0].config_type else {
        panic!("no config")
    };
    let config = RateLimitFilter::decode(any.value.as_slice()).unwrap();
    assert!(config.failure_mode_deny);
    assert_eq!(config.domain, QUOTA_DOMAIN);
    let parsed: Vec<_> = config
        .rate_limits
        .iter()
        .map(|r| {
            let entries = entries(&r.actions);
            parse_descriptor(entries.iter().map(|e| (e.key.as_str(), e.value.as_str())))
        })
        .collect();
    assert_eq!(
        parsed,
        vec![
            Some(("prod/ratings".to_string(), Some(1))),
            Some(("prod/ratings".to_string(), Some(0))),
            Some(("prod/ratings".to_string(), None)),
        ]
    );
}

#[test]
fn source_header_lists_sorted_labels_and_regexes_are_escaped() {
    let labels = [("version", "v3"), ("app", "reviews")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(source_header_value(&labels), "app=reviews;version=v3");
    assert_eq!(regex_escape("a.b/c"), "a\\.b/c");
}

const RATINGS_SIDECAR: &str = "---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings, namespace: prod}
spec:
  workloadSelector: {labels: {app: ratings}}
  ingress:
  - port: {number: 15006, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:9080
";

/// Every override's match needs `x-forwarded-client-cert`, which only
/// mTLS chains carry: a plain-text caller's `x-weft-source` (or forged
/// certificate header) never selects an override.
#[test]
fn every_override_needs_a_client_certificate() {
    let yaml = RATINGS.replace(
        "  - match: {sourceLabels: {version: v3}}\n",
        "  - match: {sourceLabels: {version: v3}}\n    maxAmount: 2\n    validDuration: 5s\n  - match: {sourcePrincipal: \"spiffe://cluster.local/ns/prod/sa/a\", sourceNamespace: prod}\n",
    );
    let snapshot = mk_snapshot(&yaml);
    let filters = quota_filters(&snapshot, &view(&[("app", "ratings")]), 15006);
    let config = local(&filters[0]);
    let mut overrides = 0;
    for limit in &config.rate_limits {
        for a in &limit.actions {
            let Some(ActionSpecifier::HeaderValueMatch(h)) = &a.action_specifier else {
                continue;
            };
            if h.descriptor_key != KEY_OVERRIDE {
                continue;
            }
            overrides += 1;
            assert!(
                h.headers.iter().any(|m| m.name == XFCC),
                "{h:?} matches without a client certificate"
            );
        }
    }
    assert_eq!(overrides, 3);
}

/// Inbound HTTP chains: the plain-text chain sanitizes
/// `x-forwarded-client-cert` and sets none; every chain removes
/// `x-weft-source` (in the router, after the quota filter read it).
#[test]
fn inbound_chains_strip_the_source_header_and_plain_text_has_no_certificate() {
    use weft_envoy_api::pb::envoy::config::listener::v3::filter::ConfigType;
    use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager::ForwardClientCertDetails,
        http_connection_manager::RouteSpecifier,
    };
    let snapshot = mk_snapshot(&format!("{RATINGS}{RATINGS_SIDECAR}"));
    let listeners = crate::build_listeners(&snapshot, &view(&[("app", "ratings")]));
    let inbound = listeners
        .iter()
        .find(|l| l.name == "0.0.0.0_15006")
        .expect("the inbound listener");
    let mut chains = Vec::new();
    for chain in &inbound.filter_chains {
        let Some(ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
            panic!("no config")
        };
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        assert_eq!(
            hcm.forward_client_cert_details,
            ForwardClientCertDetails::SanitizeSet as i32
        );
        let Some(RouteSpecifier::RouteConfig(routes)) = &hcm.route_specifier else {
            panic!("no inline routes")
        };
        assert_eq!(routes.request_headers_to_remove, [SOURCE_HEADER]);
        let names: Vec<_> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&LOCAL_FILTER), "{names:?}");
        chains.push((
            chain.name.clone(),
            hcm.set_current_client_cert_details.is_some(),
        ));
    }
    assert_eq!(
        chains,
        [("mtls".to_string(), true), ("plaintext".to_string(), false)]
    );
}

#[test]
fn closed_global_quotas_answer_503_when_the_service_is_unreachable() {
    let yaml = RATINGS.replace(
        "  validDuration: 10s\n",
        "  validDuration: 10s\n  scope: Global\n  failureMode: Closed\n",
    );
    let snapshot = mk_snapshot(&yaml);
    let filters = quota_filters(&snapshot, &view(&[("app", "ratings")]), 15006);
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filters[0].config_type else {
        panic!("no config")
    };
    let config = RateLimitFilter::decode(any.value.as_slice()).unwrap();
    assert_eq!(config.status_on_error.map(|s| s.code), Some(503));
}
