//! Routing through a real Envoy configured by a spawned `weft standalone`:
//! header matches, weighted splits, live config changes, and the Host forms
//! that reach a service. Each test has its own ports and 127.0.<block>.x
//! upstream addresses, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use weft_e2e::yaml::{fqdn, mk_service, mk_weighted_virtual_service};
use weft_e2e::{APPLY_TIMEOUT, Mesh, start_upstreams};

const HEADER_MATCH_VS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
";

fn share(counts: &BTreeMap<String, usize>, key: &str, total: usize) -> f64 {
    100.0 * *counts.get(key).unwrap_or(&0) as f64 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_match_sends_jason_to_v2_and_others_to_v1() -> anyhow::Result<()> {
    let ups = start_upstreams(1, &["v1", "v2"]).await?;
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("reviews-vs.yaml", HEADER_MATCH_VS)
        .start()
        .await?;
    let host = fqdn("reviews", "default");
    let jason = [("end-user", "jason")];
    mesh.wait_for_body(&host, "/", &jason, "v2", APPLY_TIMEOUT)
        .await?;
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    ups[1].reset_requests();

    let as_jason = mesh.sample(&host, "/reviews/1", &jason, 50).await?;
    assert_eq!(as_jason, BTreeMap::from([("v2".to_string(), 50)]));
    let anonymous = mesh.sample(&host, "/reviews/1", &[], 50).await?;
    assert_eq!(anonymous, BTreeMap::from([("v1".to_string(), 50)]));
    let as_bob = mesh
        .sample(&host, "/reviews/1", &[("end-user", "bob")], 50)
        .await?;
    assert_eq!(as_bob, BTreeMap::from([("v1".to_string(), 50)]));
    // Exact means exact: a prefix of the value does not match.
    let as_jas = mesh.sample(&host, "/", &[("end-user", "jas")], 20).await?;
    assert_eq!(as_jas, BTreeMap::from([("v1".to_string(), 20)]));
    assert_eq!(ups[1].requests(), 50, "v2 got exactly jason's requests");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_80_20_holds_over_500_requests() -> anyhow::Result<()> {
    let ups = start_upstreams(2, &["v1", "v3"]).await?;
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file(
            "reviews-vs.yaml",
            mk_weighted_virtual_service("reviews", "default", &[("v1", 80), ("v3", 20)]),
        )
        .start()
        .await?;
    let host = fqdn("reviews", "default");
    weft_e2e::wait_until("the first 200 through Envoy", APPLY_TIMEOUT, || async {
        matches!(mesh.get(&host, "/", &[]).await, Ok((200, _)))
    })
    .await?;

    const N: usize = 500;
    let counts = mesh.sample(&host, "/", &[], N).await?;
    let v1 = share(&counts, "v1", N);
    let v3 = share(&counts, "v3", N);
    assert_eq!(
        counts.values().sum::<usize>(),
        counts.get("v1").unwrap_or(&0) + counts.get("v3").unwrap_or(&0),
        "every answer comes from v1 or v3: {counts:?}"
    );
    assert!(
        (v1 - 80.0).abs() <= 6.0,
        "v1 got {v1:.1}%, want 80 +/- 6: {counts:?}"
    );
    assert!(
        (v3 - 20.0).abs() <= 6.0,
        "v3 got {v3:.1}%, want 20 +/- 6: {counts:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_virtual_service_shifts_traffic_without_restarting_envoy() -> anyhow::Result<()> {
    let ups = start_upstreams(3, &["v1", "v2"]).await?;
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file(
            "reviews-vs.yaml",
            mk_weighted_virtual_service("reviews", "default", &[("v1", 100), ("v2", 0)]),
        )
        .start()
        .await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let pid = mesh.envoy().pid();
    let mark = mesh.weft().log_mark();

    mesh.write_config(
        "reviews-vs.yaml",
        &mk_weighted_virtual_service("reviews", "default", &[("v1", 0), ("v2", 100)]),
    )?;
    mesh.wait_for_body(&host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;
    let counts = mesh.sample(&host, "/", &[], 50).await?;
    assert_eq!(counts, BTreeMap::from([("v2".to_string(), 50)]));

    assert_eq!(mesh.envoy().pid(), pid, "Envoy is the same process");
    assert!(mesh.envoy().is_running(), "Envoy never exited");
    mesh.weft()
        .wait_for_log_since(mark, "config applied", APPLY_TIMEOUT)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_forms_route_to_the_service() -> anyhow::Result<()> {
    let ups = start_upstreams(8, &["v1"]).await?;
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .start()
        .await?;
    for host in [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local:9080",
        "reviews.default",
        "reviews",
    ] {
        mesh.wait_for_body(host, "/", &[], "v1", APPLY_TIMEOUT)
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_name_only_matches_in_the_proxys_namespace() -> anyhow::Result<()> {
    let ups = start_upstreams(9, &["v1"]).await?;
    let mesh = Mesh::builder()
        .namespace("other")
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .start()
        .await?;
    mesh.wait_for_body("reviews.default", "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let before = ups[0].requests();
    let (status, body) = mesh.get("reviews", "/", &[]).await?;
    assert_ne!(
        (status, body.as_str()),
        (200, "v1"),
        "`reviews` from namespace `other` must not reach default/reviews"
    );
    assert_eq!(ups[0].requests(), before, "the upstream saw no request");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_service_entries_are_resolved_by_envoy() -> anyhow::Result<()> {
    // `localhost` resolves to 127.0.0.1 through Envoy's own DNS resolver.
    let upstream = weft_e2e::Upstream::start("dns", "127.0.0.1".parse()?).await?;
    let service_entry = format!(
        "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external
  namespace: default
spec:
  hosts:
  - api.external.test
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - number: 80
    name: http
    protocol: HTTP
  endpoints:
  - address: localhost
    ports:
      http: {}
",
        upstream.port()
    );
    let mesh = Mesh::builder()
        .file("external.yaml", service_entry)
        .start()
        .await?;
    mesh.wait_for_body("api.external.test", "/", &[], "dns", APPLY_TIMEOUT)
        .await?;
    mesh.wait_for_body("api.external.test:80", "/", &[], "dns", APPLY_TIMEOUT)
        .await?;
    Ok(())
}
