//! CUSTOM AuthorizationPolicies on fabricated meshes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use prost::Message;
use weft_envoy_api::pb::envoy::extensions::filters::http::ext_authz::v3::{
    ExtAuthz as ExtAuthzFilter, ext_authz::Services,
};
use weft_envoy_api::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};

use super::custom_filters;
use crate::ProxyView;
use weft_config::{ConfigStore, parse_mesh_config, testing::mk_inputs};
use weft_model::{MeshSnapshot, policies_for};

const MESH: &str = "extensionProviders:
- name: authz-http
  envoyExtAuthzHttp:
    service: authz.foo.svc.cluster.local
    port: 8000
    timeout: 2s
    pathPrefix: /check
    failOpen: true
    statusOnError: '503'
    includeRequestHeadersInCheck: [x-ext-authz, 'x-user-*']
    headersToUpstreamOnAllow: [x-authz-result]
- name: authz-grpc
  envoyExtAuthzGrpc:
    service: authz.foo.svc.cluster.local
    port: 9000
- name: tracer
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
";

const CONFIG: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: authz, namespace: foo}
spec:
  hosts: [authz.foo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8000, name: http, protocol: HTTP}
  - {number: 9000, name: grpc, protocol: GRPC}
  endpoints: [{address: 10.0.0.9}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: http, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: authz-http}
  rules: [{to: [{operation: {paths: ['/admin*']}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: grpc, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: authz-grpc}
  rules: [{to: [{operation: {methods: [POST]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: wrong-kind, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: tracer}
  rules: [{to: [{operation: {paths: ['/x']}}]}]
";

fn snapshot() -> (MeshSnapshot, Vec<String>) {
    let mut store = ConfigStore::default();
    store.set_mesh_config(parse_mesh_config(MESH).unwrap());
    let applied = store.apply(mk_inputs(CONFIG));
    let errors = applied
        .errors
        .iter()
        .map(|e| format!("{} {}", e.resource.as_ref().unwrap(), e.error.field))
        .collect();
    ((*applied.snapshot).clone(), errors)
}

fn filters(snapshot: &MeshSnapshot) -> Vec<HttpFilter> {
    let view = ProxyView {
        namespace: "foo".into(),
        ..Default::default()
    };
    let policies = policies_for(
        &snapshot.authorization_policies,
        &snapshot.mesh_config.root_namespace,
        "foo",
        &BTreeMap::new(),
    );
    custom_filters(snapshot, &view, &policies)
}

fn config<M: Message + Default>(filter: &HttpFilter) -> M {
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("no typed config");
    };
    M::decode(any.value.as_slice()).unwrap()
}

#[test]
fn each_provider_gets_shadow_rules_and_its_authorizer() {
    let (snapshot, errors) = snapshot();
    // The policy naming a tracer is reported, and still applies.
    assert_eq!(
        errors,
        ["AuthorizationPolicy foo/wrong-kind spec.provider.name"]
    );
    let filters = filters(&snapshot);
    let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.rbac",
            "envoy.filters.http.ext_authz",
            "envoy.filters.http.rbac",
            "envoy.filters.http.ext_authz",
            "envoy.filters.http.rbac",
        ]
    );

    // authz-grpc comes first (providers by name).
    let grpc_rbac: RbacFilter = config(&filters[0]);
    assert!(grpc_rbac.rules.is_none());
    assert_eq!(grpc_rbac.shadow_rules_stat_prefix, "istio_ext_authz_");
    let shadow = grpc_rbac.shadow_rules.unwrap();
    assert_eq!(
        shadow.policies.keys().collect::<Vec<_>>(),
        ["istio-ext-authz-authz-grpc-ns[foo]-policy[grpc]-rule[0]"]
    );
    let grpc: ExtAuthzFilter = config(&filters[1]);
    let Some(Services::GrpcService(service)) = &grpc.services else {
        panic!("{grpc:?}");
    };
    assert_eq!(service.timeout.as_ref().unwrap().seconds, 600);

    let http: ExtAuthzFilter = config(&filters[3]);
    assert!(http.failure_mode_allow);
    assert_eq!(http.status_on_error.unwrap().code, 503);
    let Some(Services::HttpService(service)) = &http.services else {
        panic!("{http:?}");
    };
    assert_eq!(service.path_prefix, "/check");
    let uri = service.server_uri.as_ref().unwrap();
    assert_eq!(uri.uri, "http://authz.foo.svc.cluster.local");
    assert_eq!(uri.timeout.as_ref().unwrap().seconds, 2);
    assert_eq!(http.allowed_headers.unwrap().patterns.len(), 2);
    let enabled = http.filter_enabled_metadata.unwrap();
    assert_eq!(enabled.filter, "envoy.filters.http.rbac");

    // The provider that is no authorizer: its rules deny.
    let bad: RbacFilter = config(&filters[4]);
    assert!(bad.shadow_rules.is_none());
    let rules = bad.rules.unwrap();
    assert_eq!(
        rules.policies.keys().collect::<Vec<_>>(),
        ["istio-ext-authz-tracer-ns[foo]-policy[wrong-kind]-rule[0]-deny-due-to-bad-CUSTOM-action"]
    );
}

#[test]
fn custom_needs_a_provider_and_rules_and_provider_needs_custom() {
    let yaml = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-provider, namespace: foo}
spec:
  action: CUSTOM
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-rules, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: authz-http}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-custom, namespace: foo}
spec:
  action: DENY
  provider: {name: authz-http}
  rules: [{}]
";
    let applied = ConfigStore::default().apply(mk_inputs(yaml));
    let mut fields: Vec<String> = applied
        .errors
        .iter()
        .map(|e| format!("{} {}", e.resource.as_ref().unwrap(), e.error.field))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "AuthorizationPolicy foo/no-provider spec.provider",
            "AuthorizationPolicy foo/no-rules spec.rules",
            "AuthorizationPolicy foo/not-custom spec.provider",
        ]
    );
}
