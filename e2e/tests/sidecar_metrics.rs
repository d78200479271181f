//! The sidecar's metrics ports with a real Envoy and `weft agent`: Envoy's
//! `prometheus_stats` listener (Istio's 15090) serves `/stats/prometheus`
//! and nothing else of the admin API; the agent's status port (Istio's
//! 15020) serves the agent's own metrics, Envoy's and the app's (found
//! through `ISTIO_PROMETHEUS_ANNOTATIONS`, as injection writes it) merged,
//! and `/healthz/ready`. The bootstrap names the workload (`WORKLOAD_NAME`)
//! and its `node.cluster` is `<app>.<namespace>`. The setup is
//! [`SidecarPair`] plus one more client whose "app" serves metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use weft_e2e::sidecars::{SidecarOptions, SidecarPair};
use weft_e2e::upstream::Upstream;

/// The sample the app's metrics endpoint serves (an echo upstream answers
/// every path with its identity: here, one Prometheus sample line).
const APP_SAMPLE: &str = "weft_e2e_app_up 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoys_and_the_agents_prometheus_ports_serve_merged_metrics() -> anyhow::Result<()> {
    let pair = SidecarPair::start(SidecarOptions::default()).await?;
    let app_metrics = Upstream::start(APP_SAMPLE, Ipv4Addr::LOCALHOST.into()).await?;
    let annotations = format!(
        r#"{{"scrape":"true","path":"/metrics","port":"{}"}}"#,
        app_metrics.port()
    );
    let client = pair
        .start_client_with_app_metrics("sleep-2", "app=sleep-2", &annotations)
        .await?;
    let reply = pair.call_from(&client).await?;
    assert_eq!(reply.status, 200, "{reply:?}\n{}", pair.logs());

    // 15090: Envoy's own stats, and only those.
    let envoy = client.prometheus_get("/stats/prometheus").await?;
    assert_eq!(envoy.status, 200, "{envoy:?}");
    assert!(envoy.body.contains("envoy_server_live"), "{}", envoy.body);
    let admin = client.prometheus_get("/config_dump").await?;
    assert_eq!(admin.status, 404, "the admin API stays private: {admin:?}");

    // 15020: the agent's metrics, Envoy's and the app's, merged.
    let merged = client.status_get("/stats/prometheus").await?;
    assert_eq!(merged.status, 200, "{merged:?}");
    assert_eq!(
        merged.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = &merged.body;
    assert!(body.contains("envoy_server_live"), "{body}");
    assert!(
        body.lines().any(|l| l == APP_SAMPLE),
        "the app's metrics are merged: {body}"
    );
    assert!(body.contains("weft_agent_scrapes_total 1"), "{body}");
    assert!(
        body.contains("weft_agent_certificates_issued_total 1"),
        "{body}"
    );
    assert!(
        body.contains("weft_agent_certificate_expiry_seconds "),
        "{body}"
    );
    assert!(
        !body.contains("weft_agent_scrape_failures_total{"),
        "{body}"
    );
    assert!(!body.contains("# EOF"), "{body}");
    assert_eq!(
        app_metrics.last_received().map(|r| r.path),
        Some("/metrics".to_string())
    );

    // Ready: Envoy has its config and is LIVE, the agent its certificate;
    // Envoy's health listener (Istio's 15021) answers the same.
    let ready = client.status_get("/healthz/ready").await?;
    assert_eq!((ready.status, ready.body.trim()), (200, "ready"));
    let health = client.health_get("/healthz/ready").await?;
    assert_eq!((health.status, health.body.trim()), (200, "ready"));

    // A sidecar without app metrics serves Envoy's and its own.
    let server = pair.server().status_get("/stats/prometheus").await?;
    assert_eq!(server.status, 200, "{server:?}");
    assert!(server.body.contains("envoy_server_live"), "{}", server.body);
    assert!(
        server.body.contains("weft_agent_scrapes_total"),
        "{}",
        server.body
    );

    // The bootstrap: the workload's name and Istio's `<app>.<namespace>`.
    let dump: serde_json::Value = serde_json::from_str(&client.config_dump().await?)?;
    let node = &dump["configs"][0]["bootstrap"]["node"];
    assert_eq!(node["metadata"]["WORKLOAD_NAME"], "sleep-2", "{node}");
    assert_eq!(node["cluster"], "sleep-2.default", "{node}");
    Ok(())
}
