//! The Sidecar resource narrows what a real Envoy receives: after a
//! Sidecar selecting the proxy's labels is written, Envoy's own
//! `/config_dump` no longer holds the clusters of services outside its
//! `egress.hosts`, requests to them find no route, and a proxy the Sidecar
//! does not select keeps them. Addresses 127.0.65.x.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use weft_e2e::yaml::{fqdn, mk_service, multi_doc};
use weft_e2e::{APPLY_TIMEOUT, Mesh, start_upstreams, wait_until};

const RATINGS_SIDECAR: &str = "\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: ratings
  namespace: default
spec:
  workloadSelector:
    labels:
      app: ratings
  egress:
  - hosts:
    - ./reviews.default.svc.cluster.local
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
";

fn cluster(name: &str) -> String {
    format!("outbound|9080||{}", fqdn(name, "default"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_scope_removes_unrelated_clusters_from_the_proxy() -> anyhow::Result<()> {
    let ups = start_upstreams(65, &["v1"]).await?;
    let services = multi_doc(&[
        mk_service("reviews", "default", &ups),
        mk_service("details", "default", &ups),
        mk_service("productpage", "default", &ups),
    ]);
    let mesh = Mesh::builder()
        .labels(&[("app", "ratings")])
        .file("services.yaml", services)
        .start()
        .await?;
    let dump = || async {
        mesh.admin_get("/config_dump")
            .await
            .map(|r| r.body)
            .unwrap_or_default()
    };
    wait_until(
        "every cluster before any Sidecar",
        APPLY_TIMEOUT,
        || async {
            let d = dump().await;
            ["reviews", "details", "productpage"]
                .iter()
                .all(|s| d.contains(&cluster(s)))
        },
    )
    .await?;
    mesh.wait_for_body(&fqdn("details", "default"), "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    mesh.write_config("sidecar.yaml", RATINGS_SIDECAR)?;
    wait_until(
        "the Sidecar to remove details and productpage",
        APPLY_TIMEOUT,
        || async {
            let d = dump().await;
            d.contains(&cluster("reviews"))
                && !d.contains(&cluster("details"))
                && !d.contains(&cluster("productpage"))
        },
    )
    .await
    .map_err(|e| e.context(mesh.weft().log_tail(30)))?;
    let dump_now = dump().await;
    assert!(
        !dump_now.contains("details.default.svc.cluster.local"),
        "no trace of details"
    );
    mesh.wait_for_body(&fqdn("reviews", "default"), "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let (status, _) = mesh.get(&fqdn("details", "default"), "/", &[]).await?;
    assert_eq!(status, 404, "no route to a service outside the scope");

    // A proxy the Sidecar does not select still has everything.
    let other = mesh.start_proxy(false, &[("app", "web")], None).await?;
    wait_until(
        "the unselected proxy to keep details",
        APPLY_TIMEOUT,
        || async {
            other
                .admin_get("/config_dump")
                .await
                .is_ok_and(|r| r.body.contains(&cluster("details")))
        },
    )
    .await?;
    assert_eq!(
        other.get(&fqdn("details", "default"), "/").await?,
        (200, "v1".to_string())
    );

    // Removing the Sidecar brings the clusters back.
    mesh.remove_config("sidecar.yaml")?;
    wait_until("the clusters to come back", APPLY_TIMEOUT, || async {
        dump().await.contains(&cluster("details"))
    })
    .await?;
    Ok(())
}
