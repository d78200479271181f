//! `weft operator`: the control plane over a Kubernetes cluster. Same
//! config store, xDS and monitoring as `weft standalone`; the inputs come
//! from the [`crate::k8s`] watches instead of files. After each apply, the
//! status of every mesh object is brought up to date by
//! [`crate::k8s::status::writer`], while this replica holds the leader
//! Lease ([`crate::k8s::leader`]); every replica serves xDS.

use std::sync::Arc;

use anyhow::Context;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use weft_pilot::config::ConfigStore;
use weft_pilot::model::MeshSnapshot;

use crate::cli::OperatorArgs;
use crate::k8s::Stores;
use crate::k8s::leader::{self, LeaderMetrics, Leadership, LeaseConfig};
use crate::k8s::status::{
    self,
    writer::{StatusMetrics, StatusUpdate},
};
use crate::server::{ConfigRecorder, ControlPlane};
use weft_pilot::source::debounce::Debouncer;

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    // Up first, so that health answers while the watches list.
    let lease = LeaseConfig::from_args(&args)?;
    let mut status_metrics = StatusMetrics::default();
    let mut leader_metrics = LeaderMetrics::default();
    let plane = ControlPlane::start_monitoring_with(args.monitoring_address, |registry| {
        status_metrics = StatusMetrics::register(registry);
        leader_metrics = LeaderMetrics::register(registry);
    })
    .await?;
    let client = client(&args).await?;
    let leadership = leader::spawn(client.clone(), lease, leader_metrics);

    let (changes, receiver) = mpsc::unbounded_channel();
    let stores = Stores::watch(&client, &changes);
    drop(changes);
    let debouncer = Debouncer::new(receiver, args.debounce_quiet.0, args.debounce_max.0);
    info!("waiting for the first list of every watched kind");
    stores.wait_until_listed().await?;

    let mut store = ConfigStore::default();
    let observed = stores.observe();
    let applied = store.apply(observed.inputs);
    let recorder = plane.recorder();
    recorder.record(&applied);
    // Statuses are written by a task of their own: a slow apiserver never
    // holds back a reload or xDS.
    let statuses = status::writer::spawn(
        client.clone(),
        status_metrics,
        StatusUpdate {
            objects: observed.objects,
            outcomes: status::build_outcomes(&applied),
        },
        leadership.subscribe(),
    );
    let (snapshots, receiver) = watch::channel(applied.snapshot);
    tokio::spawn(reload_on_change(
        stores, debouncer, store, snapshots, recorder, statuses,
    ));
    tokio::spawn(release_on_shutdown(leadership));
    plane.serve_xds(args.xds_address, receiver).await
}

/// On SIGTERM or Ctrl-C, releases the Lease if held, so that another
/// replica takes over at once. Runs beside the xDS server's own shutdown,
/// which may wait for connected proxies.
async fn release_on_shutdown(leadership: Leadership) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            warn!(%err, "cannot listen for SIGTERM; releasing the Lease on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    leadership.release().await;
}

/// The client for `--kubeconfig`, or the inferred one (in-cluster, then
/// `$KUBECONFIG` / `~/.kube/config`).
async fn client(args: &OperatorArgs) -> anyhow::Result<Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("cannot use the kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no Kubernetes config (in-cluster or kubeconfig) found; pass --kubeconfig")?,
    };
    info!(server = %config.cluster_url, "watching the Kubernetes API server at {}", config.cluster_url);
    Client::try_from(config).context("cannot create the Kubernetes client")
}

async fn reload_on_change(
    stores: Stores,
    mut debouncer: Debouncer,
    mut store: ConfigStore,
    snapshots: watch::Sender<Arc<MeshSnapshot>>,
    recorder: ConfigRecorder,
    statuses: watch::Sender<Arc<StatusUpdate>>,
) {
    while debouncer.changed().await.is_some() {
        let observed = stores.observe();
        let applied = store.apply(observed.inputs);
        recorder.record(&applied);
        statuses.send_replace(Arc::new(StatusUpdate {
            objects: observed.objects,
            outcomes: status::build_outcomes(&applied),
        }));
        if applied.changed {
            snapshots.send_replace(applied.snapshot);
        }
    }
    warn!("every Kubernetes watch stopped; serving the last config");
}
