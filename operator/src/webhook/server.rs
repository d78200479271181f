//! The webhook's HTTPS server: TLS from PEM files or from a certificate
//! Weft issues and renews in place ([`ServingCert`]), connections accepted
//! and handshaken concurrently, then axum serving `POST /validate` (a thin
//! handler over [`super::review::respond`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, error, info, warn};

use super::cert::RotatingCert;
use super::decide::ClusterState;
use super::metrics::WebhookMetrics;
use super::review::{Reply, respond};
use crate::inject::InjectConfig;

/// The cluster's current inputs and mesh config, on demand (in `weft
/// operator`, `Stores::observe().inputs` and the mesh config it runs with).
pub type ClusterInputs = Arc<dyn Fn() -> ClusterState + Send + Sync>;

/// A namespace's labels, `None` when the namespace is unknown (in `weft
/// operator`, from the Namespace watch's store).
pub type NamespaceLabels = Arc<dyn Fn(&str) -> Option<BTreeMap<String, String>> + Send + Sync>;

/// What `POST /inject` needs.
#[derive(Clone)]
pub struct Injection {
    pub config: InjectConfig,
    pub namespaces: NamespaceLabels,
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injection")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook's certificate chain and key, PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the webhook's serving certificate comes from.
#[derive(Clone, Debug)]
pub enum ServingCert {
    /// PEM files, read once at start (`--webhook-tls-cert`,
    /// `--webhook-tls-key`).
    Files(TlsFiles),
    /// Issued by Weft's CA and swapped in place when renewed.
    Rotating(Arc<RotatingCert>),
}

/// Why the webhook cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot read the webhook certificate {path}: {message}; pass a PEM certificate chain with --webhook-tls-cert"
    )]
    Certificate { path: PathBuf, message: String },
    #[error(
        "cannot read the webhook key {path}: {message}; pass a PEM private key with --webhook-tls-key"
    )]
    Key { path: PathBuf, message: String },
    #[error("the webhook certificate and key cannot be used together: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot listen on {address} for the webhook: {source}; pick another --webhook-address")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Certificate { .. } => "certificate",
            Error::Key { .. } => "key",
            Error::Tls(_) => "tls",
            Error::Bind { .. } => "bind",
        }
    }
}

/// Loads `tls`, binds `address` and serves the webhook in a task; returns
/// the bound address, also logged as `validating webhook listening on
/// ADDR`.
pub async fn start(
    address: SocketAddr,
    tls: &ServingCert,
    cluster: ClusterInputs,
    injection: Injection,
    metrics: WebhookMetrics,
) -> Result<SocketAddr, Error> {
    let config = match tls {
        ServingCert::Files(files) => server_config(files)?,
        ServingCert::Rotating(cert) => rotating_server_config(cert.clone())?,
    };
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { address, source })?;
    info!(address = %bound, "validating webhook listening on {bound}");
    let (connections, receiver) = mpsc::channel(64);
    tokio::spawn(accept(listener, acceptor, connections));
    let router = router(cluster, injection, metrics);
    tokio::spawn(async move {
        let listener = TlsListener {
            connections: receiver,
            local: bound,
        };
        if let Err(err) = axum::serve(listener, router).await {
            error!(%err, "the validating webhook stopped");
        }
    });
    Ok(bound)
}

/// A rustls server config (ring, HTTP/1.1) from the PEM files.
pub fn server_config(tls: &TlsFiles) -> Result<ServerConfig, Error> {
    let certs = read_certs(&tls.cert)?;
    let key = read_key(&tls.key)?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A rustls server config (ring, HTTP/1.1) presenting whatever `cert`
/// holds at each handshake.
pub fn rotating_server_config(cert: Arc<RotatingCert>) -> Result<ServerConfig, Error> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let fail = |message: String| Error::Certificate {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| fail(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| fail(err.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no CERTIFICATE block in it".to_string()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| Error::Key {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

/// Accepts TCP connections and handshakes each in a task of its own, so a
/// slow client never holds back the others.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(%err, "the webhook cannot accept a connection; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = connections.send((tls, peer)).await;
                }
                Ok(Err(err)) => debug!(%peer, %err, "webhook TLS handshake failed"),
                Err(_) => debug!(%peer, "webhook TLS handshake timed out"),
            }
        });
    }
}

/// Handshaken connections, as axum wants them.
struct TlsListener {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept task never ends; if it did, nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

struct Webhook {
    cluster: ClusterInputs,
    injection: Injection,
    metrics: WebhookMetrics,
}

/// `POST /validate` over `cluster`, `POST /inject` with `injection`.
pub fn router(cluster: ClusterInputs, injection: Injection, metrics: WebhookMetrics) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/inject", post(inject))
        .with_state(Arc::new(Webhook {
            cluster,
            injection,
            metrics,
        }))
}

async fn inject(State(webhook): State<Arc<Webhook>>, body: Bytes) -> Response {
    let injection = &webhook.injection;
    let reply =
        crate::inject::review::respond(&body, &injection.config, |ns| (injection.namespaces)(ns));
    http_response(&webhook.metrics, reply)
}

async fn validate(State(webhook): State<Arc<Webhook>>, body: Bytes) -> Response {
    let cluster = webhook.cluster.clone();
    // Validation assembles the whole mesh: off the async workers.
    let reply = tokio::task::spawn_blocking(move || respond(&body, || cluster())).await;
    match reply {
        Ok(reply) => http_response(&webhook.metrics, reply),
        Err(err) => {
            error!(%err, "the webhook's validation task failed");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "the validation failed inside Weft; see its log\n",
            )
                .into_response()
        }
    }
}

/// `reply` as HTTP (a review is JSON, anything else plain text), counted.
fn http_response(metrics: &WebhookMetrics, reply: Reply) -> Response {
    if let Some((kind, allowed)) = reply.reviewed {
        metrics.record(kind, allowed);
    }
    let content_type = if reply.reviewed.is_some() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    (
        reply.status,
        [(header::CONTENT_TYPE, content_type)],
        reply.body,
    )
        .into_response()
}
