//! The status port against in-process fakes of Envoy's admin and an app.

use std::sync::Arc;

use axum::http::StatusCode;

use super::*;
use crate::CertBundle;

/// A fake HTTP server on 127.0.0.1:0 answering `path` with `status`,
/// `content_type` and `body`; its port.
async fn mk_server(routes: Vec<(&'static str, StatusCode, &'static str, &'static str)>) -> u16 {
    let mut router = Router::new();
    for (path, status, content_type, body) in routes {
        router = router.route(
            path,
            get(move || async move { (status, [(header::CONTENT_TYPE, content_type)], body) }),
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

const ENVOY_STATS: &str = "\
# TYPE envoy_istio_requests_total counter
envoy_istio_requests_total{reporter=\"destination\"} 3
# TYPE envoy_server_live gauge
envoy_server_live{} 1
";

async fn mk_envoy(ready: &'static str) -> u16 {
    let ready_status = if ready == "LIVE" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    mk_server(vec![
        (
            "/stats/prometheus",
            StatusCode::OK,
            "text/plain; charset=UTF-8",
            ENVOY_STATS,
        ),
        ("/ready", ready_status, "text/plain", ready),
    ])
    .await
}

/// Starts the status port; its address.
async fn mk_status(
    envoy_admin_port: Option<u16>,
    app_metrics: Option<ScrapeTarget>,
    bundle: Option<CertBundle>,
) -> SocketAddr {
    let (_bundles_tx, bundles) = watch::channel(bundle.map(Arc::new));
    let (_status_tx, rotation) = watch::channel(RotationStatus::default());
    let config = StatusConfig {
        address: "127.0.0.1:0".parse().unwrap(),
        envoy_admin_port,
        app_metrics,
    };
    let (listener, router) = bind(config, bundles, rotation).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router));
    address
}

async fn fetch(address: SocketAddr, path: &str) -> Result<Scraped, scrape::ScrapeError> {
    let target = ScrapeTarget::local("127.0.0.1", address.port(), path);
    scrape::get(&target, None, Duration::from_secs(5)).await
}

#[tokio::test]
async fn stats_merge_the_agent_envoy_and_the_app() {
    let envoy = mk_envoy("LIVE").await;
    let app = mk_server(vec![(
        "/metrics",
        StatusCode::OK,
        "text/plain; version=0.0.4",
        "# TYPE app_hits counter\napp_hits 7\n",
    )])
    .await;
    let status = mk_status(
        Some(envoy),
        Some(ScrapeTarget::local("127.0.0.1", app, "/metrics")),
        None,
    )
    .await;
    let merged = fetch(status, "/stats/prometheus").await.unwrap();
    assert_eq!(merged.content_type.as_deref(), Some(merge::PROMETHEUS_TEXT));
    let body = merged.body;
    assert!(
        body.contains("istio_requests_total{reporter=\"destination\"} 3"),
        "{body}"
    );
    assert!(!body.contains("envoy_istio_"), "{body}");
    assert!(body.contains("envoy_server_live{} 1"), "{body}");
    assert!(body.contains("app_hits 7"), "{body}");
    assert!(body.contains("weft_agent_scrapes_total 1"), "{body}");
    assert!(!body.contains("# EOF"), "{body}");
}

#[tokio::test]
async fn a_failing_app_or_envoy_is_left_out_and_counted() {
    // Nothing listens on the app's port once this listener is gone.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let broken_app = mk_server(vec![(
        "/metrics",
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain",
        "oops",
    )])
    .await;
    let envoy = mk_envoy("LIVE").await;
    let status = mk_status(
        Some(envoy),
        Some(ScrapeTarget::local("127.0.0.1", broken_app, "/metrics")),
        None,
    )
    .await;
    // The scrapes run before the agent's metrics are written: this one's
    // failure is already counted.
    let body = fetch(status, "/stats/prometheus").await.unwrap().body;
    assert!(body.contains("istio_requests_total"), "{body}");
    assert!(!body.contains("oops"), "{body}");
    assert!(
        body.contains("weft_agent_scrape_failures_total{type=\"application\"} 1"),
        "{body}"
    );

    let status = mk_status(Some(closed), None, None).await;
    fetch(status, "/stats/prometheus").await.unwrap();
    let body = fetch(status, "/stats/prometheus").await.unwrap().body;
    assert!(
        body.contains("weft_agent_scrape_failures_total{type=\"envoy\"} 2"),
        "{body}"
    );
    assert!(body.contains("weft_agent_scrapes_total 2"), "{body}");
}

#[tokio::test]
async fn ready_follows_envoys_admin_ready() {
    let live = mk_status(Some(mk_envoy("LIVE").await), None, None).await;
    assert_eq!(fetch(live, "/healthz/ready").await.unwrap().body, "LIVE\n");
    let starting = mk_status(Some(mk_envoy("PRE_INITIALIZING").await), None, None).await;
    let err = fetch(starting, "/healthz/ready").await.unwrap_err();
    assert!(
        matches!(err, scrape::ScrapeError::Status { status: 503, .. }),
        "{err}"
    );
    // Without Envoy: ready once a certificate was issued.
    let no_envoy = mk_status(None, None, None).await;
    assert!(fetch(no_envoy, "/healthz/ready").await.is_err());
}

#[tokio::test]
async fn the_app_cannot_be_the_status_port_itself() {
    let (_b, bundles) = watch::channel(None);
    let (_s, rotation) = watch::channel(RotationStatus::default());
    let config = StatusConfig {
        address: "0.0.0.0:15020".parse().unwrap(),
        envoy_admin_port: None,
        app_metrics: Some(ScrapeTarget::local("localhost", 15020, "/stats/prometheus")),
    };
    let err = bind(config, bundles, rotation).await.unwrap_err();
    assert_eq!(err.kind(), "loop");
}
