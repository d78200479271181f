//! What `weft standalone` and `weft operator` share: the monitoring server
//! (up first, so health answers while the config loads), reporting of each
//! applied config, the xDS (ADS) server over a stream of snapshots, and
//! shutdown on SIGTERM / Ctrl-C. The two commands differ only in where
//! their [`weft_config::Input`]s come from.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};
use weft_config::Applied;
use weft_config::metrics::ConfigMetrics;
use weft_model::MeshSnapshot;
use weft_quota_service::{QuotaMetrics, QuotaService};
use weft_xds::{AdsServer, DebugAccess, Rejections, XdsMetrics};

use crate::debug::DebugState;
use crate::mesh_config::Reload;
use crate::monitoring::{self, Readiness};

/// How long a shutdown waits for connected proxies' streams to end.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The metrics and readiness of a running control plane; the monitoring
/// server already serves them.
#[derive(Debug)]
pub struct ControlPlane {
    recorder: ConfigRecorder,
    xds_metrics: Arc<XdsMetrics>,
    quota_metrics: QuotaMetrics,
    readiness: Readiness,
    rejections: Rejections,
    debug: DebugState,
}

impl ControlPlane {
    /// Registers the metrics (`register` adds the caller's own first) and
    /// starts the monitoring server on `address` (`/metrics`, `/healthz`,
    /// `/readyz`), logging the address it bound.
    pub async fn start_monitoring_with(
        address: SocketAddr,
        register: impl FnOnce(&mut Registry),
    ) -> anyhow::Result<Self> {
        let mut registry = Registry::default();
        register(&mut registry);
        let xds_metrics = Arc::new(XdsMetrics::register(&mut registry));
        let config_metrics = ConfigMetrics::register(&mut registry);
        let quota_metrics = QuotaMetrics::register(&mut registry);
        let readiness = Readiness::default();
        let monitoring = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = monitoring.local_addr()?;
        info!(address = %bound, "monitoring server (/metrics, /healthz, /readyz, /debug/*) listening on {bound}");
        let debug = DebugState::default();
        tokio::spawn(monitoring::serve(
            monitoring,
            registry,
            readiness.clone(),
            debug.clone(),
        ));
        Ok(Self {
            recorder: ConfigRecorder {
                metrics: config_metrics,
                debug: debug.clone(),
            },
            xds_metrics,
            quota_metrics,
            readiness,
            rejections: Rejections::default(),
            debug,
        })
    }

    /// What logs and counts applied configs (cheap to clone: the clones
    /// share the registered metrics).
    pub fn recorder(&self) -> ConfigRecorder {
        self.recorder.clone()
    }

    /// Who may read the debug endpoints and istiod's debug xDS types
    /// (loopback callers only, unless set); set it before [`Self::serve_xds`].
    pub fn set_debug_access(&self, access: Arc<dyn DebugAccess>) {
        self.debug.set_access(access);
    }

    /// What `/readyz` answers (its detail is the caller's to set).
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The configs connected proxies currently reject (NACKs), as the xDS
    /// server records them.
    pub fn rejections(&self) -> Rejections {
        self.rejections.clone()
    }

    /// Serves xDS and the quota service (`envoy.service.ratelimit.v3`) on
    /// `address` from `snapshots` until SIGTERM or Ctrl-C.
    /// Call it once the first config is applied: binding marks the control
    /// plane ready.
    pub async fn serve_xds(
        self,
        address: SocketAddr,
        snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    ) -> anyhow::Result<()> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        self.readiness.set_ready();
        let bound = listener.local_addr()?;
        info!(address = %bound, "xDS server listening on {bound}");
        let (stopping, stopped) = tokio::sync::oneshot::channel();
        // The quota service of Global Quotas shares the xDS port: proxies
        // reach it through the bootstrap's xDS cluster.
        let quota = QuotaService::new(snapshots.clone(), self.quota_metrics).into_service();
        self.debug.serving(snapshots.clone());
        let server = tonic::transport::Server::builder()
            .add_service(quota)
            .add_service(
                AdsServer::new(snapshots)
                    .with_metrics(self.xds_metrics)
                    .with_rejections(self.rejections)
                    .with_debug_state(
                        self.debug.connections(),
                        self.debug.pushes(),
                        self.debug.cache(),
                    )
                    .with_debug_access(self.debug.access(), &instance_id())
                    .into_service(),
            )
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                shutdown_signal().await;
                let _ = stopping.send(());
            });
        // A graceful shutdown waits for every stream, and a connected proxy
        // keeps its ADS stream open forever: give them a grace period, then
        // exit (the proxies keep their config and reconnect elsewhere).
        tokio::select! {
            served = server => served.context("xDS server failed")?,
            () = async {
                if stopped.await.is_ok() {
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => info!(grace = ?SHUTDOWN_GRACE, "proxies still connected after the grace period; closing their streams"),
        }
        info!("shut down");
        Ok(())
    }
}

/// How debug answers name this instance: the pod's name (`POD_NAME`, or
/// the host name a pod gets), else `weft`.
fn instance_id() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "weft".to_string())
}

/// Logs and counts applied configs, and keeps the last for the debug
/// endpoints.
#[derive(Clone, Debug)]
pub struct ConfigRecorder {
    metrics: ConfigMetrics,
    debug: DebugState,
}

impl ConfigRecorder {
    /// Logs one applied config and records it in the metrics.
    pub fn record(&self, applied: &Applied) {
        report(applied);
        self.metrics.record(applied);
        self.debug.record(applied);
    }

    /// Logs and counts a mesh config read from `origin` (nothing for an
    /// unchanged one).
    pub fn record_mesh_config(&self, origin: &str, reload: &Reload) {
        match reload {
            Reload::Unchanged => {}
            Reload::Applied(mesh) => {
                info!(
                    origin,
                    root_namespace = %mesh.root_namespace,
                    trust_domain = %mesh.trust_domain,
                    providers = mesh.providers.len(),
                    "mesh config applied"
                );
                self.metrics.record_mesh_config(true);
            }
            Reload::Rejected(errors) => {
                for error in errors {
                    warn!(
                        origin,
                        reason = error.reason.kind(),
                        "mesh config error: {origin}: {error}"
                    );
                }
                warn!(
                    origin,
                    errors = errors.len(),
                    "mesh config rejected; the last good one is kept"
                );
                self.metrics.record_mesh_config(false);
            }
        }
    }
}

/// Logs the errors, kept resources and totals of one applied config.
fn report(applied: &Applied) {
    for error in &applied.errors {
        warn!(reason = error.error.reason.kind(), "config error: {error}");
    }
    for id in &applied.kept {
        warn!("{id}: serving its last good version until the error is fixed");
    }
    let snapshot = &applied.snapshot;
    info!(
        version = snapshot.version,
        changed = applied.changed,
        services = snapshot.services.len(),
        virtual_services = snapshot.virtual_services.len(),
        destination_rules = snapshot.destination_rules.len(),
        telemetries = snapshot.telemetries.len(),
        errors = applied.errors.len(),
        "config applied"
    );
}

/// Resolves on SIGTERM or Ctrl-C (each caller gets its own listener).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            warn!(%err, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The key sets, when they change; `None` once the fetcher stopped.
pub(crate) async fn jwks_changed(
    jwks: &mut tokio::sync::watch::Receiver<weft_jwks::Fetched>,
) -> Option<weft_jwks::Fetched> {
    jwks.changed().await.ok()?;
    Some(jwks.borrow_and_update().clone())
}
