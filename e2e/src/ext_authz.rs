//! An external authorization server the tests own, as Envoy's HTTP
//! `ext_authz` asks it: each check is the original request's method, path
//! (after the provider's `pathPrefix`) and the headers the provider lets
//! through, and a 200 answer allows it.
//!
//! [`ExtAuthzServer::start`] listens on `ip` (kernel port). A check whose
//! [`DECISION_HEADER`] is `allow` is answered 200 with
//! [`RESULT_HEADER`]` = allowed` (for `headersToUpstreamOnAllow`); any
//! other is answered 403 with body [`DENIED_BODY`] and
//! [`RESULT_HEADER`]` = denied`. [`ExtAuthzServer::checks`] counts the
//! checks and [`ExtAuthzServer::paths`] lists their paths;
//! [`ExtAuthzServer::stop`] takes it down.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The request header the server decides by.
pub const DECISION_HEADER: &str = "x-ext-authz";
/// The header the server answers its decision in.
pub const RESULT_HEADER: &str = "x-ext-authz-check-result";
/// The body of a denial.
pub const DENIED_BODY: &str = "denied by ext_authz";

/// See the module docs.
#[derive(Debug)]
pub struct ExtAuthzServer {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    server: Option<JoinHandle<()>>,
}

impl ExtAuthzServer {
    pub async fn start(ip: IpAddr) -> Result<ExtAuthzServer> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        // Connections live in the server task's JoinSet, so that stopping
        // it closes the kept-alive ones too.
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                let seen = seen.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        if let Ok(mut paths) = seen.lock() {
                            paths.push(request.uri().path().to_string());
                        }
                        let allow = request
                            .headers()
                            .get(DECISION_HEADER)
                            .is_some_and(|v| v.as_bytes() == b"allow");
                        async move { Ok::<_, Infallible>(decision(allow)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(ExtAuthzServer {
            addr,
            paths,
            server: Some(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The paths of the checks so far.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// How many checks it answered.
    pub fn checks(&self) -> usize {
        self.paths().len()
    }

    /// Stops answering: connections are refused.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl Drop for ExtAuthzServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn decision(allow: bool) -> Response<Full<Bytes>> {
    let (status, result, body) = if allow {
        (StatusCode::OK, "allowed", "")
    } else {
        (StatusCode::FORBIDDEN, "denied", DENIED_BODY)
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        RESULT_HEADER,
        hyper::header::HeaderValue::from_static(result),
    );
    response
}
