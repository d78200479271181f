//! AuthorizationPolicy `action: CUSTOM` between real sidecars
//! ([`SidecarPair`]): the server's Envoy asks an external authorizer the
//! test owns ([`ExtAuthzServer`], over HTTP or gRPC, reached through a
//! ServiceEntry as the mesh config's `envoyExtAuthzHttp` or
//! `envoyExtAuthzGrpc` provider names it) about the requests the policy's
//! rules select, and only those.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use weft_e2e::ext_authz::{DECISION_HEADER, DENIED_BODY, ExtAuthzServer, RESULT_HEADER};
use weft_e2e::sidecars::{SidecarOptions, SidecarPair};

/// How the sidecar talks to the authorizer.
#[derive(Clone, Copy)]
enum Kind {
    Http,
    Grpc,
}

/// Two providers of `kind`: `ext-authz` (closed: 503 when the authorizer
/// cannot answer) and `ext-authz-open` (`failOpen`).
fn providers(kind: Kind) -> String {
    let (provider, extra) = match kind {
        Kind::Http => (
            "envoyExtAuthzHttp",
            "\n    includeRequestHeadersInCheck: [x-ext-authz]\
             \n    headersToUpstreamOnAllow: [x-ext-authz-check-result]",
        ),
        Kind::Grpc => ("envoyExtAuthzGrpc", ""),
    };
    let open_extra = match kind {
        Kind::Http => "\n    includeRequestHeadersInCheck: [x-ext-authz]",
        Kind::Grpc => "",
    };
    format!(
        "extensionProviders:
- name: ext-authz
  {provider}:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    statusOnError: '503'{extra}
- name: ext-authz-open
  {provider}:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    failOpen: true{open_extra}
"
    )
}

fn config(kind: Kind, authz_port: u16) -> String {
    let (name, protocol) = match kind {
        Kind::Http => ("http", "HTTP"),
        Kind::Grpc => ("grpc", "GRPC"),
    };
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext-authz, namespace: default}}
spec:
  hosts: [ext-authz.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8000, name: {name}, protocol: {protocol}, targetPort: {authz_port}}}]
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
async fn custom_policies_ask_an_http_authorizer_and_fail_as_configured() -> anyhow::Result<()> {
    ask_the_authorizer(Kind::Http).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_policies_ask_a_grpc_authorizer_and_fail_as_configured() -> anyhow::Result<()> {
    ask_the_authorizer(Kind::Grpc).await
}

async fn ask_the_authorizer(kind: Kind) -> anyhow::Result<()> {
    let localhost = Ipv4Addr::LOCALHOST.into();
    let mut authz = match kind {
        Kind::Http => ExtAuthzServer::start(localhost).await?,
        Kind::Grpc => ExtAuthzServer::start_grpc(localhost).await?,
    };
    let pair = SidecarPair::start(SidecarOptions {
        mesh_config: Some(providers(kind)),
        ..Default::default()
    })
    .await?;
    pair.write_config("ext-authz.yaml", &config(kind, authz.addr().port()))
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

    // The authorizer goes away: `statusOnError`, or `failOpen`, decides.
    authz.stop();
    pair.wait_for_status(
        pair.client(),
        "/checked",
        &[(DECISION_HEADER, "allow")],
        503,
    )
    .await?;
    assert_eq!(status(&pair, "/open", Some("allow")).await, 200);
    Ok(())
}
