//! A minimal HTTP/1.1 client: one fresh connection per request, so that a
//! listener or route change in Envoy never meets a stale keep-alive
//! connection, and every request is bounded by a timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
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
    let mut request = Request::get(path).header(HOST, host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    exchange(stream, request.body(Empty::<Bytes>::new())?).await
}

/// `POST path` on `addr` with the given `Host`, `Content-Type` and body
/// (e.g. spans to a tracing backend).
pub async fn http_post(
    addr: SocketAddr,
    host: &str,
    path: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Result<Reply> {
    let request = Request::post(path)
        .header(HOST, host)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))?;
    let post = async { exchange(TcpStream::connect(addr).await?, request).await };
    tokio::time::timeout(REQUEST_TIMEOUT, post)
        .await
        .map_err(|_| {
            anyhow!("POST http://{host}{path} via {addr} timed out after {REQUEST_TIMEOUT:?}")
        })?
        .with_context(|| format!("POST http://{host}{path} via {addr}"))
}

/// Sends `request` over a fresh HTTP/1.1 connection on `stream` and reads
/// the whole response.
async fn exchange<S, B>(stream: S, request: Request<B>) -> Result<Reply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
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

/// Percent-encodes a query parameter's value: every byte but RFC 3986's
/// unreserved characters (`A-Z a-z 0-9 - _ . ~`).
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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

/// Polls `fetch` (every `every`) until its answer satisfies `pred`, and
/// returns that answer; after `timeout`, `Err` holding the last answer (or
/// the last error), for the caller to describe what it saw.
pub async fn poll_answer<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut fetch: F,
    pred: impl Fn(&T) -> bool,
) -> std::result::Result<T, Result<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    loop {
        let last = fetch().await;
        match last {
            Ok(answer) if pred(&answer) => return Ok(answer),
            last if start.elapsed() >= timeout => return Err(last),
            _ => tokio::time::sleep(every).await,
        }
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

/// The host's first global IPv4 address: a caller there is not on
/// loopback (for tests of what only loopback callers may do).
pub fn non_loopback_ip() -> Result<std::net::IpAddr> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .context("running `ip` (install iproute2)")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|cidr| cidr.split('/').next()?.parse().ok())
        .next()
        .context(
            "this host has no global IPv4 address to call from a non-loopback address \
             (`ip -4 addr show scope global` lists none)",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(
            encode_query_value(r#"sum(up{job="a b"})"#),
            "sum%28up%7Bjob%3D%22a%20b%22%7D%29"
        );
        assert_eq!(
            encode_query_value("reviews.default-v1_~"),
            "reviews.default-v1_~"
        );
        assert_eq!(encode_query_value("a/é"), "a%2F%C3%A9");
    }

    #[tokio::test]
    async fn poll_answer_returns_the_first_good_answer_or_the_last() {
        let tick = Duration::from_millis(1);
        let mut n = 0;
        let answer = poll_answer(
            Duration::from_secs(5),
            tick,
            || {
                n += 1;
                let now = n;
                async move { Ok(now) }
            },
            |n| *n == 3,
        )
        .await;
        assert_eq!(answer.ok(), Some(3));

        let mut calls = 0;
        let failed = poll_answer(
            Duration::from_millis(20),
            tick,
            || {
                calls += 1;
                let now = calls;
                async move {
                    if now % 2 == 0 {
                        Ok(now)
                    } else {
                        Err(anyhow!("odd call {now}"))
                    }
                }
            },
            |_| false,
        )
        .await;
        match failed {
            Err(Ok(last)) => assert_eq!(last, calls),
            Err(Err(err)) => assert_eq!(err.to_string(), format!("odd call {calls}")),
            Ok(answer) => panic!("{answer} satisfied a predicate that is always false"),
        }
    }
}
