//! The store's checks of AuthorizationPolicies against the workloads they
//! select: HTTP-only terms on TCP-only workloads.

use super::*;

const WORKLOADS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: prod}
spec:
  hosts: [db.prod.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp-postgres, protocol: TCP}]
  endpoints: [{address: 10.0.0.1, labels: {app: db}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: prod}
spec:
  hosts: [api.prod.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.2, labels: {app: api}}]
---
";

fn policy(app: &str, rules: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {app}, namespace: prod}}
spec:
  selector: {{matchLabels: {{app: {app}}}}}
  rules:
{rules}"
    )
}

const HTTP_TERMS: &str =
    "  - from: [{source: {requestPrincipals: ['*'], principals: [cluster.local/ns/prod/sa/web]}}]
    to: [{operation: {methods: [GET], ports: ['5432', '8080']}}]
    when:
    - {key: 'request.auth.claims[groups]', values: [admins]}
    - {key: source.ip, values: [10.0.0.0/8]}
";

#[test]
fn http_only_terms_on_tcp_only_workloads_are_refused_naming_the_field() {
    let yaml = format!(
        "{WORKLOADS}{}---\n{}",
        policy("db", HTTP_TERMS),
        policy("api", HTTP_TERMS)
    );
    let applied = ConfigStore::default().apply(mk_inputs(&yaml));
    let fields: Vec<String> = applied
        .errors
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e.resource
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                e.error.field
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            "AuthorizationPolicy prod/db spec.rules[0].from[0].source.requestPrincipals",
            "AuthorizationPolicy prod/db spec.rules[0].to[0].operation.methods",
            "AuthorizationPolicy prod/db spec.rules[0].when[0].key",
        ]
    );
    assert!(
        applied.errors[0]
            .error
            .message
            .contains("db.prod.svc.cluster.local"),
        "{:?}",
        applied.errors[0]
    );
}
