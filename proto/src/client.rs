//! [`connect`]: a certificate-service client over TLS that trusts only the
//! mesh root, for callers of citadel: its tests and benchmarks, and the
//! end-to-end tests.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::istio::v1::auth::istio_certificate_service_client::IstioCertificateServiceClient;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The root or server name is unusable.
    #[error("client TLS configuration: {0}")]
    Tls(String),
    /// The connection failed.
    #[error("connecting to the certificate service: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Connects to the certificate service at `addr`, verifying its
/// certificate against `root_pem` for `server_name` (a DNS name or IP).
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    root_pem: &str,
) -> Result<IstioCertificateServiceClient<Channel>, ConnectError> {
    let mut roots = RootCertStore::empty();
    for block in
        pem::parse_many(root_pem).map_err(|e| ConnectError::Tls(format!("root is not PEM: {e}")))?
    {
        roots
            .add(CertificateDer::from(block.into_contents()))
            .map_err(|e| ConnectError::Tls(format!("root certificate unusable: {e}")))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConnectError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| ConnectError::Tls(format!("server name {server_name:?}: {e}")))?;
    let connector = TlsConnector::from(Arc::new(config));
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let name = name.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await?;
    Ok(IstioCertificateServiceClient::new(channel))
}
