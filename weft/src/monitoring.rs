//! The monitoring server (Istio's port 15014): `/metrics` in the
//! Prometheus / OpenMetrics text format, `/healthz` (200 while the process
//! runs), `/readyz` (200 once [`Readiness::set_ready`] was called; its
//! body adds [`Readiness::set_detail`]'s text, e.g. the kinds the operator
//! does not serve for want of their CRD) and the debug endpoints
//! (`/debug/*`, see [`crate::debug`]).
//! A thin axum layer: the metrics themselves live with their subsystems
//! (`weft_xds::metrics`, `weft_config::metrics`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{error, warn};

use crate::debug::DebugState;

/// The content type of the OpenMetrics text `prometheus-client` writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the control plane is ready to serve: shared between what makes
/// it ready and `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    /// Lines `/readyz` adds after its verdict; they do not change it.
    detail: Arc<RwLock<String>>,
}

impl Readiness {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Replaces the lines `/readyz` adds after its verdict.
    pub fn set_detail(&self, detail: String) {
        *self.detail.write().unwrap_or_else(PoisonError::into_inner) = detail;
    }

    fn detail(&self) -> String {
        self.detail
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Debug)]
struct Monitoring {
    registry: Registry,
    readiness: Readiness,
}

/// The monitoring routes over `registry` (complete: nothing can register
/// in it any more) and `readiness`, and the debug routes over `debug`.
pub fn router(registry: Registry, readiness: Readiness, debug: DebugState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(Monitoring {
            registry,
            readiness,
        }))
        .merge(crate::debug::router(debug))
}

/// Serves [`router`] on `listener` until the process ends (the debug
/// routes need the caller's address).
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    readiness: Readiness,
    debug: DebugState,
) {
    let app =
        router(registry, readiness, debug).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(err) = axum::serve(listener, app).await {
        error!(%err, "the monitoring server stopped");
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<Monitoring>>) -> (StatusCode, String) {
    let detail = state.readiness.detail();
    if state.readiness.is_ready() {
        (StatusCode::OK, format!("ready\n{detail}"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the first config is not applied or xDS is not listening yet\n{detail}"
            ),
        )
    }
}

async fn metrics(State(state): State<Arc<Monitoring>>) -> Response {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(err) => {
            warn!(%err, "cannot encode the metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A plain HTTP/1.1 GET: (status line, whole response).
    async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response.lines().next().unwrap_or_default().to_string();
        (status, response)
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("weft_test_things", "Things", counter.clone());
        counter.inc();
        let readiness = Readiness::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            registry,
            readiness.clone(),
            DebugState::default(),
        ));

        assert!(get(addr, "/healthz").await.0.contains(" 200 "));
        assert!(get(addr, "/readyz").await.0.contains(" 503 "));
        readiness.set_ready();
        assert!(get(addr, "/readyz").await.0.contains(" 200 "));
        // The detail adds lines, and leaves the verdict alone.
        readiness.set_detail("missing CRDs: Quota\n".to_string());
        let (status, response) = get(addr, "/readyz").await;
        assert!(status.contains(" 200 "), "{response}");
        assert!(
            response.ends_with("ready\nmissing CRDs: Quota\n"),
            "{response}"
        );
        let (status, response) = get(addr, "/metrics").await;
        assert!(status.contains(" 200 "), "{response}");
        assert!(
            response.contains("application/openmetrics-text"),
            "{response}"
        );
        assert!(response.contains("weft_test_things_total 1"), "{response}");
        assert!(response.trim_end().ends_with("# EOF"), "{response}");
        assert!(get(addr, "/nope").await.0.contains(" 404 "));
    }
}
