//! Istio's VirtualService HTTP features that depend on more than one rule
//! or on the proxy, proven through a real Envoy configured by a spawned
//! `weft standalone`: header rules, per-proxy source conditions, gateways
//! and exportTo, delegation and merging, and retry options. Each test has
//! its own upstream block and ports (shared with `http_features.rs`, which
//! holds the rest), so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use anyhow::Result;
use weft_e2e::yaml::{fqdn, mk_reviews_virtual_service, mk_service, multi_doc};
use weft_e2e::{APPLY_TIMEOUT, Mesh, http_get, start_upstreams, wait_for};

const HOST: &str = "reviews.default.svc.cluster.local";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_are_seen_by_upstream_and_client() -> Result<()> {
    let ups = start_upstreams(27, &["v1", "v2"]).await?;
    let rules = "  - match: [{uri: {prefix: /split}}]
    route:
    - destination: {host: reviews, subset: v1}
      weight: 50
      headers:
        request: {set: {x-dest: one}}
        response: {add: {x-served-by: v1}}
    - destination: {host: reviews, subset: v2}
      weight: 50
      headers:
        request: {set: {x-dest: two}}
        response: {add: {x-served-by: v2}}
  - headers:
      request:
        set: {x-set: forced}
        add: {x-added: extra}
        remove: [x-secret]
      response:
        set: {x-resp-set: yes}
        add: {x-resp-add: more}
        remove: [x-echo-method]
    route:
    - destination: {host: reviews, subset: v1}
      headers:
        request: {add: {x-only-v1: here}}
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("vs.yaml", mk_reviews_virtual_service("reviews", rules))
        .start()
        .await?;
    let reply = wait_for("the header rules", APPLY_TIMEOUT, || async {
        let r = mesh
            .request(
                HOST,
                "/h",
                &[("x-set", "mine"), ("x-secret", "s"), ("x-added", "first")],
            )
            .await
            .ok()?;
        (r.header("x-resp-set") == Some("yes")).then_some(r)
    })
    .await?;
    assert_eq!(reply.header("x-resp-add"), Some("more"));
    assert_eq!(
        reply.header("x-echo-method"),
        None,
        "removed from the response"
    );
    assert_eq!(reply.header("x-upstream-identity"), Some("v1"));
    let seen = ups[0].last_received().unwrap();
    assert_eq!(seen.header("x-set"), Some("forced"));
    assert_eq!(seen.header("x-secret"), None);
    let added: Vec<&str> = seen
        .header_values("x-added")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    assert_eq!(added, ["first", "extra"]);
    assert_eq!(seen.header("x-only-v1"), Some("here"));

    for _ in 0..40 {
        let r = mesh.request(HOST, "/split", &[]).await?;
        let who = r
            .header("x-upstream-identity")
            .unwrap_or_default()
            .to_string();
        assert_eq!(r.header("x-served-by"), Some(who.as_str()), "{r:?}");
        let up = if who == "v1" { &ups[0] } else { &ups[1] };
        let want = if who == "v1" { "one" } else { "two" };
        assert_eq!(up.last_received().unwrap().header("x-dest"), Some(want));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_conditions_gateways_and_export_to_depend_on_the_proxy() -> Result<()> {
    let ups = start_upstreams(28, &["default", "from-prod", "canary", "gateway"]).await?;
    let ratings = start_upstreams(29, &["local-only", "plain"]).await?;
    let rules = "  - match: [{gateways: [istio-system/ingress]}]
    route: [{destination: {host: reviews, subset: gateway}}]
  - match: [{sourceNamespace: prod}]
    route: [{destination: {host: reviews, subset: from-prod}}]
  - match: [{sourceLabels: {track: canary}}]
    route: [{destination: {host: reviews, subset: canary}}]
  - match: [{gateways: [mesh], uri: {prefix: /}}]
    route: [{destination: {host: reviews, subset: default}}]
";
    let ratings_vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  exportTo: [.]
  http:
  - route: [{destination: {host: ratings, subset: local-only}}]
";
    let mesh = Mesh::builder()
        .namespace("prod")
        .file(
            "services.yaml",
            multi_doc(&[
                mk_service("reviews", "default", &ups),
                mk_service("ratings", "default", &ratings),
            ]),
        )
        .file(
            "vs.yaml",
            multi_doc(&[
                mk_reviews_virtual_service("reviews", rules),
                ratings_vs.to_string(),
            ]),
        )
        .start()
        .await?;
    mesh.wait_for_body(HOST, "/", &[], "from-prod", APPLY_TIMEOUT)
        .await?;
    // ratings' VirtualService is exported to `default` only: this proxy, in
    // `prod`, routes ratings by its default route (both endpoints).
    let ratings_host = fqdn("ratings", "default");
    let counts = mesh.sample(&ratings_host, "/", &[], 30).await?;
    assert_eq!(counts.values().sum::<usize>(), 30);
    assert!(counts.contains_key("plain"), "{counts:?}");

    let canary = mesh
        .start_proxy(false, &[("track", "canary"), ("app", "x")], Some("default"))
        .await?;
    let plain = mesh
        .start_proxy(false, &[("app", "x")], Some("default"))
        .await?;
    let (canary_addr, plain_addr) = (canary.router_addr(), plain.router_addr());
    let body_via = |addr: SocketAddr, host: String| async move {
        match http_get(addr, &host, "/", &[]).await {
            Ok(r) if r.status == 200 => Some(r.body),
            _ => None,
        }
    };
    wait_for("canary routing", APPLY_TIMEOUT, || async {
        (body_via(canary_addr, HOST.to_string()).await.as_deref() == Some("canary")).then_some(())
    })
    .await?;
    wait_for("plain routing", APPLY_TIMEOUT, || async {
        (body_via(plain_addr, HOST.to_string()).await.as_deref() == Some("default")).then_some(())
    })
    .await?;
    for _ in 0..10 {
        assert_eq!(
            body_via(canary_addr, HOST.to_string()).await.as_deref(),
            Some("canary")
        );
        assert_eq!(
            body_via(plain_addr, HOST.to_string()).await.as_deref(),
            Some("default")
        );
        // In `default`, the VirtualService for ratings applies.
        assert_eq!(
            body_via(plain_addr, ratings_host.clone()).await.as_deref(),
            Some("local-only")
        );
    }
    assert_eq!(
        ups[3].requests(),
        0,
        "gateway-only rules never apply to sidecars"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegates_and_several_virtual_services_merge_in_order() -> Result<()> {
    let ups = start_upstreams(30, &["api-v2", "api", "web", "default", "late"]).await?;
    let root = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-root, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    timeout: 5s
    delegate: {name: api-routes, namespace: team}
  - match: [{uri: {prefix: /web}}]
    route: [{destination: {host: reviews, subset: web}}]
";
    let delegate = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-routes, namespace: team}
spec:
  http:
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: api-v2}}]
  - match: [{uri: {prefix: /other}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: web}}]
  - route: [{destination: {host: reviews.default.svc.cluster.local, subset: api}}]
