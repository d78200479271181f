//! The agent's status port (Istio's 15020, on 0.0.0.0), a thin axum
//! server over [`merge`] and [`scrape`]:
//!
//! - `GET /stats/prometheus`: the agent's own metrics ([`crate::metrics`]),
//!   Envoy's `/stats/prometheus` from its admin port with `envoy_istio_*`
//!   renamed `istio_*`, and the application's metrics (from
//!   `--app-metrics-url` or `ISTIO_PROMETHEUS_ANNOTATIONS`), in Istio's
//!   order. A failed scrape of Envoy or the app is logged and counted
//!   (`weft_agent_scrape_failures_total{type}`) and left out; it never
//!   fails the response.
//! - `GET /healthz/ready`: 200 when Envoy has its first config, is LIVE
//!   with its workers started, and the agent holds a certificate (the
//!   rule is [`ready`], pure; without Envoy: the certificate), else 503
//!   saying what is missing. Envoy's health listener (15021) routes here.
//! - `GET /app-health/<container>/livez|readyz|startupz`: the app's own
//!   probe, which injection rewrote to this port (its original in
//!   `ISTIO_KUBE_APP_PROBERS`, [`probers`]), run against the app
//!   ([`app_probe`]); an unknown path is a 400 naming the known ones.

pub mod app_probe;
pub mod merge;
pub mod probers;
pub mod ready;
pub mod scrape;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::metrics::{AgentMetrics, ScrapeType};
use crate::rotation::RotationStatus;
use crate::sds::Bundles;
use merge::Scraped;
use probers::AppProbes;
use ready::{EnvoyStats, NotReady};
use scrape::ScrapeTarget;

/// How long one scrape of Envoy or the app may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Envoy's admin `/stats` may take for readiness (Istio's 3 s).
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// What the status port serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusConfig {
    /// Where it listens (Istio: `0.0.0.0:15020`).
    pub address: SocketAddr,
    /// Envoy's admin port on 127.0.0.1; `None` without Envoy.
    pub envoy_admin_port: Option<u16>,
    /// The application's metrics, merged in.
    pub app_metrics: Option<ScrapeTarget>,
    /// The app's own probes, served at `/app-health/...`.
    pub app_probes: AppProbes,
    /// Where they are sent: the pod's IP, as the kubelet sends them
    /// (Istio's default), or 127.0.0.1.
    pub probe_address: IpAddr,
}

/// Why the status port cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot listen on the status port {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the application's metrics ({url}) are on the status port itself, which would scrape itself forever; \
         does the Pod carry prometheus.io/port: \"{port}\" from an earlier injection?"
    )]
    Loop { url: String, port: u16 },
}

impl StatusError {
    pub fn kind(&self) -> &'static str {
        match self {
            StatusError::Bind { .. } => "bind",
            StatusError::Loop { .. } => "loop",
        }
    }
}

#[derive(Debug)]
struct Status {
    config: StatusConfig,
    registry: Registry,
    metrics: AgentMetrics,
    bundles: Bundles,
}

/// Binds the status port. `bundles` and `rotation` are the certificate
/// side's state, exported as metrics.
pub async fn bind(
    config: StatusConfig,
    bundles: Bundles,
    rotation: watch::Receiver<RotationStatus>,
) -> Result<(TcpListener, Router), StatusError> {
    if let Some(app) = &config.app_metrics {
        let own_port = config.address.port();
        let local = ["localhost", "127.0.0.1", "::1", "0.0.0.0", "::"];
        if app.port == own_port && local.contains(&app.host.as_str()) {
            return Err(StatusError::Loop {
                url: app.url(),
                port: own_port,
            });
        }
    }
    let listener = TcpListener::bind(config.address)
        .await
        .map_err(|source| StatusError::Bind {
            address: config.address,
            source,
        })?;
    let mut registry = Registry::default();
    let metrics = AgentMetrics::register(&mut registry, bundles.clone(), rotation);
    info!(
        address = %listener.local_addr().unwrap_or(config.address),
        app_metrics = config.app_metrics.as_ref().map(ScrapeTarget::url).unwrap_or_default(),
        app_probes = ?config.app_probes.paths().collect::<Vec<_>>(),
        probe_address = %config.probe_address,
        "status port listening: /stats/prometheus, /healthz/ready, /app-health/"
    );
    let router = router(Status {
        config,
        registry,
        metrics,
        bundles,
    });
    Ok((listener, router))
}

