//! An incremental update must always equal a full build.

use std::sync::Arc;

use super::*;
use crate::{Transition, ViewResources};
use weft_config::testing::{
    docs, mk_destination_rule, mk_service_entry, mk_snapshot, mk_virtual_service,
};
use weft_translate::ProxyView;

fn views() -> Vec<ProxyView> {
    let router = |ns: &str| ProxyView {
        namespace: ns.to_string(),
        router_address: Some(("127.0.0.1".to_string(), 15080)),
        ..Default::default()
    };
    vec![router("default"), router("other"), ProxyView::default()]
}

fn base(reviews_weights: (u32, u32), reviews_versions: &[&str]) -> String {
    docs(&[
        mk_service_entry("reviews", reviews_versions),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_service_entry("ratings", &["v1"]),
        mk_destination_rule("ratings", &["v1"]),
        mk_service_entry("details", &["v1"]),
        mk_virtual_service(
            "reviews",
            &format!(
                "  - route:
    - {{destination: {{host: reviews, subset: v1}}, weight: {}}}
    - {{destination: {{host: reviews, subset: v2}}, weight: {}}}
",
                reviews_weights.0, reviews_weights.1
            ),
        ),
        mk_virtual_service(
            "ratings",
            "  - route: [{destination: {host: ratings, subset: v1}}]\n",
        ),
    ])
}

/// Applies the change and checks the update against a full build.
fn check(old: &str, new: &str) -> ChangeSet {
    let old = Arc::new(mk_snapshot(old));
    let mut new_snapshot = mk_snapshot(new);
    new_snapshot.version = old.version + 1;
    let new = Arc::new(new_snapshot);
    let transition = Transition::new(&old, new.clone());
    for view in views() {
        let previous = ViewResources::build(&old, &view);
        let updated = previous.update(&transition, &view);
        assert_eq!(
            updated,
            ViewResources::build(&new, &view),
            "update == full build for {view:?}"
        );
    }
    transition.changes.clone()
}

fn hosts(names: &[&str]) -> std::collections::BTreeSet<String> {
    names
        .iter()
        .map(|n| format!("{n}.default.svc.cluster.local"))
        .collect()
}

#[test]
fn endpoint_churn_touches_endpoints_only() {
    let changes = check(
        &base((80, 20), &["v1", "v2"]),
        &base((80, 20), &["v1", "v2", "v2"]),
    );
    assert_eq!(changes.endpoints, hosts(&["reviews"]));
    assert!(
        changes.clusters.is_empty()
            && changes.routes.is_empty()
            && !changes.listeners
            && !changes.all_routes
    );
}

#[test]
fn a_virtual_service_edit_touches_its_hosts_routes_only() {
    let changes = check(
        &base((80, 20), &["v1", "v2"]),
        &base((50, 50), &["v1", "v2"]),
    );
    assert_eq!(changes.routes, hosts(&["reviews"]));
    assert!(changes.clusters.is_empty() && changes.endpoints.is_empty() && !changes.all_routes);
}

#[test]
fn adding_and_removing_services_and_rules() {
    let more = docs(&[
        base((80, 20), &["v1", "v2"]),
        mk_service_entry("extra", &["v1"]),
    ]);
    let changes = check(&base((80, 20), &["v1", "v2"]), &more);
    assert_eq!(changes.clusters, hosts(&["extra"]));
    check(&more, &base((80, 20), &["v1", "v2"]));
    let without_vs = docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_service_entry("ratings", &["v1"]),
        mk_destination_rule("ratings", &["v1"]),
        mk_service_entry("details", &["v1"]),
    ]);
    check(&base((80, 20), &["v1", "v2"]), &without_vs);
    check(&without_vs, &base((80, 20), &["v1", "v2"]));
}

#[test]
fn destination_rule_and_wildcard_changes() {
    let old = base((100, 0), &["v1", "v2"]);
    let new_rule = old.replace("subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}", "trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}");
    assert_ne!(old, new_rule);
    let changes = check(&old, &new_rule);
    assert!(
        changes
            .clusters
            .contains("reviews.default.svc.cluster.local")
    );
    let wildcard = docs(&[
        old.clone(),
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all}
spec:
  hosts: ['*.svc.cluster.local']
  http: [{route: [{destination: {host: details}}]}]
"
        .to_string(),
    ]);
    assert!(check(&old, &wildcard).all_routes);
}

#[test]
fn nothing_changed_is_an_empty_change_set() {
    let changes = check(
        &base((80, 20), &["v1", "v2"]),
        &base((80, 20), &["v1", "v2"]),
    );
    assert!(changes.is_empty());
}

#[test]
fn the_assembled_router_decodes_to_what_translation_built() {
    use prost::Message;
    use weft_envoy_api::pb::envoy::config::route::v3::RouteConfiguration;

    let snapshot = mk_snapshot(&base((80, 20), &["v1", "v2"]));
    let view = &views()[0];
    let resources = ViewResources::build(&snapshot, view);
    let selected = resources.select(crate::TypeUrl::RouteConfiguration, None);
    let decoded = RouteConfiguration::decode(selected[0].1.any.value.as_slice()).unwrap();
    assert_eq!(
        decoded,
        weft_translate::build_route_configs(&snapshot, view)[0]
    );
}

#[test]
fn mirrors_delegates_and_gateways_update_like_full_builds() {
    let gateway = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ['*']
"
    .to_string();
    let mesh = |mirror_to: &str, weight: u32| {
        docs(&[
            base((weight, 100 - weight), &["v1", "v2"]),
            gateway.clone(),
            mk_virtual_service(
                "details",
                &format!(
                    "  - route: [{{destination: {{host: details}}}}]\n    mirror: {{host: {mirror_to}}}\n"
                ),
            ),
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: [shop.example.com]
  gateways: [edge]
  http: [{route: [{destination: {host: reviews, port: {number: 9080}}}]}]
"
            .to_string(),
        ])
    };
    let gateway_view = ProxyView {
        role: weft_translate::ProxyRole::Gateway,
        labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
        ..Default::default()
    };
    for (old, new) in [
        (mesh("ratings", 80), mesh("reviews", 80)),
        (mesh("ratings", 80), mesh("ratings", 50)),
        (mesh("ratings", 80), base((80, 20), &["v1", "v2"])),
    ] {
        check(&old, &new);
        let old = Arc::new(mk_snapshot(&old));
        let mut next = mk_snapshot(&new);
        next.version = old.version + 1;
        let transition = Transition::new(&old, Arc::new(next.clone()));
        let previous = ViewResources::build(&old, &gateway_view);
        assert_eq!(
            previous.update(&transition, &gateway_view),
            ViewResources::build(&next, &gateway_view)
        );
    }
}

#[test]
fn endpoints_gaining_a_sidecar_or_identity_rebuild_clusters_and_policies_rebuild_all() {
    let old = base((80, 20), &["v1", "v2"]);
    let with_sidecar = old.replace(
        "{address: 10.0.0.1, labels: {version: v1}}",
        "{address: 10.0.0.1, serviceAccount: reviews, labels: {version: v1, security.istio.io/tlsMode: istio}}",
    );
    assert_ne!(old, with_sidecar, "the fixture has the endpoint to mark");
    let changes = check(&old, &with_sidecar);
    assert!(
        changes
            .clusters
            .contains("reviews.default.svc.cluster.local")
    );
    let strict = docs(&[
        with_sidecar.clone(),
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: DISABLE}}
"
        .to_string(),
    ]);
    assert!(check(&with_sidecar, &strict).full);
}
