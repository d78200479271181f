//! Every HTTP feature of VirtualService, translated.

use prost::Message;
use weft_envoy_api::pb::envoy::config::route::v3::{
    query_parameter_matcher::QueryParameterMatchSpecifier, redirect_action::RedirectResponseCode,
    route_action::HostRewriteSpecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as PbCors;
use weft_envoy_api::pb::envoy::extensions::filters::http::fault::v3::{
    HttpFault, fault_abort::ErrorType,
};

use super::*;
use weft_model::RouteContext;

fn routes_of(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<Route> {
    let mut storage = Vec::new();
    vhost(snapshot, view, &mut storage, REVIEWS).routes.clone()
}

fn labelled(namespace: &str, labels: &[(&str, &str)]) -> ProxyView {
    let mut view = router_view(namespace);
    view.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    view
}

#[test]
fn request_conditions_become_envoy_matchers() {
    let snapshot = reviews(
        "  - match:
    - authority: {exact: 'reviews:9080'}
      scheme: {exact: http}
      queryParams: {id: {regex: '[0-9]+'}, flag: {}, tag: {prefix: ab}}
      withoutHeaders: {x-block: {}, x-user: {exact: bob}}
    route: [{destination: {host: reviews, subset: v2}}]
",
    );
    let routes = routes_of(&snapshot, &router_view("default"));
    let m = routes[0].r#match.as_ref().unwrap();
    let names: Vec<(&str, bool)> = m
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.invert_match))
        .collect();
    assert_eq!(
        names,
        [
            (":authority", false),
            (":scheme", false),
            ("x-block", true),
            ("x-user", true)
        ]
    );
    assert_eq!(
        m.headers[2].header_match_specifier,
        Some(HeaderMatchSpecifier::PresentMatch(true))
    );
    let params: Vec<&str> = m.query_parameters.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(params, ["flag", "id", "tag"], "sorted by name");
    assert_eq!(
        m.query_parameters[0].query_parameter_match_specifier,
        Some(QueryParameterMatchSpecifier::PresentMatch(true))
    );
    assert!(matches!(
        &m.query_parameters[2].query_parameter_match_specifier,
        Some(QueryParameterMatchSpecifier::StringMatch(s)) if s.match_pattern == Some(MatchPattern::Prefix("ab".into()))
    ));
}

const SOURCE_RULES: &str = "  - match: [{sourceNamespace: prod}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{sourceLabels: {track: canary}}, {gateways: [ingress]}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{gateways: [mesh], uri: {prefix: /m}}]
    route: [{destination: {host: reviews, subset: v1}}]
";

#[test]
fn source_conditions_are_checked_per_proxy() {
    let snapshot = reviews(SOURCE_RULES);
    let count = |view: &ProxyView| routes_of(&snapshot, view).len();
    // Every proxy: the `mesh` match, then the default route.
    assert_eq!(count(&router_view("default")), 2);
    assert_eq!(count(&router_view("prod")), 3, "sourceNamespace holds");
    assert_eq!(count(&labelled("default", &[("track", "canary")])), 3);
    assert_eq!(count(&labelled("default", &[("track", "stable")])), 2);
    assert_eq!(
        count(&labelled("prod", &[("track", "canary"), ("x", "y")])),
        4
    );
}

#[test]
fn gateway_contexts_select_rules_and_matches() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service("reviews", SOURCE_RULES).replace(
            "  hosts: [reviews]\n",
            "  hosts: [reviews]\n  gateways: [mesh, ingress]\n",
        ),
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
"
        .to_string(),
    ]));
    let view = router_view("default");
    let host = "reviews.default.svc.cluster.local";
    let at_gateway = super::super::route::build_http_routes(
        &snapshot,
        &view,
        host,
        9080,
        RouteContext {
            gateway: Some("default/ingress"),
        },
    );
    assert_eq!(at_gateway.len(), 1, "only the match naming the gateway");
    let in_mesh =
        super::super::route::build_http_routes(&snapshot, &view, host, 9080, RouteContext::MESH);
    assert_eq!(in_mesh.len(), 1, "only the match naming mesh");
    let elsewhere = super::super::route::build_http_routes(
        &snapshot,
        &view,
        host,
        9080,
        RouteContext {
            gateway: Some("default/other"),
        },
    );
    assert!(
        elsewhere.is_empty(),
        "the VirtualService is not bound there"
    );
}

