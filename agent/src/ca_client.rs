//! The client of the CA's `IstioCertificateService` (citadel, istiod):
//! gRPC over TLS verified against the configured root, the
//! service-account token re-read from its file for every request and sent
//! as `authorization: Bearer <token>`, as Istio's agent does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};
use weft_proto::istio::v1::auth::IstioCertificateRequest;
use weft_proto::istio::v1::auth::istio_certificate_service_client::IstioCertificateServiceClient;

/// Where the CA is and how to trust and authenticate to it.
#[derive(Clone, Debug)]
pub struct CaClientConfig {
    /// `HOST:PORT` of the CA's TLS gRPC server.
    pub address: String,
    /// The name the CA's serving certificate must carry (DNS name or IP).
    pub server_name: String,
    /// PEM root(s) the CA's serving certificate chains to.
    pub root_pem: Vec<u8>,
    /// The service-account token, re-read on every request.
    pub token_file: PathBuf,
}

/// Why a certificate request failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the CA root has no PEM certificate that rustls accepts: {0}")]
    Root(String),
    #[error("{name:?} is not a valid TLS server name for the CA; pass --ca-server-name")]
    ServerName { name: String },
    #[error("cannot build a TLS client: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{address:?} is not a valid CA address (HOST:PORT): {source}")]
    Address {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("cannot read the service-account token {path:?}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the service-account token in {path:?} is empty or not a valid header value")]
    BadToken { path: PathBuf },
    #[error("CreateCertificate failed: {code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
}

impl CaError {
    pub fn kind(&self) -> &'static str {
        match self {
            CaError::Root(_) => "root",
            CaError::ServerName { .. } => "server_name",
            CaError::Tls(_) => "tls",
            CaError::Address { .. } => "address",
            CaError::Token { .. } => "token",
            CaError::BadToken { .. } => "bad_token",
            CaError::Rpc { code, .. } => match code {
                tonic::Code::Unauthenticated => "unauthenticated",
                tonic::Code::InvalidArgument => "invalid_argument",
                tonic::Code::Unavailable => "unavailable",
                _ => "rpc",
            },
        }
    }
}

impl From<tonic::Status> for CaError {
    fn from(status: tonic::Status) -> Self {
        CaError::Rpc {
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

/// A connection (made lazily, re-made as needed) to the CA.
#[derive(Clone, Debug)]
pub struct CaClient {
    client: IstioCertificateServiceClient<Channel>,
    token_file: PathBuf,
}

impl CaClient {
    /// Prepares the channel; nothing is dialed until the first request.
    pub fn new(config: &CaClientConfig) -> Result<Self, CaError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&config.root_pem) {
            let cert = cert.map_err(|err| CaError::Root(err.to_string()))?;
            roots
                .add(cert)
                .map_err(|err| CaError::Root(err.to_string()))?;
        }
        if roots.is_empty() {
            return Err(CaError::Root("no certificate found".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // gRPC servers (grpc-go, tonic) insist on ALPN h2.
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let connector = TlsConnector::from(Arc::new(tls));
        let server_name =
            ServerName::try_from(config.server_name.clone()).map_err(|_| CaError::ServerName {
                name: config.server_name.clone(),
            })?;
        let address = config.address.clone();
        // TLS is done here, not by tonic: the URI only names the authority.
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|source| CaError::Address {
                address: address.clone(),
                source,
            })?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let address = address.clone();
            async move {
                let tcp = TcpStream::connect(&address).await?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }));
        Ok(CaClient {
            client: IstioCertificateServiceClient::new(channel),
            token_file: config.token_file.clone(),
        })
    }

    /// Sends `csr_pem` asking for `ttl` (zero: the CA's default); returns
    /// the CA's `cert_chain`.
    pub async fn create_certificate(
        &self,
        csr_pem: &str,
        ttl: Duration,
    ) -> Result<Vec<String>, CaError> {
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|source| CaError::Token {
                path: self.token_file.clone(),
                source,
            })?;
        let token = token.trim();
        let bad_token = || CaError::BadToken {
            path: self.token_file.clone(),
        };
        if token.is_empty() {
            return Err(bad_token());
        }
        let bearer = format!("Bearer {token}").parse().map_err(|_| bad_token())?;
        let mut request = tonic::Request::new(IstioCertificateRequest {
            csr: csr_pem.to_string(),
            validity_duration: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            metadata: None,
        });
        request.metadata_mut().insert("authorization", bearer);
        let response = self.client.clone().create_certificate(request).await?;
        Ok(response.into_inner().cert_chain)
    }
}
