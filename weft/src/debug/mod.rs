//! The debug endpoints on the monitoring port, with istiod's names:
//!
//! | path | what |
//! |---|---|
//! | `/debug/syncz` | per proxy and type: version and nonce sent, acked, state (SYNCED, NOT SENT, STALE, ERROR) and Envoy's NACK text |
//! | `/debug/config_dump?proxyID=` | the config served to that proxy, as Envoy's admin `ConfigDump` JSON |
//! | `/debug/registryz` | services and their endpoints |
//! | `/debug/configz` | every resource with its `Accepted` / `Ready` conditions |
//! | `/debug/connections` | the open xDS streams |
//! | `/debug/push_status` | the recent pushes: what changed, how long, how many proxies |
//! | `/debug/logging` | the log filter; `PUT ?filter=info,weft_xds=debug` replaces it |
//!
//! Every one of them is behind [`access::NamespaceAccess`] (the same rule
//! as istiod's debug xDS types on the xDS port).

pub mod access;
pub mod json;
pub mod views;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::watch;
use weft_config::Applied;
use weft_model::MeshSnapshot;
use weft_xds::debug::config_dump;
use weft_xds::{AccessDenied, Connections, DebugAccess, LoopbackOnly, Pushes, ResourceCache};

use crate::logging;

/// What the debug endpoints read; shared with the xDS server and the
/// config recorder. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DebugState(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    connections: Connections,
    pushes: Pushes,
    cache: Arc<ResourceCache>,
    /// What the xDS server serves from, once it serves.
    snapshots: OnceLock<watch::Receiver<Arc<MeshSnapshot>>>,
    /// The last applied config.
    applied: Mutex<Option<Applied>>,
    access: OnceLock<Arc<dyn DebugAccess>>,
}

impl DebugState {
    pub fn connections(&self) -> Connections {
        self.0.connections.clone()
    }

    pub fn pushes(&self) -> Pushes {
        self.0.pushes.clone()
    }

    pub fn cache(&self) -> Arc<ResourceCache> {
        self.0.cache.clone()
    }

    /// The xDS server serves from `snapshots` from now on.
    pub fn serving(&self, snapshots: watch::Receiver<Arc<MeshSnapshot>>) {
        let _ = self.0.snapshots.set(snapshots);
    }

    /// Keeps `applied` for `/debug/configz` and `/debug/registryz`.
    pub fn record(&self, applied: &Applied) {
        *self
            .0
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(applied.clone());
    }

    /// Sets who may read (once; loopback only until then).
    pub fn set_access(&self, access: Arc<dyn DebugAccess>) {
        let _ = self.0.access.set(access);
    }

    pub fn access(&self) -> Arc<dyn DebugAccess> {
        self.0
            .access
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::new(LoopbackOnly))
    }

    fn applied(&self) -> Option<Applied> {
        self.0
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The `/debug/*` routes, each behind the access rule.
pub fn router(state: DebugState) -> Router {
    Router::new()
        .route("/debug", get(index))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_dump", get(config_dump_of))
        .route("/debug/registryz", get(registryz))
        .route("/debug/configz", get(configz))
        .route("/debug/connections", get(connections))
        .route("/debug/push_status", get(push_status))
        .route(
            "/debug/logging",
            get(logging_filter).put(set_logging).post(set_logging),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), admit))
        .with_state(state)
}

/// The access rule, in front of every debug route.
async fn admit(State(state): State<DebugState>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let access = state.access();
    match access.check(peer, bearer.as_deref()).await {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            tracing::warn!(?peer, path = %request.uri().path(), %denied, "refused a debug request");
            let (status, message) = match denied {
                AccessDenied::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
                AccessDenied::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            };
            let mut response = (status, format!("{message}\n")).into_response();
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{value:#}\n"),
    )
        .into_response()
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, format!("{}\n", message.into())).into_response()
}

async fn index() -> Response {
    json_response(json!({
        "endpoints": [
            "/debug/syncz",
            "/debug/config_dump?proxyID=<pod>.<namespace>",
            "/debug/registryz",
            "/debug/configz",
            "/debug/connections",
            "/debug/push_status",
            "/debug/logging",
        ]
    }))
}

async fn syncz(State(state): State<DebugState>) -> Response {
    json_response(views::syncz(&state.connections().list()))
}

async fn connections(State(state): State<DebugState>) -> Response {
    json_response(views::connections(&state.connections().list()))
}

async fn push_status(State(state): State<DebugState>) -> Response {
    json_response(views::push_status(&state.pushes().list()))
}

async fn registryz(State(state): State<DebugState>) -> Response {
    match state.applied() {
        Some(applied) => json_response(views::registryz(&applied.snapshot)),
        None => problem(StatusCode::SERVICE_UNAVAILABLE, "no config is applied yet"),
    }
}

async fn configz(State(state): State<DebugState>) -> Response {
    match state.applied() {
        Some(applied) => json_response(views::configz(&applied, SystemTime::now())),
        None => problem(StatusCode::SERVICE_UNAVAILABLE, "no config is applied yet"),
    }
}

async fn config_dump_of(
    State(state): State<DebugState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(proxy) = query.get("proxyID").filter(|p| !p.is_empty()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "name the proxy: /debug/config_dump?proxyID=<pod>.<namespace> (or its node id; \
             /debug/syncz lists them)",
        );
    };
    let Some(connection) = state.connections().find(proxy) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!("proxy {proxy:?} is not connected to this Weft instance (see /debug/syncz)"),
        );
    };
    let Some(snapshots) = state.0.snapshots.get() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "xDS is not serving yet");
    };
    let snapshot = snapshots.borrow().clone();
    let resources = state.cache().resources(&snapshot, &connection.view);
    match json::to_json(&config_dump(&connection, &resources)) {
        Ok(value) => json_response(value),
        Err(err) => problem(StatusCode::INTERNAL_SERVER_ERROR, err),
    }
}

async fn logging_filter() -> Response {
    json_response(json!({ "filter": logging::current_filter() }))
}

async fn set_logging(method: Method, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(filter) = query.get("filter") else {
        return problem(
            StatusCode::BAD_REQUEST,
            format!(
                "{method} /debug/logging?filter=<RUST_LOG directives>, e.g. filter=info,weft_xds=debug"
            ),
        );
    };
    match logging::set_filter(filter) {
        Ok(now) => {
            tracing::info!(filter = %now, "log filter replaced");
            json_response(json!({ "filter": now }))
        }
        Err(err) => problem(StatusCode::BAD_REQUEST, err),
    }
}
