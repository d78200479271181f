//! Where metrics are scraped from ([`ScrapeTarget`]: a URL, or Istio's
//! `ISTIO_PROMETHEUS_ANNOTATIONS`) and the plain HTTP/1.1 GET that does
//! it, with a deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::merge::Scraped;

/// An HTTP endpoint serving metrics (or readiness).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub host: String,
    pub port: u16,
    /// Starts with `/`; may carry a query.
    pub path: String,
}

/// Why a target cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{url:?} is not an http://HOST[:PORT][/PATH] URL: {reason}")]
    Url { url: String, reason: &'static str },
    #[error(
        "ISTIO_PROMETHEUS_ANNOTATIONS {json:?} is not {{\"scrape\",\"path\",\"port\"}} JSON: {reason}"
    )]
    Annotations { json: String, reason: String },
}

impl TargetError {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetError::Url { .. } => "url",
            TargetError::Annotations { .. } => "annotations",
        }
    }
}

impl ScrapeTarget {
    /// A local target (`localhost`, as Istio's agent scrapes the app).
    pub fn local(host: &str, port: u16, path: &str) -> Self {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        ScrapeTarget {
            host: host.to_string(),
            port,
            path,
        }
    }

    /// `http://HOST[:PORT][/PATH]` (port 80 and path `/` by default; IPv6
    /// hosts in brackets).
    pub fn from_url(url: &str) -> Result<Self, TargetError> {
        let bad = |reason| TargetError::Url {
            url: url.to_string(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// is scraped"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
                (host, port)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("there is no host"));
        }
        Ok(ScrapeTarget::local(host, port, path))
    }

    /// Istio's `ISTIO_PROMETHEUS_ANNOTATIONS`, the Pod's `prometheus.io/*`
    /// annotations as injection moved them: `{"scrape":"true",
    /// "path":"/metrics","port":"8080"}`, scraped on `localhost`; the path
    /// defaults to `/metrics` and the port to 80, as in Istio.
    pub fn from_annotations(json: &str) -> Result<Self, TargetError> {
        let bad = |reason: String| TargetError::Annotations {
            json: json.to_string(),
            reason,
        };
        let value: Value = serde_json::from_str(json).map_err(|err| bad(err.to_string()))?;
        let field = |name: &str| -> Result<Option<&str>, TargetError> {
            match value.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(bad(format!("{name} is {other}, not a string"))),
            }
        };
        if !value.is_object() {
            return Err(bad("not an object".to_string()));
        }
        let port = match field("port")? {
            None => 80,
            Some(port) => port
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(format!("port {port:?} is not a port")))?,
        };
        let path = field("path")?.unwrap_or("/metrics");
        Ok(ScrapeTarget::local("localhost", port, path))
    }

    /// The target as a URL, for logs.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{host}:{}{}", self.port, self.path)
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why one scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: std::io::Error },
    #[error("HTTP to {url} failed: {source}")]
    Http { url: String, source: hyper::Error },
    #[error("cannot build the request for {url}: {source}")]
    Request {
        url: String,
        source: hyper::http::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered with a body that is not UTF-8")]
    Utf8 { url: String },
}

impl ScrapeError {
    pub fn kind(&self) -> &'static str {
        match self {
            ScrapeError::Connect { .. } => "connect",
            ScrapeError::Http { .. } => "http",
            ScrapeError::Request { .. } => "request",
            ScrapeError::Status { .. } => "status",
            ScrapeError::Timeout { .. } => "timeout",
            ScrapeError::Utf8 { .. } => "utf8",
        }
    }
}

/// `GET target` within `timeout`, passing the scraper's `Accept` on (as
/// Istio's agent does): the body and content type of a 200 answer.
pub async fn get(
    target: &ScrapeTarget,
    accept: Option<&HeaderValue>,
    timeout: Duration,
) -> Result<Scraped, ScrapeError> {
    let url = target.url();
    match tokio::time::timeout(timeout, get_now(target, accept, &url)).await {
        Ok(result) => result,
        Err(_) => Err(ScrapeError::Timeout { url, timeout }),
    }
}

async fn get_now(
    target: &ScrapeTarget,
    accept: Option<&HeaderValue>,
    url: &str,
) -> Result<Scraped, ScrapeError> {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| ScrapeError::Connect {
            url: url.to_string(),
            source,
        })?;
    let http = |source| ScrapeError::Http {
        url: url.to_string(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    // Drives the connection; it ends when the response has been read and
    // `sender` is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::get(target.path.as_str()).header(HOST, target.authority());
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|source| ScrapeError::Request {
            url: url.to_string(),
            source,
        })?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(ScrapeError::Status {
            url: url.to_string(),
            status,
        });
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|ct| ct.to_str().ok())
        .map(str::to_string);
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(http)?
        .to_bytes();
    let body = String::from_utf8(body.to_vec()).map_err(|_| ScrapeError::Utf8 {
        url: url.to_string(),
    })?;
    Ok(Scraped { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = |url: &str| ScrapeTarget::from_url(url).map_err(|e| e.kind());
        assert_eq!(
            t("http://localhost:8080/metrics"),
            Ok(ScrapeTarget::local("localhost", 8080, "/metrics"))
        );
        assert_eq!(
            t("http://10.0.0.1"),
            Ok(ScrapeTarget::local("10.0.0.1", 80, "/"))
        );
        assert_eq!(
            t("http://[::1]:9090/m?x=1"),
            Ok(ScrapeTarget::local("::1", 9090, "/m?x=1"))
        );
        assert_eq!(
            ScrapeTarget::local("::1", 9090, "/m").url(),
            "http://[::1]:9090/m"
        );
        for bad in [
            "https://x/metrics",
            "localhost:8080",
            "http://:80/",
            "http://x:0/",
            "http://x:http/",
        ] {
            assert_eq!(t(bad), Err("url"), "{bad}");
        }
    }

    #[test]
    fn istios_annotations_json() {
        let t = |json: &str| ScrapeTarget::from_annotations(json).map_err(|e| e.kind());
        assert_eq!(
            t(r#"{"scrape":"true","path":"/stats","port":"8080"}"#),
            Ok(ScrapeTarget::local("localhost", 8080, "/stats"))
        );
        // Istio's defaults: path /metrics, port 80.
        assert_eq!(
            t(r#"{"scrape":"true","path":"","port":""}"#),
            Ok(ScrapeTarget::local("localhost", 80, "/metrics"))
        );
        assert_eq!(
            t(r#"{"port":"9090","path":"metrics"}"#),
            Ok(ScrapeTarget::local("localhost", 9090, "/metrics"))
        );
        for bad in ["", "[]", r#"{"port":"http"}"#, r#"{"port":8080}"#, "{"] {
            assert_eq!(t(bad), Err("annotations"), "{bad}");
        }
    }
}
