//! A minimal HTTP/1.1 client: one fresh connection per request, so that a
//! listener or route change in Envoy never meets a stale keep-alive
//! connection, and every request is bounded by a timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::HOST;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one request may take before it is an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: its status, body and headers (names lower-case).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` on `addr` with the given `Host` and extra headers.
pub async fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply> {
    tokio::time::timeout(REQUEST_TIMEOUT, get_once(addr, host, path, headers))
        .await
        .map_err(|_| {
            anyhow!("GET http://{host}{path} via {addr} timed out after {REQUEST_TIMEOUT:?}")
        })?
        .with_context(|| format!("GET http://{host}{path} via {addr}"))
}

async fn get_once(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply> {
    get_over(TcpStream::connect(addr).await?, host, path, headers).await
}

/// One HTTP/1.1 GET over an established connection (plain TCP or TLS).
pub(crate) async fn get_over<S>(
    stream: S,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let mut request = Request::get(path).header(HOST, host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new())?;
    let result = async {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            headers,
        })
    }
    .await;
    driver.abort();
    result
}

/// Polls `check` (every 100 ms) until it yields `Some`, or fails after
/// `timeout` with a message naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() >= timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `predicate` (every 100 ms) until it is true, or fails after
/// `timeout` with a message naming `what`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut predicate: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let fut = predicate();
        async move { fut.await.then_some(()) }
    })
    .await
}