fn router(status: Status) -> Router {
    Router::new()
        .route("/stats/prometheus", get(stats))
        .route("/healthz/ready", get(ready))
        .route("/app-health/{*probe}", get(app_health))
        .with_state(Arc::new(status))
}

/// Serves the status port until the task is aborted.
pub async fn serve(listener: TcpListener, router: Router) {
    if let Err(err) = axum::serve(listener, router).await {
        warn!(error = %err, "the status port stopped");
    }
}

fn envoy_target(admin_port: u16, path: &str) -> ScrapeTarget {
    ScrapeTarget::local("127.0.0.1", admin_port, path)
}

async fn stats(State(status): State<Arc<Status>>, headers: HeaderMap) -> Response {
    status.metrics.scraped();
    let accept = headers.get(header::ACCEPT);
    let envoy = async {
        let port = status.config.envoy_admin_port?;
        let target = envoy_target(port, "/stats/prometheus");
        match scrape::get(&target, None, SCRAPE_TIMEOUT).await {
            Ok(scraped) => Some(scraped.body),
            Err(err) => {
                warn!(kind = err.kind(), error = %err, "cannot scrape Envoy's metrics");
                status.metrics.scrape_failed(ScrapeType::Envoy);
                None
            }
        }
    };
    let app = async {
        let target = status.config.app_metrics.as_ref()?;
        match scrape::get(target, accept, SCRAPE_TIMEOUT).await {
            Ok(scraped) => Some(scraped),
            Err(err) => {
                warn!(kind = err.kind(), error = %err, "cannot scrape the application's metrics");
                status.metrics.scrape_failed(ScrapeType::Application);
                None
            }
        }
    };
    let (envoy, app): (Option<String>, Option<Scraped>) = tokio::join!(envoy, app);
    let mut agent = String::new();
    if let Err(err) =
        prometheus_client::encoding::text::encode_registry(&mut agent, &status.registry)
    {
        warn!(error = %err, "cannot encode the agent's metrics");
        agent.clear();
    }
    let (body, content_type) = merge::merge(&agent, envoy.as_deref(), app.as_ref());
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn ready(State(status): State<Arc<Status>>) -> (StatusCode, String) {
    let stats = match status.config.envoy_admin_port {
        None => None,
        Some(port) => {
            match scrape::get(
                &envoy_target(port, ready::READY_STATS_PATH),
                None,
                READY_TIMEOUT,
            )
            .await
            {
                Ok(answer) => Some(EnvoyStats::parse(&answer.body)),
                Err(err) => {
                    let not_ready = NotReady::Envoy(err.to_string());
                    return (StatusCode::SERVICE_UNAVAILABLE, format!("{not_ready}\n"));
                }
            }
        }
    };
    let has_certificate = status.bundles.borrow().is_some();
    match ready::check_ready(stats.as_ref(), has_certificate) {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(not_ready) => {
            debug!(reason = not_ready.kind(), "not ready: {not_ready}");
            (StatusCode::SERVICE_UNAVAILABLE, format!("{not_ready}\n"))
        }
    }
}

async fn app_health(
    State(status): State<Arc<Status>>,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let path = uri.path();
    let Some(probe) = status.config.app_probes.get(path) else {
        let known: Vec<&str> = status.config.app_probes.paths().collect();
        warn!(path, "no app probe is configured for this path");
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "no app probe is configured for {path} (ISTIO_KUBE_APP_PROBERS has {known:?})\n"
            ),
        );
    };
    let answer = app_probe::run(probe, status.config.probe_address, &headers).await;
    if answer.status >= 400 {
        info!(
            path,
            status = answer.status,
            "app probe failed: {}",
            answer.body.trim()
        );
    }
    let code = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, answer.body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