#[test]
fn export_to_hides_virtual_services_from_other_namespaces() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service(
            "reviews",
            "  - route: [{destination: {host: reviews, subset: v2}}]\n",
        )
        .replace(
            "  hosts: [reviews]\n",
            "  hosts: [reviews]\n  exportTo: [.]\n",
        ),
    ]));
    assert_eq!(routes_of(&snapshot, &router_view("default"))[0].name, "");
    let other = routes_of(&snapshot, &router_view("other"));
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].name, "default", "only the default route");
}

#[test]
fn fault_and_cors_are_per_route_filter_config() {
    let snapshot = reviews(
            "  - corsPolicy: {allowOrigins: [{exact: 'https://a.example'}], allowMethods: [GET, PUT], maxAge: 2m, allowCredentials: true}
    fault:
      delay: {fixedDelay: 1.5s, percentage: {value: 0.5}}
      abort: {httpStatus: 418, percentage: {value: 50}}
    route: [{destination: {host: reviews, subset: v1}}]
",
        );
    let routes = routes_of(&snapshot, &router_view("default"));
    let route = &routes[0];
    assert_eq!(route.typed_per_filter_config.len(), 1, "one entry per map");
    let cors = PbCors::decode(
        route.typed_per_filter_config["envoy.filters.http.cors"]
            .value
            .as_slice(),
    )
    .unwrap();
    assert_eq!(cors.allow_methods, "GET,PUT");
    assert_eq!(cors.max_age, "120");
    assert_eq!(cors.allow_credentials.map(|b| b.value), Some(true));
    assert_eq!(
        cors.forward_not_matching_preflights.map(|b| b.value),
        Some(true)
    );
    let Some(ClusterSpecifier::WeightedClusters(w)) = &action(route).cluster_specifier else {
        panic!("a fault makes a weighted cluster to carry it")
    };
    let fault = HttpFault::decode(
        w.clusters[0].typed_per_filter_config["envoy.filters.http.fault"]
            .value
            .as_slice(),
    )
    .unwrap();
    let abort = fault.abort.unwrap();
    assert_eq!(abort.error_type, Some(ErrorType::HttpStatus(418)));
    assert_eq!(abort.percentage.unwrap().numerator, 500_000);
    assert_eq!(fault.delay.unwrap().percentage.unwrap().numerator, 5_000);

    let listener = &build_listeners(&snapshot, &router_view("default"))[0];
    let filter = &listener.filter_chains[0].filters[0];
    let Some(weft_envoy_api::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
        &filter.config_type
    else {
        panic!()
    };
    let hcm = weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.cors",
            "envoy.filters.http.fault",
            "envoy.filters.http.router"
        ]
    );
}

#[test]
fn redirects_direct_responses_rewrites_and_mirrors() {
    let snapshot = reviews(
            "  - match: [{uri: {exact: /r}}]
    redirect: {uri: /new, authority: example.org, derivePort: FROM_REQUEST_PORT, scheme: https, redirectCode: 308}
  - match: [{uri: {exact: /d}}]
    directResponse: {status: 418, body: {string: teapot}}
  - rewrite: {uri: /v2, authority: backend}
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 25}
",
        );
    let routes = routes_of(&snapshot, &router_view("default"));
    let Some(Action::Redirect(r)) = &routes[0].action else {
        panic!("{:?}", routes[0].action)
    };
    assert_eq!(r.host_redirect, "example.org");
    assert_eq!(r.port_redirect, 9080, "the request's port");
    assert_eq!(
        r.response_code,
        RedirectResponseCode::PermanentRedirect as i32
    );
    let Some(Action::DirectResponse(d)) = &routes[1].action else {
        panic!()
    };
    assert_eq!(d.status, 418);
    let a = action(&routes[2]);
    assert_eq!(a.prefix_rewrite, "/v2");
    assert_eq!(
        a.host_rewrite_specifier,
        Some(HostRewriteSpecifier::HostRewriteLiteral("backend".into()))
    );
    assert_eq!(a.request_mirror_policies.len(), 1);
    let mirror = &a.request_mirror_policies[0];
    assert_eq!(
        mirror.cluster,
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    let fraction = mirror.runtime_fraction.as_ref().unwrap();
    assert_eq!(fraction.default_value.as_ref().unwrap().numerator, 250_000);
}

