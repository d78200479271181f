//! Test certificates (rcgen) and TLS servers and clients (rustls).
//!
//! # API
//!
//! - `TestPki::new()`: a fresh CA (ECDSA P-256) in its own temp dir; its
//!   certificate is at [`TestPki::ca_path`] (`ca.pem`), its PEM text at
//!   [`TestPki::ca_pem`]. The dir is removed when the `TestPki` is dropped,
//!   so keep it alive as long as Envoy reads the files.
//! - `TestPki::issue(&["reviews.example.com", "127.0.0.1", "spiffe://td/ns/a/sa/b"])`
//!   -> [`Issued`] `{cert_pem, key_pem, cert_path, key_path}`: a leaf signed by
//!   the CA, usable as server and as client certificate. Each name becomes a
//!   SAN: an IP address SAN if it parses as one, a URI SAN if it contains
//!   `://`, else a DNS SAN. The files are written into the PKI's dir.
//! - `TlsUpstream::start(identity, ip, &issued, client_ca_pem)`: an
//!   HTTPS/1.1 echo server like [`crate::Upstream`] on `ip` (kernel port). It
//!   answers every request 200 with `identity` as body, and the headers
//!   `x-upstream-identity: <identity>`, [`SNI_HEADER`] (the SNI the client
//!   sent, empty if none) and [`CLIENT_CERT_HEADER`] (`present` / `absent`).
//!   With `client_ca_pem: Some(ca)` it requires a client certificate signed
//!   by `ca` (for DestinationRule `tls.mode: MUTUAL`); a handshake without
//!   one fails and is counted in [`TlsUpstream::failed_handshakes`].
//!   [`TlsUpstream::requests`] counts answered requests.
//! - `start_tls_upstreams(block, identities, &pki, require_client_cert)`:
//!   one `TlsUpstream` per identity on `127.0.<block>.1, .2, ...`, each with
//!   a certificate for `<identity>.test` and its IP.
//! - `https_get(addr, sni, path, headers, ca_pem, client_cert)` ->
//!   `(status, body)`: one GET over a fresh TLS connection to `addr`,
//!   sending `sni` as SNI and `Host`, trusting only `ca_pem`, presenting
//!   `client_cert` if given. [`https_request`] is the same, returning the
//!   whole [`Reply`] (headers too).
//! - `base64(bytes)`: standard base64 with padding, e.g. for a
//!   `caBundle` of a webhook configuration.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::client::{REQUEST_TIMEOUT, Reply};
use crate::upstream::IDENTITY_HEADER;

/// The response header in which a [`TlsUpstream`] reports the SNI it got.
pub const SNI_HEADER: &str = "x-tls-sni";
/// The response header in which a [`TlsUpstream`] reports whether the
/// client presented a certificate (`present` / `absent`).
pub const CLIENT_CERT_HEADER: &str = "x-tls-client-cert";

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test certificate authority whose files live in a temp dir.
pub struct TestPki {
    dir: TempDir,
    ca_pem: String,
    ca_path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    next: AtomicU32,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// A leaf certificate and its key, as PEM text and as files.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestPki {
    /// A new CA, written to `<dir>/ca.pem`.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-pki-")
            .tempdir()
            .context("creating the PKI dir")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "weft e2e test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca_pem = cert.pem();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca_pem)
            .with_context(|| format!("writing {}", ca_path.display()))?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            dir,
            ca_pem,
            ca_path,
            next: AtomicU32::new(0),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate's file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The dir holding every file of this PKI.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A certificate for `names` (DNS names, IP addresses, or URIs such as
    /// `spiffe://...`), signed by the CA, written as `<n>-cert.pem` and
    /// `<n>-key.pem`.
    pub fn issue(&self, names: &[&str]) -> Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for name in names {
            let san = if let Ok(ip) = name.parse::<IpAddr>() {
                SanType::IpAddress(ip)
            } else if name.contains("://") {
                SanType::URI((*name).try_into()?)
            } else {
                SanType::DnsName((*name).try_into()?)
            };
            params.subject_alt_names.push(san);
        }
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let cert_path = self.dir.path().join(format!("{n}-cert.pem"));
        let key_path = self.dir.path().join(format!("{n}-key.pem"));
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_path,
            key_path,
        };
        std::fs::write(&issued.cert_path, &issued.cert_pem)
            .with_context(|| format!("writing {}", issued.cert_path.display()))?;
        std::fs::write(&issued.key_path, &issued.key_pem)
            .with_context(|| format!("writing {}", issued.key_path.display()))?;
        Ok(issued)
    }
}

pub(crate) fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parsing PEM certificates")?;
    if certs.is_empty() {
        bail!("no certificate in PEM text");
    }
    Ok(certs)
}

pub(crate) fn key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).context("parsing a PEM private key")
}

fn roots(ca_pem: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca_pem)? {
        roots.add(cert).context("adding a CA certificate")?;
    }
    Ok(roots)
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    failed_handshakes: AtomicU64,
}

/// A running HTTPS echo upstream; stops when dropped.
#[derive(Debug)]
pub struct TlsUpstream {
    identity: String,
    addr: SocketAddr,
    counters: Arc<Counters>,
    server: JoinHandle<()>,
}

