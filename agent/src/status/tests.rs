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

const LIVE: &str = "\
cluster_manager.cds.update_success: 1
listener_manager.lds.update_success: 1
listener_manager.workers_started: 1
server.state: 0
";

/// A fake Envoy admin whose `/stats` (any query) answers `stats`.
async fn mk_envoy(stats: &'static str) -> u16 {
    mk_server(vec![
        (
            "/stats/prometheus",
            StatusCode::OK,
            "text/plain; charset=UTF-8",
            ENVOY_STATS,
        ),
        ("/stats", StatusCode::OK, "text/plain", stats),
    ])
    .await
}

/// Starts the status port; its address.
async fn mk_status(
    envoy_admin_port: Option<u16>,
    app_metrics: Option<ScrapeTarget>,
    bundle: Option<CertBundle>,
) -> SocketAddr {
    mk_status_with(envoy_admin_port, app_metrics, bundle, AppProbes::default()).await
}

async fn mk_status_with(
    envoy_admin_port: Option<u16>,
    app_metrics: Option<ScrapeTarget>,
    bundle: Option<CertBundle>,
    app_probes: AppProbes,
) -> SocketAddr {
    let (_bundles_tx, bundles) = watch::channel(bundle.map(Arc::new));
    let (_status_tx, rotation) = watch::channel(RotationStatus::default());
    let config = StatusConfig {
        address: "127.0.0.1:0".parse().unwrap(),
        envoy_admin_port,
        app_metrics,
        app_probes,
        probe_address: "127.0.0.1".parse().unwrap(),
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
    let envoy = mk_envoy(LIVE).await;
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
    let envoy = mk_envoy(LIVE).await;
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

/// `GET path` on the status port: status and body, whatever the status.
async fn answer(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut text)
        .await
        .unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

/// A certificate the agent holds (the status port only asks whether).
fn mk_bundle() -> CertBundle {
    CertBundle {
        chain: vec!["PEM".to_string()],
        key_pem: String::new(),
        not_before: std::time::SystemTime::UNIX_EPOCH,
        not_after: std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn ready_needs_envoys_config_live_state_and_a_certificate() {
    let live = mk_status(Some(mk_envoy(LIVE).await), None, Some(mk_bundle())).await;
    assert_eq!(
        answer(live, "/healthz/ready").await,
        (200, "ready\n".into())
    );
    // LIVE, but no certificate yet.
    let no_cert = mk_status(Some(mk_envoy(LIVE).await), None, None).await;
    let (status, body) = answer(no_cert, "/healthz/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("no certificate"), "{body}");
    // Still waiting for its first listeners.
    let waiting = "cluster_manager.cds.update_success: 1\nserver.state: 2\n";
    let starting = mk_status(Some(mk_envoy(waiting).await), None, Some(mk_bundle())).await;
    let (status, body) = answer(starting, "/healthz/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("no config"), "{body}");
    // Envoy's admin unreachable.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let gone = mk_status(Some(closed), None, Some(mk_bundle())).await;
    let (status, body) = answer(gone, "/healthz/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("admin stats"), "{body}");
    // Without Envoy: ready once a certificate was issued.
    let no_envoy = mk_status(None, None, None).await;
    assert_eq!(answer(no_envoy, "/healthz/ready").await.0, 503);
    let no_envoy = mk_status(None, None, Some(mk_bundle())).await;
    assert_eq!(answer(no_envoy, "/healthz/ready").await.0, 200);
}

#[tokio::test]
async fn app_probes_run_against_the_app_and_unknown_paths_are_named() {
    let app = mk_server(vec![
        ("/ok", StatusCode::OK, "text/plain", "fine"),
        ("/moved", StatusCode::FOUND, "text/plain", ""),
        (
            "/sick",
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "sick",
        ),
    ])
    .await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let json = format!(
        r#"{{"/app-health/web/readyz": {{"httpGet": {{"path": "/ok", "port": {app}}}}},
            "/app-health/web/livez": {{"httpGet": {{"path": "/sick", "port": {app}}}}},
            "/app-health/web/startupz": {{"httpGet": {{"path": "/moved", "port": {app}}}}},
            "/app-health/tcp/readyz": {{"tcpSocket": {{"port": {app}}}}},
            "/app-health/tcp/livez": {{"tcpSocket": {{"port": {closed}}}}},
            "/app-health/grpc/readyz": {{"grpc": {{"port": {closed}}}}}}}"#
    );
    let probes = AppProbes::parse(&json).unwrap();
    let status = mk_status_with(None, None, None, probes).await;
    assert_eq!(
        answer(status, "/app-health/web/readyz").await,
        (200, "fine".into())
    );
    assert_eq!(
        answer(status, "/app-health/web/livez").await,
        (500, "sick".into())
    );
    assert_eq!(answer(status, "/app-health/web/startupz").await.0, 200);
    assert_eq!(answer(status, "/app-health/tcp/readyz").await.0, 200);
    let (code, body) = answer(status, "/app-health/tcp/livez").await;
    assert_eq!(code, 500);
    assert!(body.contains("cannot connect"), "{body}");
    assert_eq!(answer(status, "/app-health/grpc/readyz").await.0, 500);
    let (code, body) = answer(status, "/app-health/nope/readyz").await;
    assert_eq!(code, 400);
    assert!(body.contains("/app-health/nope/readyz"), "{body}");
    assert!(body.contains("/app-health/web/readyz"), "{body}");
}

#[tokio::test]
async fn a_grpc_probe_asks_the_apps_health_service() {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("ready", tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("down", tonic_health::ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let json = format!(
        r#"{{"/app-health/g/readyz": {{"grpc": {{"port": {port}, "service": "ready"}}}},
            "/app-health/g/livez": {{"grpc": {{"port": {port}, "service": "down"}}}},
            "/app-health/g/startupz": {{"grpc": {{"port": {port}}}}}}}"#
    );
    let status = mk_status_with(None, None, None, AppProbes::parse(&json).unwrap()).await;
    assert_eq!(
        answer(status, "/app-health/g/readyz").await,
        (200, "SERVING\n".into())
    );
    let (code, body) = answer(status, "/app-health/g/livez").await;
    assert_eq!(code, 500);
    assert!(body.contains("NOT_SERVING"), "{body}");
    // The server as a whole ("" service) is SERVING by default.
    assert_eq!(answer(status, "/app-health/g/startupz").await.0, 200);
}

#[tokio::test]
async fn the_app_cannot_be_the_status_port_itself() {
    let (_b, bundles) = watch::channel(None);
    let (_s, rotation) = watch::channel(RotationStatus::default());
    let config = StatusConfig {
        address: "0.0.0.0:15020".parse().unwrap(),
        envoy_admin_port: None,
        app_metrics: Some(ScrapeTarget::local("localhost", 15020, "/stats/prometheus")),
        app_probes: AppProbes::default(),
        probe_address: "127.0.0.1".parse().unwrap(),
    };
    let err = bind(config, bundles, rotation).await.unwrap_err();
    assert_eq!(err.kind(), "loop");
}
