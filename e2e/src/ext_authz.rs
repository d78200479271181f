//! An external authorization server the tests own, as Envoy's
//! `ext_authz` asks it: over HTTP ([`ExtAuthzServer::start`], a mesh
//! config `envoyExtAuthzHttp` provider) each check is the original
//! request's method, path (after the provider's `pathPrefix`) and the
//! headers the provider lets through, and a 200 answer allows it; over gRPC
//! ([`ExtAuthzServer::start_grpc`], `envoyExtAuthzGrpc`) it is
//! `envoy.service.auth.v3.Authorization/Check` with every header, and an OK
//! status allows it.
//!
//! Either listens on `ip` (kernel port). A check whose [`DECISION_HEADER`]
//! is `allow` is allowed with [`RESULT_HEADER`]` = allowed` (HTTP: on the
//! answer, for `headersToUpstreamOnAllow`; gRPC: added to the request);
//! any other is denied with 403, body [`DENIED_BODY`] and
//! [`RESULT_HEADER`]` = denied`. [`ExtAuthzServer::checks`] counts the
//! checks and [`ExtAuthzServer::paths`] lists their paths;
//! [`ExtAuthzServer::stop`] takes it down, open connections included.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The request header the server decides by.
pub const DECISION_HEADER: &str = "x-ext-authz";
/// The header the server answers its decision in.
pub const RESULT_HEADER: &str = "x-ext-authz-check-result";
/// The body of a denial.
pub const DENIED_BODY: &str = "denied by ext_authz";

/// The paths of the checks so far.
type Paths = Arc<Mutex<Vec<String>>>;

fn record(paths: &Paths, path: &str) {
    if let Ok(mut paths) = paths.lock() {
        paths.push(path.to_string());
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct ExtAuthzServer {
    addr: SocketAddr,
    paths: Paths,
    server: Option<JoinHandle<()>>,
}

impl ExtAuthzServer {
    /// An HTTP authorizer.
    pub async fn start(ip: IpAddr) -> Result<ExtAuthzServer> {
        Self::serve(ip, |stream, paths| async move {
            let service = service_fn(move |request: Request<Incoming>| {
                record(&paths, request.uri().path());
                let allow = request
                    .headers()
                    .get(DECISION_HEADER)
                    .is_some_and(|v| v.as_bytes() == b"allow");
                async move { Ok::<_, Infallible>(decision(allow)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        })
        .await
    }

    /// A gRPC authorizer.
    pub async fn start_grpc(ip: IpAddr) -> Result<ExtAuthzServer> {
        Self::serve(ip, |stream, paths| async move {
            let service =
                TowerToHyperService::new(AuthorizationServer::new(GrpcAuthorizer { paths }));
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        })
        .await
    }

    /// Listens on `ip` and serves each connection with `connection`.
    /// Connections live in the server task's JoinSet, so that stopping it
    /// closes the kept-alive ones too.
    async fn serve<F, Fut>(ip: IpAddr, connection: F) -> Result<ExtAuthzServer>
    where
        F: Fn(TcpStream, Paths) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let paths = Paths::default();
        let seen = paths.clone();
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                connections.spawn(connection(stream, seen.clone()));
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

/// The gRPC service: the same decisions as [`decision`].
struct GrpcAuthorizer {
    paths: Paths,
}

#[tonic::async_trait]
impl Authorization for GrpcAuthorizer {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let http = request
            .into_inner()
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http)
            .unwrap_or_default();
        record(&self.paths, &http.path);
        let allow = http
            .headers
            .get(DECISION_HEADER)
            .is_some_and(|v| v == "allow");
        let response = if allow {
            let mut ok = OkHttpResponseBuilder::new();
            ok.add_header(RESULT_HEADER, "allowed", None, false);
            let mut response = CheckResponse::with_status(tonic::Status::ok(""));
            response.set_http_response(ok);
            response
        } else {
            let mut denied = DeniedHttpResponseBuilder::new();
            denied
                .set_http_status(HttpStatusCode::Forbidden)
                .add_header(RESULT_HEADER, "denied", None, false)
                .set_body(DENIED_BODY);
            let mut response = CheckResponse::with_status(tonic::Status::permission_denied(""));
            response.set_http_response(denied);
            response
        };
        Ok(tonic::Response::new(response))
    }
}
