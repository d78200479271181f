//! The SDS server Envoy reads its certificates from: state-of-the-world
//! `StreamSecrets` (and unary `FetchSecrets`) on a Unix socket, serving
//! `default` and `ROOTCA` from the current [`CertBundle`] and pushing
//! again whenever rotation publishes a new one. Delta SDS is not served
//! (Envoy uses state of the world for SDS unless told otherwise).

pub mod resources;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::bundle::CertBundle;
use resources::{RequestKind, StreamState};

/// The current certificate, `None` until the first one is issued.
pub type Bundles = watch::Receiver<Option<Arc<CertBundle>>>;

/// Why the SDS socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SdsError {
    #[error("cannot remove the stale SDS socket {path:?}: {source}")]
    Stale {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on the SDS socket {path:?} (does its directory exist?): {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the SDS socket {path:?} owner-only (0600): {source}")]
    Mode {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the SDS server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

impl SdsError {
    pub fn kind(&self) -> &'static str {
        match self {
            SdsError::Stale { .. } => "stale",
            SdsError::Bind { .. } => "bind",
            SdsError::Mode { .. } => "mode",
            SdsError::Serve(_) => "serve",
        }
    }
}

/// Binds the SDS socket at `path`: a stale socket file is removed first,
/// the new one is made owner-only (0600).
pub fn bind(path: &Path) -> Result<UnixListener, SdsError> {
    match std::fs::remove_file(path) {
        Ok(()) => debug!(path = %path.display(), "removed a stale SDS socket"),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SdsError::Stale {
                path: path.into(),
                source,
            });
        }
    }
    let listener = UnixListener::bind(path).map_err(|source| SdsError::Bind {
        path: path.into(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        SdsError::Mode {
            path: path.into(),
            source,
        }
    })?;
    Ok(listener)
}

/// Serves SDS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: UnixListener,
    bundles: Bundles,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), SdsError> {
    tonic::transport::Server::builder()
        .add_service(SecretDiscoveryServiceServer::new(SdsService { bundles }))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

#[derive(Debug)]
struct SdsService {
    bundles: Bundles,
}

type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl SecretDiscoveryService for SdsService {
    type DeltaSecretsStream = ResponseStream<DeltaDiscoveryResponse>;
    type StreamSecretsStream = ResponseStream<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented(
            "weft agent serves state-of-the-world SDS only; use api_type GRPC for SDS",
        ))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(run_stream(request.into_inner(), self.bundles.clone(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let current = self.bundles.borrow().clone();
        let Some(bundle) = current else {
            return Err(Status::unavailable(
                "no certificate yet: the agent is still waiting for the CA",
            ));
        };
        let mut state = StreamState::default();
        let mut request = request.into_inner();
        request.response_nonce.clear();
        match state.on_request(&request, Some(&bundle)) {
            (_, Some(response)) => Ok(Response::new(response)),
            (_, None) => Err(Status::invalid_argument(format!(
                "type_url must be {}",
                resources::SECRET_TYPE_URL
            ))),
        }
    }
}

async fn run_stream(
    mut inbound: Streaming<DiscoveryRequest>,
    mut bundles: Bundles,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let mut state = StreamState::default();
    let mut names = String::new();
    loop {
        let response = tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(request)) => {
                    names = request.resource_names.join(",");
                    let current = bundles.borrow().clone();
                    let (kind, response) = state.on_request(&request, current.as_deref());
                    match kind {
                        RequestKind::Subscribe => info!(names = %names, "SDS subscription"),
                        RequestKind::Ack { version } => debug!(names = %names, %version, "SDS ACK"),
                        RequestKind::Nack { message } => {
                            warn!(names = %names, error = %message, "Envoy rejected the secrets (NACK)")
                        }
                        RequestKind::Ignored => debug!(names = %names, "SDS request ignored (stale nonce or other type)"),
                    }
                    response
                }
                Ok(None) => break,
                Err(status) => {
                    debug!(%status, "SDS stream ended");
                    break;
                }
            },
            changed = bundles.changed() => {
                if changed.is_err() {
                    break;
                }
                let current = bundles.borrow_and_update().clone();
                current.and_then(|bundle| state.on_bundle(&bundle))
            }
        };
        if let Some(response) = response {
            debug!(names = %names, version = %response.version_info, nonce = %response.nonce, "SDS push");
            if tx.send(Ok(response)).await.is_err() {
                break;
            }
        }
    }
}
