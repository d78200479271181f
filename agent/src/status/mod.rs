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
//! - `GET /healthz/ready`: 200 when Envoy's admin `/ready` answers `LIVE`
//!   (without Envoy: once a certificate was issued), else 503.

pub mod merge;
pub mod scrape;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics::{AgentMetrics, ScrapeType};
use crate::rotation::RotationStatus;
use crate::sds::Bundles;
use merge::Scraped;
use scrape::ScrapeTarget;

/// How long one scrape of Envoy or the app may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Envoy's `/ready` may take.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the status port serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusConfig {
    /// Where it listens (Istio: `0.0.0.0:15020`).
    pub address: SocketAddr,
    /// Envoy's admin port on 127.0.0.1; `None` without Envoy.
    pub envoy_admin_port: Option<u16>,
    /// The application's metrics, merged in.
    pub app_metrics: Option<ScrapeTarget>,
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
        "status port listening: /stats/prometheus, /healthz/ready"
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
    let Some(port) = status.config.envoy_admin_port else {
        return if status.bundles.borrow().is_some() {
            (StatusCode::OK, "ready\n".to_string())
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "no certificate yet\n".to_string(),
            )
        };
    };
    match scrape::get(&envoy_target(port, "/ready"), None, READY_TIMEOUT).await {
        Ok(answer) if answer.body.trim() == "LIVE" => (StatusCode::OK, "LIVE\n".to_string()),
        Ok(answer) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Envoy is {}\n", answer.body.trim()),
        ),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Envoy is not ready: {err}\n"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