impl TlsUpstream {
    /// Starts on `ip` (kernel-chosen port) with `cert`; with
    /// `client_ca_pem` it requires client certificates signed by that CA.
    pub async fn start(
        identity: &str,
        ip: IpAddr,
        cert: &Issued,
        client_ca_pem: Option<&str>,
    ) -> Result<Self> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca_pem {
            Some(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                        .build()?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(certs(&cert.cert_pem)?, key(&cert.key_pem)?)?;
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("binding TLS upstream {identity} on {ip}"))?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let server = tokio::spawn(serve(
            listener,
            TlsAcceptor::from(Arc::new(config)),
            identity.to_string(),
            counters.clone(),
        ));
        Ok(Self {
            identity: identity.to_string(),
            addr,
            counters,
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

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed (e.g. no or a wrong client certificate).
    pub fn failed_handshakes(&self) -> u64 {
        self.counters.failed_handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    identity: String,
    counters: Arc<Counters>,
) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let acceptor = acceptor.clone();
        let identity = identity.clone();
        let counters = counters.clone();
        connections.spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(_) => {
                    counters.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            };
            let (_, session) = tls.get_ref();
            let sni = session.server_name().unwrap_or_default().to_string();
            let client_cert = if session.peer_certificates().is_some_and(|c| !c.is_empty()) {
                "present"
            } else {
                "absent"
            };
            let service = service_fn(move |_req: Request<Incoming>| {
                counters.requests.fetch_add(1, Ordering::SeqCst);
                let mut response = Response::new(Full::new(Bytes::from(identity.clone())));
                let headers = response.headers_mut();
                for (name, value) in [
                    (IDENTITY_HEADER, identity.as_str()),
                    (SNI_HEADER, sni.as_str()),
                    (CLIENT_CERT_HEADER, client_cert),
                ] {
                    if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
                        headers.insert(name, value);
                    }
                }
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// One [`TlsUpstream`] per identity on `127.0.<block>.1`, `.2`, ..., each
/// with a certificate for `<identity>.test` and its IP address; with
/// `require_client_cert` they require client certificates from `pki`.
pub async fn start_tls_upstreams(
    block: u8,
    identities: &[&str],
    pki: &TestPki,
    require_client_cert: bool,
) -> Result<Vec<TlsUpstream>> {
    let mut upstreams = Vec::with_capacity(identities.len());
    for (i, identity) in identities.iter().enumerate() {
        let host = u8::try_from(i + 1).context("at most 254 upstreams per block")?;
        let ip = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, block, host));
        let name = format!("{identity}.test");
        let ip_text = ip.to_string();
        let cert = pki.issue(&[&name, &ip_text])?;
        let ca = require_client_cert.then(|| pki.ca_pem());
        upstreams.push(TlsUpstream::start(identity, ip, &cert, ca).await?);
    }
    Ok(upstreams)
}

/// `GET path` over TLS to `addr` with SNI and `Host` `sni`, trusting
/// `ca_pem`, presenting `client_cert` if given: (status, body).
pub async fn https_get(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    headers: &[(&str, &str)],
    ca_pem: &str,
    client_cert: Option<&Issued>,
) -> Result<(u16, String)> {
    let reply = https_request(addr, sni, path, headers, ca_pem, client_cert).await?;
    Ok((reply.status, reply.body))
}

/// Like [`https_get`], returning the whole reply.
pub async fn https_request(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    headers: &[(&str, &str)],
    ca_pem: &str,
    client_cert: Option<&Issued>,
) -> Result<Reply> {
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        https_once(addr, sni, path, headers, ca_pem, client_cert),
    )
    .await
    .map_err(|_| anyhow!("GET https://{sni}{path} via {addr} timed out after {REQUEST_TIMEOUT:?}"))?
    .with_context(|| format!("GET https://{sni}{path} via {addr}"))
}

async fn https_once(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    headers: &[(&str, &str)],
    ca_pem: &str,
    client_cert: Option<&Issued>,
) -> Result<Reply> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?);
    let config = match client_cert {
        Some(c) => builder.with_client_auth_cert(certs(&c.cert_pem)?, key(&c.key_pem)?)?,
        None => builder.with_no_client_auth(),
    };
    let server_name = ServerName::try_from(sni.to_string())
        .with_context(|| format!("{sni:?} is not a valid SNI"))?;
    let stream = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await
        .context("TLS handshake")?;
    crate::client::get_over(tls, sni, path, headers).await
}

/// `bytes` in standard base64 (RFC 4648, with padding), as Kubernetes
/// `[]byte` fields such as `caBundle` take them.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_round_trip_with_and_without_client_certificates() -> Result<()> {
        let pki = TestPki::new()?;
        let ip: IpAddr = "127.0.0.1".parse()?;
        let server = pki.issue(&["echo.test", "127.0.0.1"])?;
        let plain = TlsUpstream::start("plain", ip, &server, None).await?;
        let reply = https_request(plain.addr(), "echo.test", "/", &[], pki.ca_pem(), None).await?;
        assert_eq!((reply.status, reply.body.as_str()), (200, "plain"));
        assert_eq!(reply.header(SNI_HEADER), Some("echo.test"));
        assert_eq!(reply.header(CLIENT_CERT_HEADER), Some("absent"));

        let mutual = TlsUpstream::start("mutual", ip, &server, Some(pki.ca_pem())).await?;
        assert!(
            https_get(mutual.addr(), "echo.test", "/", &[], pki.ca_pem(), None)
                .await
                .is_err(),
            "a client without a certificate is refused"
        );
        let client = pki.issue(&["spiffe://cluster.local/ns/default/sa/client"])?;
        let reply = https_request(
            mutual.addr(),
            "echo.test",
            "/",
            &[],
            pki.ca_pem(),
            Some(&client),
        )
        .await?;
        assert_eq!((reply.status, reply.body.as_str()), (200, "mutual"));
        assert_eq!(reply.header(CLIENT_CERT_HEADER), Some("present"));
        assert_eq!(mutual.requests(), 1);
        assert!(mutual.failed_handshakes() >= 1);
        assert!(std::fs::read_to_string(pki.ca_path())?.contains("BEGIN CERTIFICATE"));
        assert!(std::fs::read_to_string(&client.key_path)?.contains("PRIVATE KEY"));
        Ok(())
    }
}
