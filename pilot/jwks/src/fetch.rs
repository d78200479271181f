//! One key set fetched: the URL resolved, every address checked against
//! the blocked ranges before a connection is made (the connection goes to
//! the address checked, so a second lookup cannot smuggle in another),
//! HTTPS verified against the system's roots and the extra CA bundle, one
//! HTTP/1.1 GET, at most [`MAX_BODY`] bytes, and the body checked as a
//! JSON Web Key Set. No redirects are followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use weft_model::{Cidr, JwksLocation, check_jwks};

/// The largest key set or discovery document read.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a key set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url:?} is not an http(s) URL with a host: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} resolves only to blocked addresses ({addresses}); see --jwks-blocked-ranges")]
    Blocked { host: String, addresses: String },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("GET {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("GET {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {reason}")]
    Document { url: String, reason: String },
    #[error("took longer than the rule's timeout of {0:?}")]
    Timeout(Duration),
    #[error("the trusted CA certificates: {0}")]
    Roots(String),
}

/// The ranges refused unless configured otherwise: link-local (where cloud
/// metadata services answer, 169.254.169.254 and fd00:ec2::254 among them)
/// and Alibaba Cloud's metadata address.
pub fn default_blocked_ranges() -> Vec<Cidr> {
    [
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
    ]
    .iter()
    .filter_map(|r| Cidr::parse(r).ok())
    .collect()
}

/// Fetches key sets with one TLS configuration and one list of blocked
/// ranges.
#[derive(Clone, Debug)]
pub struct Fetcher {
    blocked: Vec<Cidr>,
    tls: Arc<rustls::ClientConfig>,
}

impl Fetcher {
    /// Trusts the system's roots and the certificates of
    /// `extra_roots_pem`.
    pub fn new(blocked: Vec<Cidr>, extra_roots_pem: Option<&[u8]>) -> Result<Fetcher, FetchError> {
        let mut roots = rustls::RootCertStore::empty();
        // A system without a CA store still trusts the extra bundle.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(pem) = extra_roots_pem {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| FetchError::Roots(e.to_string()))?;
            if certs.is_empty() {
                return Err(FetchError::Roots("no PEM certificate in the bundle".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| FetchError::Roots(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Roots(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Fetcher {
            blocked,
            tls: Arc::new(tls),
        })
    }

    /// The key set at `location` as JSON text, within `timeout`.
    pub async fn fetch(
        &self,
        location: &JwksLocation,
        timeout: Duration,
    ) -> Result<String, FetchError> {
        tokio::time::timeout(timeout, self.fetch_now(location))
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
    }

    async fn fetch_now(&self, location: &JwksLocation) -> Result<String, FetchError> {
        let keys_url = match location {
            JwksLocation::Uri(uri) => uri.clone(),
            JwksLocation::Discovery { .. } => {
                let url = location.url();
                let body = self.get(&url).await?;
                jwks_uri_of(&body).map_err(|reason| FetchError::Document { url, reason })?
            }
        };
        let body = self.get(&keys_url).await?;
        let text = String::from_utf8(body).map_err(|_| FetchError::Document {
            url: keys_url.clone(),
            reason: "the key set is not UTF-8".into(),
        })?;
        check_jwks(&text).map_err(|reason| FetchError::Document {
            url: keys_url,
            reason: format!("the key set {reason}"),
        })?;
        Ok(text)
    }

    /// The body of a 200 answer to `GET url`.
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let bad = |reason: String| FetchError::Url {
            url: url.to_string(),
            reason,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be http or https".into())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let address = self.resolve(&host, port).await?;
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|source| FetchError::Connect { address, source })?;
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        if https {
            let name = ServerName::try_from(host.clone()).map_err(|e| bad(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|source| FetchError::Tls {
                    host: host.clone(),
                    source,
                })?;
            request(tls, url, &authority, &path).await
        } else {
            request(tcp, url, &authority, &path).await
        }
    }

    /// The first address of `host` outside the blocked ranges.
    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, FetchError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| FetchError::Resolve {
                host: host.to_string(),
                source,
            })?
            .collect();
        addresses
            .iter()
            .find(|a| !is_blocked(&self.blocked, a.ip()))
            .copied()
            .ok_or_else(|| FetchError::Blocked {
                host: host.to_string(),
                addresses: addresses
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 self) is in one
/// of `blocked`.
pub fn is_blocked(blocked: &[Cidr], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    blocked.iter().any(|range| range.contains(ip))
}

/// `jwks_uri` of an OpenID discovery document.
pub fn jwks_uri_of(document: &[u8]) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_slice(document)
        .map_err(|e| format!("the discovery document is not JSON: {e}"))?;
    value
        .get("jwks_uri")
        .and_then(serde_json::Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "the discovery document has no \"jwks_uri\"".to_string())
}

async fn request<S>(io: S, url: &str, authority: &str, path: &str) -> Result<Vec<u8>, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "weft-jwks")
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    if status != http::StatusCode::OK {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| failed(format!("reading the body (at most {MAX_BODY} bytes): {e}")))?;
    Ok(body.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_blocked_by_default() {
        let blocked = default_blocked_ranges();
        for ip in [
            "169.254.169.254",
            "fd00:ec2::254",
            "fe80::1",
            "100.100.100.200",
            "::ffff:169.254.169.254",
        ] {
            assert!(
                is_blocked(&blocked, ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{ip}"
            );
        }
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "8.8.8.8"] {
            assert!(
                !is_blocked(
                    &blocked,
                    ip.parse().unwrap_or(IpAddr::from([169, 254, 0, 1]))
                ),
                "{ip}"
            );
        }
    }

    #[test]
    fn discovery_documents_name_their_key_set() {
        assert_eq!(
            jwks_uri_of(br#"{"issuer":"https://id","jwks_uri":"https://id/keys"}"#),
            Ok("https://id/keys".to_string())
        );
        assert!(jwks_uri_of(br#"{"issuer":"https://id"}"#).is_err());
        assert!(jwks_uri_of(b"<html>").is_err());
    }
}
