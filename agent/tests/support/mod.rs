//! Shared pieces of the agent's integration tests: an in-process CA
//! (IstioCertificateService over TLS, rcgen-signed, checking a bearer
//! token) and an SDS client over the agent's Unix socket.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use hyper_util::rt::TokioIo;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, IsCa, Issuer, KeyPair,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Endpoint, Uri};
use tonic::{Request, Response, Status};
use weft_agent::sds::resources::SECRET_TYPE_URL;
use weft_proto::istio::v1::auth::istio_certificate_service_server::{
    IstioCertificateService, IstioCertificateServiceServer,
};
use weft_proto::istio::v1::auth::{IstioCertificateRequest, IstioCertificateResponse};

pub const GOOD_TOKEN: &str = "good-token";

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("weft_agent=debug,info")
        .with_test_writer()
        .try_init();
}

/// The in-test CA: a root, a serving certificate for 127.0.0.1, and the
/// certificate service on a random local port.
#[derive(Debug)]
pub struct TestCa {
    pub address: SocketAddr,
    pub root_pem: String,
    /// Requests answered, refused included.
    pub requests: Arc<AtomicU64>,
    pub refused: Arc<AtomicU64>,
}

struct CaService {
    issuer: Arc<Issuer<'static, KeyPair>>,
    root_pem: String,
    requests: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl IstioCertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if bearer != format!("Bearer {GOOD_TOKEN}") {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Status::unauthenticated("the token is not valid"));
        }
        let request = request.into_inner();
        let mut csr = CertificateSigningRequestParams::from_pem(&request.csr)
            .map_err(|err| Status::invalid_argument(format!("bad CSR: {err}")))?;
        let ttl = if request.validity_duration > 0 {
            request.validity_duration
        } else {
            3600
        };
        let now = time::OffsetDateTime::now_utc();
        csr.params.not_before = now - time::Duration::seconds(1);
        csr.params.not_after = now + time::Duration::seconds(ttl);
        let leaf = csr
            .signed_by(&self.issuer)
            .map_err(|err| Status::internal(err.to_string()))?;
        Ok(Response::new(IstioCertificateResponse {
            cert_chain: vec![leaf.pem(), self.root_pem.clone()],
        }))
    }
}

/// A server TLS stream tonic can serve.
struct Tls(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for Tls {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Tls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl TestCa {
    pub async fn start() -> TestCa {
        let root_key = KeyPair::generate().unwrap();
        let mut root = CertificateParams::new(vec![]).unwrap();
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.distinguished_name
            .push(rcgen::DnType::CommonName, "weft test root");
        let root_cert = root.self_signed(&root_key).unwrap();
        let issuer = Arc::new(Issuer::new(root, root_key));

        let serving_key = KeyPair::generate().unwrap();
        let serving =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap()
                .signed_by(&serving_key, &issuer)
                .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![serving.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(serving_key.serialize_der().into()),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel::<std::io::Result<Tls>>(16);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        let _ = tx.send(Ok(Tls(stream))).await;
                    }
                });
            }
        });
        let requests = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let service = CaService {
            issuer,
            root_pem: root_cert.pem(),
            requests: requests.clone(),
            refused: refused.clone(),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(IstioCertificateServiceServer::new(service))
                .serve_with_incoming(ReceiverStream::new(rx)),
        );
        TestCa {
            address,
            root_pem: root_cert.pem(),
            requests,
            refused,
        }
    }

    /// The agent's configuration for this CA, the token in `dir/token`.
    pub fn agent_config(&self, dir: &Path, token: &str, ttl: Duration) -> weft_agent::AgentConfig {
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        weft_agent::AgentConfig {
            ca: weft_agent::CaClientConfig {
                address: self.address.to_string(),
                server_name: "127.0.0.1".into(),
                root_pem: self.root_pem.clone().into_bytes(),
                token_file,
            },
            identity: weft_agent::Identity {
                trust_domain: "cluster.local".into(),
                namespace: "ns1".into(),
                service_account: "reviews".into(),
            },
            cert_ttl: ttl,
            sds_socket: dir.join("sds.sock"),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_millis(500),
            status: None,
        }
    }
}

/// One SDS stream, as Envoy opens it: one per secret name.
#[derive(Debug)]
pub struct SdsStream {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
    names: Vec<String>,
}

impl SdsStream {
    pub async fn open(socket: &Path, names: &[&str]) -> SdsStream {
        let socket: PathBuf = socket.into();
        let channel =
            Endpoint::try_from("http://sds.local")
                .unwrap()
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?))
                    }
                }))
                .await
                .unwrap();
        let mut client = SecretDiscoveryServiceClient::new(channel);
        let (requests, rx) = mpsc::channel(4);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        requests
            .send(DiscoveryRequest {
                type_url: SECRET_TYPE_URL.into(),
                resource_names: names.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let responses = client
            .stream_secrets(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        SdsStream {
            requests,
            responses,
            names,
        }
    }

    /// The next response (within `within`), ACKed.
    pub async fn next(&mut self, within: Duration) -> DiscoveryResponse {
        let response = tokio::time::timeout(within, self.responses.message())
            .await
            .expect("no SDS response in time")
            .unwrap()
            .expect("the SDS stream ended");
        self.requests
            .send(DiscoveryRequest {
                type_url: SECRET_TYPE_URL.into(),
                resource_names: self.names.clone(),
                version_info: response.version_info.clone(),
                response_nonce: response.nonce.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        response
    }
}

/// The secrets of a response.
pub fn secrets(response: &DiscoveryResponse) -> Vec<Secret> {
    response
        .resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, SECRET_TYPE_URL);
            Secret::decode(any.value.as_slice()).unwrap()
        })
        .collect()
}

/// `default`'s certificate chain and key (PEM).
pub fn tls_certificate(secret: &Secret) -> (String, String) {
    let Some(secret::Type::TlsCertificate(tls)) = &secret.r#type else {
        panic!("not a TLS certificate: {secret:?}");
    };
    (inline(&tls.certificate_chain), inline(&tls.private_key))
}

/// `ROOTCA`'s trusted CA (PEM).
pub fn trusted_ca(secret: &Secret) -> String {
    let Some(secret::Type::ValidationContext(ctx)) = &secret.r#type else {
        panic!("not a validation context: {secret:?}");
    };
    inline(&ctx.trusted_ca)
}

fn inline(source: &Option<envoy_types::pb::envoy::config::core::v3::DataSource>) -> String {
    match source.as_ref().and_then(|s| s.specifier.as_ref()) {
        Some(data_source::Specifier::InlineBytes(bytes)) => {
            String::from_utf8(bytes.clone()).unwrap()
        }
        other => panic!("not inline bytes: {other:?}"),
    }
}

/// The leaf's URI SANs and validity (unix seconds).
pub fn leaf_facts(chain_pem: &str) -> (Vec<String>, i64, i64) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                uris.push(uri.to_string());
            }
        }
    }
    (
        uris,
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    )
}
