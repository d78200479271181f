//! An Envoy on incremental (delta) xDS converges as services are added,
//! changed and removed, and is sent only what changed.

use weft_e2e::mesh::REVIEWS_VS_FILE;
use weft_e2e::yaml::{fqdn, mk_service, mk_weighted_virtual_service};
use weft_e2e::{APPLY_TIMEOUT, Mesh, start_upstreams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_envoy_converges_after_add_change_and_remove() -> anyhow::Result<()> {
    let reviews = start_upstreams(80, &["v1", "v2"]).await?;
    let ratings = start_upstreams(81, &["r1"]).await?;
    let mesh = Mesh::builder()
        .delta()
        .reviews_all_to_v1(&reviews)
        .start()
        .await?;
    let (reviews_host, ratings_host) = (fqdn("reviews", "default"), fqdn("ratings", "default"));
    mesh.wait_for_body(&reviews_host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    mesh.weft()
        .wait_for_log("protocol=\"delta\"", APPLY_TIMEOUT)
        .await?;

    // Add a service.
    mesh.write_config("ratings.yaml", &mk_service("ratings", "default", &ratings))?;
    mesh.wait_for_body(&ratings_host, "/", &[], "r1", APPLY_TIMEOUT)
        .await?;

    // Change a route.
    mesh.write_config(
        REVIEWS_VS_FILE,
        &mk_weighted_virtual_service("reviews", "default", &[("v2", 100)]),
    )?;
    mesh.wait_for_body(&reviews_host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;

    // Remove a service: its clusters go, and its host no longer routes.
    mesh.remove_config("ratings.yaml")?;
    weft_e2e::wait_until("ratings to be gone from Envoy", APPLY_TIMEOUT, || async {
        mesh.admin_get("/config_dump")
            .await
            .is_ok_and(|dump| !dump.body.contains("ratings.default.svc.cluster.local"))
    })
    .await?;
    let (status, _) = mesh.get(&ratings_host, "/", &[]).await?;
    assert_eq!(status, 404, "no virtual host answers for a removed service");
    let (status, body) = mesh.get(&reviews_host, "/", &[]).await?;
    assert_eq!(
        (status, body.as_str()),
        (200, "v2"),
        "the rest keeps working"
    );
    Ok(())
}
