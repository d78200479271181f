//! # weft-agent: the sidecar agent (`weft agent`)
//!
//! The agent runs next to Envoy in every pod. It proves the workload's
//! identity to the CA and hands Envoy the certificate, so that the private
//! key never leaves the pod (it never leaves this process's memory):
//!
//! ```text
//!   token file ─┐          (TLS, Bearer token)
//!   identity ──▶ rotation ───────────────────────▶ CA: IstioCertificateService
//!   new key + CSR  │  ◀── cert_chain (leaf … root) ──┘
//!                  ▼
//!          watch<CertBundle> ─▶ sds (Unix socket, 0600) ─▶ Envoy: `default`, `ROOTCA`
//!                  ▲ again at ½ lifetime ± 10%; on errors backoff
//!   envoy: bootstrap (weft-translate's, with sds-grpc) written, Envoy started,
//!          restarted when it dies, drained and SIGTERMed on shutdown
//!   status (0.0.0.0:15020): /stats/prometheus = agent + Envoy (admin, envoy_istio_* -> istio_*)
//!          + the app's metrics (ISTIO_PROMETHEUS_ANNOTATIONS); /healthz/ready = Envoy has config,
//!          is LIVE, and a certificate is held (also on Envoy's 15021, which routes here);
//!          /app-health/<container>/livez|readyz|startupz = the app's own probe
//!          (ISTIO_KUBE_APP_PROBERS) run against the pod's IP, uncaptured
//! ```
//!
//! - [`identity`]: SPIFFE ID, key and CSR (pure but for key randomness)
//! - [`bundle`]: the CA's answer checked; validity read from the leaf
//! - [`schedule`]: renewal time and backoff (pure)
//! - [`ca_client`]: the CA's gRPC client over TLS with the token
//! - [`rotation`]: the issue / publish / sleep loop
//! - [`sds`]: the SDS server and its per-stream state machine
//! - [`envoy`]: Envoy supervision
//! - [`status`]: the status port: merged metrics ([`status::merge`], pure),
//!   readiness ([`status::ready`], pure) and the app's rewritten probes
//!   ([`status::probers`], pure; [`status::app_probe`] runs them)
//! - [`metrics`]: the agent's own metrics (`weft_agent_*`)
//! - [`iptables`]: `weft agent iptables`, the transparent-capture rules
//!
//! Nothing here knows Kubernetes: the token is a file, the CA an address,
//! the app's metrics a URL. It serves SDS (to Envoy) and the status port,
//! nothing else.

pub mod bundle;
pub mod ca_client;
pub mod envoy;
pub mod identity;
pub mod iptables;
pub mod metrics;
pub mod rotation;
pub mod schedule;
pub mod sds;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info};

pub use bundle::CertBundle;
pub use ca_client::{CaClient, CaClientConfig, CaError};
pub use envoy::{EnvoyConfig, EnvoyError};
pub use identity::Identity;
pub use rotation::RotationStatus;
pub use sds::{Bundles, SdsError};
pub use status::{StatusConfig, StatusError};

/// What the agent needs (besides Envoy, which is optional).
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub ca: CaClientConfig,
    pub identity: Identity,
    /// Requested certificate validity; zero lets the CA choose.
    pub cert_ttl: Duration,
    /// The Unix socket SDS is served on.
    pub sds_socket: PathBuf,
    /// First retry delay after a failed certificate request (doubling).
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// The status port (merged metrics, readiness); `None` for none.
    pub status: Option<StatusConfig>,
}

/// Why the agent stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Sds(#[from] SdsError),
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("the SDS server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl AgentError {
    pub fn kind(&self) -> &'static str {
        match self {
            AgentError::Ca(err) => err.kind(),
            AgentError::Sds(err) => err.kind(),
            AgentError::Envoy(err) => err.kind(),
            AgentError::Status(err) => err.kind(),
            AgentError::Task(_) => "task",
        }
    }
}

/// The running certificate side of the agent: rotation and SDS.
#[derive(Debug)]
pub struct Agent {
    bundles: Bundles,
    status: watch::Receiver<RotationStatus>,
    rotation: JoinHandle<()>,
    sds: JoinHandle<Result<(), SdsError>>,
    stop_sds: oneshot::Sender<()>,
    /// Turns true when the SDS server has stopped (on `stop`, or failed).
    sds_done: watch::Receiver<bool>,
    socket: PathBuf,
}

impl Agent {
    /// Binds the SDS socket and starts requesting certificates (call
    /// inside a Tokio runtime).
    pub fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        let client = CaClient::new(&config.ca)?;
        let listener = sds::bind(&config.sds_socket)?;
        let (bundles_tx, bundles) = watch::channel(None::<Arc<CertBundle>>);
        let (status_tx, status) = watch::channel(RotationStatus::default());
        let rotation = rotation::Rotation {
            client,
            identity: config.identity.clone(),
            ttl: config.cert_ttl,
            retry_initial: config.retry_initial,
            retry_max: config.retry_max,
        };
        let rotation = tokio::spawn(rotation.run(bundles_tx, status_tx));
        let (stop_sds, stopped) = oneshot::channel::<()>();
        let (done_tx, sds_done) = watch::channel(false);
        let served = sds::serve(listener, bundles.clone(), async {
            let _ = stopped.await;
        });
        let sds = tokio::spawn(async move {
            let result = served.await;
            if let Err(err) = &result {
                error!(error = %err, "the SDS server failed");
            }
            done_tx.send_replace(true);
            result
        });
        info!(
            identity = %config.identity.spiffe_id(),
            ca = %config.ca.address,
            sds_socket = %config.sds_socket.display(),
            "agent started"
        );
        Ok(Agent {
            bundles,
            status,
            rotation,
            sds,
            stop_sds,
            sds_done,
            socket: config.sds_socket,
        })
    }

    /// The current certificate (`None` until the first is issued).
    pub fn bundles(&self) -> Bundles {
        self.bundles.clone()
    }

    /// Rotation progress.
    pub fn status(&self) -> watch::Receiver<RotationStatus> {
        self.status.clone()
    }

    /// Stops rotation and SDS and removes the socket.
    pub async fn stop(self) -> Result<(), AgentError> {
        self.rotation.abort();
        let _ = self.stop_sds.send(());
        let served = self.sds.await;
        let _ = std::fs::remove_file(&self.socket);
        served??;
        info!("agent stopped");
        Ok(())
    }
}

/// `weft agent`: certificates and SDS, the status port (when configured),
/// plus Envoy unless `envoy` is `None`, until `shutdown` resolves (or the
/// SDS server fails); then Envoy is drained and stopped before SDS and the
/// status port go away.
pub async fn run(
    config: AgentConfig,
    envoy: Option<EnvoyConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let status_config = config.status.clone();
    let agent = Agent::start(config)?;
    let status = match status_config {
        None => None,
        Some(status_config) => {
            match status::bind(status_config, agent.bundles(), agent.status()).await {
                Ok((listener, router)) => Some(tokio::spawn(status::serve(listener, router))),
                Err(err) => {
                    let _ = agent.stop().await;
                    return Err(err.into());
                }
            }
        }
    };
    let mut sds_done = agent.sds_done.clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            _ = sds_done.wait_for(|done| *done) => {}
        }
    };
    let outcome = match envoy {
        Some(envoy) => envoy::supervise(envoy, shutdown)
            .await
            .map_err(AgentError::from),
        None => {
            shutdown.await;
            Ok(())
        }
    };
    if let Some(status) = status {
        status.abort();
    }
    let stopped = agent.stop().await;
    outcome.and(stopped)
}
