//! Bad configuration never breaks a running mesh: a VirtualService weft
//! rejects is logged with its file and field, and one Envoy rejects (NACK)
//! is logged with the proxy and Envoy's error; in both cases traffic keeps
//! following the last good config, and a later valid edit applies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use weft_e2e::yaml::{NACKED_VS, fqdn, mk_weighted_virtual_service};
use weft_e2e::{APPLY_TIMEOUT, Mesh, start_upstreams};

use weft_e2e::mesh::REVIEWS_VS_FILE as VS_FILE;

/// How long weft may take to notice a file change and log about it.
const LOG_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends requests for about a second and checks that every one reaches v1.
async fn assert_still_v1(mesh: &Mesh, host: &str, path: &str) {
    let mut counts = BTreeMap::new();
    for _ in 0..20 {
        let (status, body) = mesh.get(host, path, &[]).await.unwrap();
        *counts.entry(format!("{status} {body}")).or_insert(0) += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        counts,
        BTreeMap::from([("200 v1".to_string(), 20)]),
        "traffic keeps following the last good config (100% v1)"
    );
}

/// Checks a weft validation line against the contract: level, file,
/// document index, kind, namespace/name and field path.
fn assert_validation_line(line: &str) {
    assert!(
        line.contains("WARN") || line.contains("ERROR"),
        "logged at WARN or ERROR: {line}"
    );
    for needle in [
        VS_FILE,
        "document 0",
        "VirtualService",
        "default/reviews",
        "spec.http[0].route",
    ] {
        assert!(line.contains(needle), "the line names {needle:?}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_virtual_service_is_logged_and_last_good_config_keeps_serving() -> anyhow::Result<()>
{
    let ups = start_upstreams(7, &["v1", "v2"]).await?;
    let mesh = Mesh::builder().reviews_all_to_v1(&ups).start().await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let file_and_field = |l: &str| l.contains(VS_FILE) && l.contains("spec.http[0].route");

    // Weights summing to 150.
    let mark = mesh.weft().log_mark();
    mesh.write_config(
        VS_FILE,
        &mk_weighted_virtual_service("reviews", "default", &[("v1", 100), ("v2", 50)]),
    )?;
    let line = mesh
        .weft()
        .wait_for_line_since(mark, "the weight-sum error", LOG_TIMEOUT, file_and_field)
        .await?;
    assert_validation_line(&line);
    assert_still_v1(&mesh, &host, "/").await;

    // A subset no DestinationRule defines.
    let mark = mesh.weft().log_mark();
    mesh.write_config(
        VS_FILE,
        &mk_weighted_virtual_service("reviews", "default", &[("v9", 100)]),
    )?;
    let line = mesh
        .weft()
        .wait_for_line_since(
            mark,
            "the unknown-subset error",
            LOG_TIMEOUT,
            file_and_field,
        )
        .await?;
    assert_validation_line(&line);
    assert_still_v1(&mesh, &host, "/").await;

    // A valid edit applies again.
    mesh.write_config(
        VS_FILE,
        &mk_weighted_virtual_service("reviews", "default", &[("v2", 100)]),
    )?;
    mesh.wait_for_body(&host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_nack_is_logged_and_last_good_config_keeps_serving() -> anyhow::Result<()> {
    let ups = start_upstreams(10, &["v1", "v2"]).await?;
    let mesh = Mesh::builder().reviews_all_to_v1(&ups).start().await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    let mark = mesh.weft().log_mark();
    mesh.write_config(VS_FILE, NACKED_VS)?;
    let proxy = format!("proxy={}", mesh.node_id());
    let line = mesh
        .weft()
        .wait_for_line_since(mark, &format!("NACK with {proxy}"), LOG_TIMEOUT, |l| {
            l.contains("NACK") && l.contains(&proxy)
        })
        .await?;
    assert!(line.contains("WARN"), "logged at WARN: {line}");
    assert!(
        line.contains("type.googleapis.com/envoy.config.route.v3.RouteConfiguration"),
        "the line names the RDS type URL: {line}"
    );
    assert!(
        line.contains("invalid repetition size"),
        "the line carries Envoy's error text: {line}"
    );
    // Envoy kept its last good routes: the regex route does not exist.
    assert_still_v1(&mesh, &host, "/aaa").await;
    assert_still_v1(&mesh, &host, "/").await;

    // A valid edit after the NACK applies.
    mesh.write_config(
        VS_FILE,
        &mk_weighted_virtual_service("reviews", "default", &[("v2", 100)]),
    )?;
    mesh.wait_for_body(&host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;
    Ok(())
}