";
    let second = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b-more, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /web}}]
    route: [{destination: {host: reviews, subset: late}}]
  - route: [{destination: {host: reviews, subset: default}}]
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file(
            "vs.yaml",
            multi_doc(&[root.to_string(), delegate.to_string(), second.to_string()]),
        )
        .start()
        .await?;
    mesh.wait_for_body(HOST, "/api/v2/x", &[], "api-v2", APPLY_TIMEOUT)
        .await?;
    let cases = [
        ("/api/v2/x", "api-v2"),
        ("/api/v1", "api"),
        ("/other", "default"),
        ("/web", "web"),
        ("/", "default"),
    ];
    for (path, want) in cases {
        assert_eq!(
            mesh.get(HOST, path, &[]).await?,
            (200, want.to_string()),
            "{path}"
        );
    }
    assert_eq!(
        ups[4].requests(),
        0,
        "b-more's /web rule is shadowed by a-root's"
    );
    // Both conflicts are reported, naming both resources.
    let logs = mesh.weft().logs().join("\n");
    assert!(
        logs.contains("VirtualService team/api-routes: spec.http[1].match")
            && logs.contains("VirtualService default/a-root spec.http[0]"),
        "delegate conflict not reported:\n{logs}"
    );
    assert!(
        logs.contains("VirtualService default/b-more: spec.http[0].match[0]")
            && logs.contains("VirtualService default/a-root spec.http[1].match[0]"),
        "shadowed rule not reported:\n{logs}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_options_reach_envoy() -> Result<()> {
    let ups = start_upstreams(31, &["v1"]).await?;
    let rules = "  - route: [{destination: {host: reviews, subset: v1}}]
    retries:
      attempts: 2
      retryOn: 5xx
      perTryTimeout: 2s
      retryRemoteLocalities: true
      retryIgnorePreviousHosts: false
      backoff: 50ms
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("vs.yaml", mk_reviews_virtual_service("reviews", rules))
        .start()
        .await?;
    mesh.wait_for_body(HOST, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let dump = wait_for(
        "the retry policy in Envoy's config",
        APPLY_TIMEOUT,
        || async {
            let dump = mesh
                .admin_get("/config_dump?resource=dynamic_route_configs")
                .await
                .ok()?;
            dump.body
                .contains("previous_priorities")
                .then_some(dump.body)
        },
    )
    .await?;
    assert!(dump.contains("\"base_interval\": \"0.050s\""), "{dump}");
    assert!(
        !dump.contains("previous_hosts"),
        "retryIgnorePreviousHosts: false"
    );
    ups[0].reset_requests();
    ups[0].fail_next(2);
    assert_eq!(mesh.get(HOST, "/", &[]).await?, (200, "v1".to_string()));
    assert_eq!(ups[0].requests(), 3, "two retries, spaced by the backoff");
    Ok(())
}
