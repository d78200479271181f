//! `weft standalone`: the control plane over a directory of YAML files.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};
use weft_pilot::config::metrics::ConfigMetrics;
use weft_pilot::config::{Applied, ConfigStore};
use weft_pilot::model::MeshSnapshot;
use weft_pilot::source::files::{DirWatcher, read_config_dir};
use weft_pilot::xds::{AdsServer, XdsMetrics};

use crate::cli::StandaloneArgs;
use crate::monitoring::{self, Readiness};

pub async fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    let dir = args.config_dir.as_path();
    anyhow::ensure!(
        dir.is_dir(),
        "--config-dir {} is not a directory",
        dir.display()
    );
    let mut registry = Registry::default();
    let xds_metrics = Arc::new(XdsMetrics::register(&mut registry));
    let config_metrics = ConfigMetrics::register(&mut registry);
    let readiness = Readiness::default();
    // Up first, so that health answers while the config loads.
    let monitoring = TcpListener::bind(args.monitoring_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.monitoring_address))?;
    let monitoring_address = monitoring.local_addr()?;
    info!(address = %monitoring_address, "monitoring server (/metrics, /healthz, /readyz) listening on {monitoring_address}");
    tokio::spawn(monitoring::serve(monitoring, registry, readiness.clone()));

    // Watch before the first read, so that no change falls between them.
    let watcher = DirWatcher::new(dir, args.debounce_quiet.0, args.debounce_max.0)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    let mut store = ConfigStore::default();
    let applied = store.apply(read_config_dir(dir));
    report(&applied);
    config_metrics.record(&applied);
    let (snapshots, receiver) = watch::channel(applied.snapshot);
    tokio::spawn(reload_on_change(
        dir.to_path_buf(),
        watcher,
        store,
        snapshots,
        config_metrics,
    ));

    let listener = TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.xds_address))?;
    // The first config is applied and xDS is bound: ready.
    readiness.set_ready();
    info!(address = %listener.local_addr()?, "xDS server listening on {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(
            AdsServer::new(receiver)
                .with_metrics(xds_metrics)
                .into_service(),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown_signal())
        .await
        .context("xDS server failed")?;
    info!("shut down");
    Ok(())
}

async fn reload_on_change(
    dir: std::path::PathBuf,
    mut watcher: DirWatcher,
    mut store: ConfigStore,
    snapshots: watch::Sender<Arc<MeshSnapshot>>,
    metrics: ConfigMetrics,
) {
    while watcher.changed().await.is_some() {
        let applied = store.apply(read_config_dir(Path::new(&dir)));
        report(&applied);
        metrics.record(&applied);
        if applied.changed {
            snapshots.send_replace(applied.snapshot);
        }
    }
    warn!(dir = %dir.display(), "stopped watching the config directory");
}

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
        errors = applied.errors.len(),
        "config applied"
    );
}

async fn shutdown_signal() {
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
