//! An in-process HTTP/1.1 echo upstream: the "application" behind a mesh
//! endpoint. It answers every request with status 200, its identity as the
//! body (e.g. `v2`) and the header `x-upstream-identity: <identity>`, and can
//! be told to fail or to be slow. It echoes the request line in the
//! response headers `x-echo-method`, `x-echo-path` (with the query) and
//! `x-echo-authority`, and keeps the last requests it received
//! ([`Upstream::received`]), so tests see what the proxy forwarded. Its
//! health endpoint, [`HEALTH_PATH`], answers 200 until
//! [`Upstream::set_health`] says otherwise (an app whose health check
//! fails). It stops when dropped.
//!
//! The client certificate its sidecar forwarded (`x-forwarded-client-cert`)
//! comes back as [`ECHO_CLIENT_CERT_HEADER`]. And it can be a client: a GET
//! of `/forward/<host:port>/<path>` makes it GET `http://<host:port>/<path>`
//! itself ([`FORWARD_PREFIX`]) and answer with that response's status,
//! body and `x-upstream-identity` / `x-echo-*` headers (502 if the call
//! fails), so a test drives calls from inside a pod, through its sidecar.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The response header that names the upstream that answered.
pub const IDENTITY_HEADER: &str = "x-upstream-identity";
/// Response headers echoing the request's method, path (and query) and
/// authority as the upstream received them.
pub const ECHO_METHOD_HEADER: &str = "x-echo-method";
pub const ECHO_PATH_HEADER: &str = "x-echo-path";
pub const ECHO_AUTHORITY_HEADER: &str = "x-echo-authority";
/// The `x-forwarded-client-cert` header the upstream received, echoed.
pub const ECHO_CLIENT_CERT_HEADER: &str = "x-echo-client-cert";
/// `GET /forward/<host:port>/<path>`: the upstream calls
/// `http://<host:port>/<path>` and answers with the result.
pub const FORWARD_PREFIX: &str = "/forward/";
/// The app's health endpoint (what its probes ask).
pub const HEALTH_PATH: &str = "/healthz";
/// How many received requests an upstream keeps (the newest).
const RECEIVED_KEPT: usize = 1000;

/// A request as the upstream received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Host` header.
    pub authority: String,
    /// Names lower-case, in the order received.
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, Default)]
struct Behaviour {
    fail_next: AtomicU32,
    /// The status [`HEALTH_PATH`] answers; 0 is 200.
    health: AtomicU16,
    delay: Mutex<Duration>,
    requests: AtomicU64,
    received: Mutex<std::collections::VecDeque<Received>>,
}

/// A running echo upstream. Dropping it stops the listener and every open
/// connection.
#[derive(Debug)]
pub struct Upstream {
    identity: String,
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    server: JoinHandle<()>,
}

impl Upstream {
    /// Starts on `ip` with a port chosen by the kernel (see [`Upstream::addr`]).
    pub async fn start(identity: &str, ip: IpAddr) -> Result<Self> {
        Self::bind(identity, SocketAddr::new(ip, 0)).await
    }

