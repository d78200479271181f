//! Running one of the app's original probes ([`super::probers`]) on the
//! kubelet's behalf, as Istio's agent does: against the pod's own address
//! (the kubelet probes the pod IP), from the agent, whose UID the capture
//! rules exclude from outbound capture and whose connection to its own
//! pod's address never passes `PREROUTING`, so neither sidecar listener
//! sees it and STRICT mTLS does not refuse it.
//!
//! - `httpGet`: `GET path` over HTTP or HTTPS (the certificate unchecked,
//!   as the kubelet does), with the kubelet's request headers and the
//!   probe's `httpHeaders`; 200-399 succeeds. The answer carries the app's
//!   status (a redirect as 200, as Istio's agent answers it) and the first
//!   10 KiB of its body.
//! - `tcpSocket`: a connect.
//! - `grpc`: `grpc.health.v1.Health/Check` for the probe's service;
//!   `SERVING` succeeds.
//!
//! A probe that fails is answered 500 with why; every probe is bounded
//! by its `timeoutSeconds`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::probers::{AppProbe, HttpGet, ProbeAction};

/// How much of the app's answer is passed on (Istio's limit).
const MAX_BODY: usize = 10 * 1024;

/// What the kubelet is answered: a status code and a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub status: u16,
    pub body: String,
}

impl ProbeAnswer {
    fn ok(body: impl Into<String>) -> Self {
        ProbeAnswer {
            status: 200,
            body: body.into(),
        }
    }

    fn failed(body: impl Into<String>) -> Self {
        ProbeAnswer {
            status: 500,
            body: body.into(),
        }
    }
}

/// Runs `probe` against the app at `address` (the pod's IP); `incoming`
/// are the kubelet's request headers.
pub async fn run(probe: &AppProbe, address: IpAddr, incoming: &HeaderMap) -> ProbeAnswer {
    let work = async {
        match &probe.action {
            ProbeAction::HttpGet(get) => http_get(get, address, incoming).await,
            ProbeAction::TcpSocket { port } => {
                let target = SocketAddr::new(address, *port);
                match TcpStream::connect(target).await {
                    Ok(_) => ProbeAnswer::ok(format!("connected to {target}\n")),
                    Err(err) => ProbeAnswer::failed(format!("cannot connect to {target}: {err}\n")),
                }
            }
            ProbeAction::Grpc { port, service } => {
                grpc_check(SocketAddr::new(address, *port), service, probe.timeout).await
            }
        }
    };
    match tokio::time::timeout(probe.timeout, work).await {
        Ok(answer) => answer,
        Err(_) => ProbeAnswer::failed(format!(
            "the app did not answer within {:?}\n",
            probe.timeout
        )),
    }
}

/// Headers the agent's own connection decides, never copied from the
/// kubelet's request.
const HOP_BY_HOP: [&str; 5] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

async fn http_get(get: &HttpGet, address: IpAddr, incoming: &HeaderMap) -> ProbeAnswer {
    let target = SocketAddr::new(address, get.port);
    let scheme = if get.https { "https" } else { "http" };
    let url = format!("{scheme}://{target}{}", get.path);
    let stream = match TcpStream::connect(target).await {
        Ok(stream) => stream,
        Err(err) => return ProbeAnswer::failed(format!("cannot connect to {url}: {err}\n")),
    };
    let mut request = Request::get(get.path.as_str());
    let mut host = HeaderValue::from_str(&target.to_string()).ok();
    for (name, value) in incoming {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    if let Some(headers) = request.headers_mut() {
        for (name, value) in &get.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return ProbeAnswer::failed(format!(
                    "the probe's header {name}: {value:?} is not a valid HTTP header\n"
                ));
            };
            if name == HOST {
                host = Some(value);
            } else {
                headers.insert(name, value);
            }
        }
        if let Some(host) = host {
            headers.insert(HOST, host);
        }
    }
    let request = match request.body(Empty::<Bytes>::new()) {
        Ok(request) => request,
        Err(err) => return ProbeAnswer::failed(format!("cannot build the request {url}: {err}\n")),
    };
    let answer = if get.https {
        match tls_connect(stream, address).await {
            Ok(tls) => send(tls, request).await,
            Err(err) => Err(format!("TLS handshake failed: {err}")),
        }
    } else {
        send(stream, request).await
    };
    match answer {
        Ok((status, _)) if (300..400).contains(&status) => {
            ProbeAnswer::ok(format!("{url} redirected ({status})\n"))
        }
        Ok((status, body)) => ProbeAnswer { status, body },
        Err(err) => ProbeAnswer::failed(format!("{url}: {err}\n")),
    }
}

/// Sends `request` over `io` (HTTP/1.1); the status and the body's start.
async fn send<T>(io: T, request: Request<Empty<Bytes>>) -> Result<(u16, String), String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|err| err.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| err.to_string())?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut incoming = response.into_body();
    while body.len() < MAX_BODY {
        match incoming.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    body.extend_from_slice(data);
                }
            }
            // The status is known; a broken body does not change it.
            Some(Err(_)) | None => break,
        }
    }
    body.truncate(MAX_BODY);
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// TLS without checking the app's certificate, as the kubelet's HTTPS
/// probes do.
async fn tls_connect(
    stream: TcpStream,
    address: IpAddr,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let config = unverified_tls_client().map_err(|err| err.to_string())?;
    let name = rustls::pki_types::ServerName::IpAddress(address.into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|err| err.to_string())
}

/// A TLS client that accepts any server certificate (its handshake
/// signatures are still checked): what the kubelet's HTTPS probes, and so
/// the agent's, use.
pub fn unverified_tls_client() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

/// Accepts any server certificate (signatures are still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `grpc.health.v1.Health/Check` over plain-text HTTP/2 (the kubelet's
/// gRPC probes use no TLS either).
async fn grpc_check(target: SocketAddr, service: &str, timeout: Duration) -> ProbeAnswer {
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{target}")) {
        Ok(endpoint) => endpoint.connect_timeout(timeout).timeout(timeout),
        Err(err) => return ProbeAnswer::failed(format!("bad gRPC address {target}: {err}\n")),
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(err) => {
            return ProbeAnswer::failed(format!("cannot connect to gRPC {target}: {err}\n"));
        }
    };
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(response) => {
            let status = response.into_inner().status();
            if status == ServingStatus::Serving {
                ProbeAnswer::ok("SERVING\n")
            } else {
                ProbeAnswer::failed(format!("{target} is {}\n", status.as_str_name()))
            }
        }
        Err(status) if status.code() == tonic::Code::Unimplemented => ProbeAnswer::failed(format!(
            "{target} does not implement the gRPC health protocol (grpc.health.v1.Health): {}\n",
            status.message()
        )),
        Err(status) => ProbeAnswer::failed(format!(
            "gRPC health check of {target} failed: {:?} {}\n",
            status.code(),
            status.message()
        )),
    }
}