#[test]
fn header_rules_go_on_routes_and_weighted_clusters() {
    let snapshot = reviews(
            "  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 50, headers: {request: {set: {x-d: one}}, response: {remove: [x-r]}}}
    - {destination: {host: reviews, subset: v2}, weight: 50}
  - headers: {request: {set: {x-s: s}, add: {x-a: a}, remove: [x-gone]}, response: {add: {x-resp: r}}}
    route: [{destination: {host: reviews, subset: v1}, headers: {request: {set: {x-only: o}}}}]
",
        );
    let routes = routes_of(&snapshot, &router_view("default"));
    let Some(ClusterSpecifier::WeightedClusters(w)) = &action(&routes[0]).cluster_specifier else {
        panic!()
    };
    let set = &w.clusters[0].request_headers_to_add[0];
    assert_eq!(set.header.as_ref().unwrap().key, "x-d");
    assert_eq!(
            set.append_action,
            weft_envoy_api::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        );
    assert_eq!(w.clusters[0].response_headers_to_remove, ["x-r"]);
    assert!(w.clusters[1].request_headers_to_add.is_empty());
    let single = &routes[1];
    let keys: Vec<(&str, i32)> = single
        .request_headers_to_add
        .iter()
        .map(|h| (h.header.as_ref().unwrap().key.as_str(), h.append_action))
        .collect();
    assert_eq!(
        keys,
        [("x-only", 2), ("x-s", 2), ("x-a", 0)],
        "set (overwrite), then add (append); the only destination's rules join the route's"
    );
    assert_eq!(single.request_headers_to_remove, ["x-gone"]);
    assert_eq!(
        single.response_headers_to_add[0]
            .header
            .as_ref()
            .unwrap()
            .key,
        "x-resp"
    );
}

#[test]
fn retry_options_follow_istio() {
    let snapshot = reviews(
            "  - route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 3, retryRemoteLocalities: true, retryIgnorePreviousHosts: false, backoff: 100ms}
",
        );
    let routes = routes_of(&snapshot, &router_view("default"));
    let retry = action(&routes[0]).retry_policy.as_ref().unwrap();
    assert_eq!(
        retry.retry_priority.as_ref().unwrap().name,
        "envoy.retry_priorities.previous_priorities"
    );
    assert!(retry.retry_host_predicate.is_empty());
    assert_eq!(
        retry.retry_back_off.as_ref().unwrap().base_interval,
        Some(pb_duration(std::time::Duration::from_millis(100)))
    );
}

#[test]
fn every_cluster_a_feature_names_is_sent() {
    let snapshot = mk_snapshot(&docs(&[
            mk_service_entry("reviews", &["v1", "v2"]),
            mk_destination_rule("reviews", &["v1", "v2"]),
            mk_service_entry("ratings", &["v1"]),
            mk_destination_rule("ratings", &["v1"]),
            mk_virtual_service(
                "reviews",
                "  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v1}, weight: 30}, {destination: {host: ratings, subset: v1}, weight: 70}]
    fault: {delay: {fixedDelay: 1s}}
    mirrors: [{destination: {host: ratings, subset: v1}, percentage: {value: 5}}]
  - match: [{uri: {exact: /r}}]
    redirect: {uri: /a}
  - route: [{destination: {host: reviews, subset: v2}}]
    mirror: {host: ratings}
",
            ),
        ]));
    let problems = check_consistency(&snapshot, &router_view("default"));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn routes_with_every_feature_encode_the_same_bytes_every_time() {
    let snapshot = reviews(
        "  - corsPolicy: {allowOrigins: [{exact: 'https://a.example'}]}
    fault: {abort: {httpStatus: 500, percentage: {value: 1}}}
    headers: {request: {set: {b: '2', a: '1'}}}
    route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
",
    );
    let view = router_view("default");
    let first = build_route_configs(&snapshot, &view)[0].encode_to_vec();
    for _ in 0..20 {
        assert_eq!(
            build_route_configs(&snapshot, &view)[0].encode_to_vec(),
            first
        );
    }
}
