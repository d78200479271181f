//! AuthorizationPolicy `action: CUSTOM` between real sidecars
//! ([`SidecarPair`]): the server's Envoy asks an external authorizer the
//! test owns ([`ExtAuthzServer`], reached through a ServiceEntry as the
//! mesh config's `envoyExtAuthzHttp` provider names it) about the requests
//! the policy's rules select, and only those.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use weft_e2e::ext_authz::{DECISION_HEADER, DENIED_BODY, ExtAuthzServer, RESULT_HEADER};
use weft_e2e::sidecars::{SidecarOptions, SidecarPair};

const PROVIDERS: &str = "extensionProviders:
- name: ext-authz
  envoyExtAuthzHttp:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    includeRequestHeadersInCheck: [x-ext-authz]
    headersToUpstreamOnAllow: [x-ext-authz-check-result]
- name: ext-authz-open
  envoyExtAuthzHttp:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    includeRequestHeadersInCheck: [x-ext-authz]
    failOpen: true
";

fn config(authz_port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext-authz, namespace: default}}
spec:
  hosts: [ext-authz.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8000, name: http, protocol: HTTP, targetPort: {authz_port}}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: checked, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: CUSTOM
  provider: {{name: ext-authz}}
  rules:
  - to: [{{operation: {{paths: ['/checked*']}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: open, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: CUSTOM
  provider: {{name: ext-authz-open}}
  rules:
  - to: [{{operation: {{paths: ['/open*']}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: undefined-provider, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: CUSTOM
  provider: {{name: not-in-the-mesh-config}}
  rules:
  - to: [{{operation: {{paths: ['/undefined*']}}}}]
"
    )
}

/// The status of `GET path` from the client, asking the authorizer for
/// `decision` (none without).
async fn status(pair: &SidecarPair, path: &str, decision: Option<&str>) -> u16 {
    let headers: Vec<(&str, &str)> = decision.map(|d| (DECISION_HEADER, d)).into_iter().collect();
    match pair.get_from_with(pair.client(), path, &headers).await {
        Ok(reply) => reply.status,
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_policies_ask_the_external_authorizer_and_fail_as_configured() -> anyhow::Result<()>
{
    let mut authz = ExtAuthzServer::start(Ipv4Addr::LOCALHOST.into()).await?;
    let pair = SidecarPair::start(SidecarOptions {
        mesh_config: Some(PROVIDERS.to_string()),
        ..Default::default()
    })
    .await?;
    pair.write_config("ext-authz.yaml", &config(authz.addr().port()))
        .await?;
    pair.wait_for_status(pair.client(), "/checked", &[(DECISION_HEADER, "deny")], 403)
        .await?;

    let denied = pair
        .get_from_with(pair.client(), "/checked", &[(DECISION_HEADER, "deny")])
        .await?;
    assert_eq!((denied.status, denied.body.as_str()), (403, DENIED_BODY));
    assert_eq!(status(&pair, "/checked/a", Some("allow")).await, 200);
    // The authorizer's header reaches the app on allow.
    let received = pair.app().last_received().unwrap();
    assert_eq!(received.header(RESULT_HEADER), Some("allowed"));
    assert!(authz.paths().contains(&"/checked/a".to_string()));

    // Requests no CUSTOM rule selects are not checked.
    let checks = authz.checks();
    assert_eq!(status(&pair, "/other", None).await, 200);
    assert_eq!(authz.checks(), checks);

    // A provider the mesh config does not define fails closed.
    assert_eq!(status(&pair, "/undefined", Some("allow")).await, 403);

    // The authorizer goes away: failOpen decides.
    authz.stop();
    assert_eq!(status(&pair, "/checked", Some("allow")).await, 403);
    assert_eq!(status(&pair, "/open", Some("allow")).await, 200);
    Ok(())
}