    /// Starts on exactly `addr`.
    pub async fn bind(identity: &str, addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding upstream {identity} on {addr}"))?;
        let addr = listener.local_addr()?;
        let behaviour = Arc::new(Behaviour::default());
        let server = tokio::spawn(serve(listener, identity.to_string(), behaviour.clone()));
        Ok(Self {
            identity: identity.to_string(),
            addr,
            behaviour,
            server,
        })
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next `n` requests are answered with 503.
    pub fn fail_next(&self, n: u32) {
        self.behaviour.fail_next.store(n, Ordering::SeqCst);
    }

    /// [`HEALTH_PATH`] answers `status` from now on (200: healthy).
    pub fn set_health(&self, status: u16) {
        self.behaviour.health.store(status, Ordering::SeqCst);
    }

    /// Every following request waits `delay` before it is answered.
    pub fn set_delay(&self, delay: Duration) {
        *self
            .behaviour
            .delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Requests received so far (answered or not).
    pub fn requests(&self) -> u64 {
        self.behaviour.requests.load(Ordering::SeqCst)
    }

    /// Sets the request counter back to zero and forgets received requests.
    pub fn reset_requests(&self) {
        self.behaviour.requests.store(0, Ordering::SeqCst);
        self.received_lock().clear();
    }

    /// The requests received so far (the newest 1000), oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received_lock().iter().cloned().collect()
    }

    /// The newest request received, if any.
    pub fn last_received(&self) -> Option<Received> {
        self.received_lock().back().cloned()
    }

    fn received_lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Received>> {
        self.behaviour
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task.
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, identity: String, behaviour: Arc<Behaviour>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let identity = identity.clone();
        let behaviour = behaviour.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| answer(req, identity.clone(), behaviour.clone()));
            // A connection error (e.g. Envoy resetting after a timeout) only
            // ends that connection.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    identity: String,
    behaviour: Arc<Behaviour>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let received = Received {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string()),
        authority: req
            .headers()
            .get(hyper::header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    {
        let mut kept = behaviour
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= RECEIVED_KEPT {
            kept.pop_front();
        }
        kept.push_back(received.clone());
    }
    behaviour.requests.fetch_add(1, Ordering::SeqCst);
    let delay = *behaviour
        .delay
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let fail = behaviour
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if let Some(target) = received.path.strip_prefix(FORWARD_PREFIX) {
        return Ok(forward(target).await);
    }
    let health = match behaviour.health.load(Ordering::SeqCst) {
        0 => StatusCode::OK,
        code => StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let status = if fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else if req.uri().path() == HEALTH_PATH {
        health
    } else {
        StatusCode::OK
    };
    let mut response = Response::new(Full::new(Bytes::from(identity.clone())));
    *response.status_mut() = status;
    let echoes = [
        (IDENTITY_HEADER, identity.as_str()),
        (ECHO_METHOD_HEADER, received.method.as_str()),
        (ECHO_PATH_HEADER, received.path.as_str()),
        (ECHO_AUTHORITY_HEADER, received.authority.as_str()),
        (
            ECHO_CLIENT_CERT_HEADER,
            received.header("x-forwarded-client-cert").unwrap_or(""),
        ),
    ];
    for (name, value) in echoes.into_iter().filter(|(_, v)| !v.is_empty()) {
        if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// The answer to `/forward/<target>`: GET `http://<target>` (its host
/// resolved by the system's resolver), relayed.
async fn forward(target: &str) -> Response<Full<Bytes>> {
    let (authority, path) = match target.split_once('/') {
        Some((authority, path)) => (authority, format!("/{path}")),
        None => (target, "/".to_string()),
    };
    let result = async {
        let addr = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolved to no address"))?;
        crate::client::http_get(addr, authority, &path, &[]).await
    }
    .await;
    match result {
        Ok(reply) => {
            let mut response = Response::new(Full::new(Bytes::from(reply.body.clone())));
            *response.status_mut() =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (name, value) in &reply.headers {
                let relayed = name.eq_ignore_ascii_case(IDENTITY_HEADER)
                    || name.to_ascii_lowercase().starts_with("x-echo-");
                if let (true, Ok(name), Ok(value)) = (
                    relayed,
                    hyper::header::HeaderName::from_bytes(name.as_bytes()),
                    hyper::header::HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        Err(err) => {
            let mut response = Response::new(Full::new(Bytes::from(format!(
                "forwarding to http://{authority}{path}: {err:#}"
            ))));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// One upstream per identity, on `127.0.<block>.1`, `127.0.<block>.2`, ...
/// (kernel-chosen ports): give each test its own `block` so tests running
/// in parallel never share an address.
pub async fn start_upstreams(block: u8, identities: &[&str]) -> Result<Vec<Upstream>> {
    let mut upstreams = Vec::with_capacity(identities.len());
    for (i, identity) in identities.iter().enumerate() {
        let host = u8::try_from(i + 1).context("at most 254 upstreams per block")?;
        let ip = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, block, host));
        upstreams.push(Upstream::start(identity, ip).await?);
    }
    Ok(upstreams)
}
