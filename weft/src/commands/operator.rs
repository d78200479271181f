//! `weft operator`: the control plane over a Kubernetes cluster. Same
//! config store, xDS and monitoring as `weft standalone`; the inputs come
//! from the [`weft_operator::Stores`] watches instead of files. After each apply, the
//! status of every mesh object is brought up to date by
//! [`weft_operator::status::writer`], while this replica holds the leader
//! Lease ([`weft_operator::leader`]); every replica serves xDS. With
//! certificate files, or with `--webhook-service` (a certificate from
//! Weft's CA, [`weft_operator::webhook_certs`]), the admission webhook
//! ([`weft_operator::webhook`]) is served once the watches listed.
//!
//! The mesh config is ConfigMap `istio` (key `mesh`) in
//! `--control-plane-namespace`, watched with the rest: read before the CA
//! starts (it signs in its trust domain; see [`crate::mesh_config`]), then
//! on every change, a bad one refused and the last good one kept.
//!
//! A mesh kind whose CRD the cluster lacks (Weft's Quota on a cluster
//! with only Istio's CRDs) is not waited for: Weft serves the kinds it
//! finds, names the missing ones in its log, `/readyz`'s body and
//! `weft_operator_missing_crds`, and starts watching a kind when its CRD
//! is installed ([`weft_operator::served`]).
//!
//! Readiness while the apiserver is unreachable: `/readyz` stays 200. Once
//! the first config is applied and xDS listens, Weft serves the last config
//! it built from its watches' stores, which a broken watch leaves as they
//! were; the watches retry with backoff and count their failures in
//! `weft_watch_restarts_total{kind}` (alert on that, not on readiness).
//! Turning readiness off would only take a working xDS server out of
//! rotation while nothing better is available.

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use weft_citadel::{CertificateAuthority, CitadelMetrics};
use weft_config::ConfigStore;
use weft_model::{MeshConfig, MeshSnapshot};
use weft_xds::RejectionMap;

use crate::cli::OperatorArgs;
use crate::control_plane::{ConfigRecorder, ControlPlane, shutdown_signal};
use crate::debug::access::NamespaceAccess;
use crate::mesh_config::{MeshConfigState, Reload};
use crate::monitoring::Readiness;
use weft_operator::Stores;
use weft_operator::blame::StatusFeed;
use weft_operator::cluster_ca;
use weft_operator::discovery::DiscoverySelectors;
use weft_operator::leader::{self, LeaderMetrics, Leadership};
use weft_operator::served::{self, MissingKind};
use weft_operator::status::{
    self,
    writer::{StatusMetrics, StatusUpdate},
};
use weft_operator::stores::{MESH_CONFIG_KEY, MESH_CONFIG_MAP, watched_kinds};
use weft_operator::watch::WatchMetrics;
use weft_operator::webhook::{self, WebhookMetrics};
use weft_operator::webhook_certs::{self, WebhookCertMetrics};
use weft_source::debounce::Debouncer;

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    // Up first, so that health answers while the watches list.
    let lease = args.lease_config()?;
    let discovery = DiscoverySelectors::parse(&args.discovery_selector)?;
    let mut status_metrics = StatusMetrics::default();
    let mut watch_metrics = WatchMetrics::default();
    let mut webhook_metrics = WebhookMetrics::default();
    let mut leader_metrics = LeaderMetrics::default();
    let mut citadel_metrics = CitadelMetrics::default();
    let mut webhook_cert_metrics = WebhookCertMetrics::default();
    let plane = ControlPlane::start_monitoring_with(args.monitoring_address, |registry| {
        citadel_metrics = CitadelMetrics::register(registry);
        status_metrics = StatusMetrics::register(registry);
        watch_metrics = WatchMetrics::register(registry, &watched_kinds());
        webhook_metrics = WebhookMetrics::register(registry);
        leader_metrics = LeaderMetrics::register(registry);
        webhook_cert_metrics = WebhookCertMetrics::register(registry);
    })
    .await?;
    let client = client(args.kubeconfig.as_deref()).await?;
    let leadership = leader::spawn(client.clone(), lease, leader_metrics);

    let (changes, receiver) = mpsc::unbounded_channel();
    let stores = Stores::watch(
        &client,
        &changes,
        &watch_metrics,
        discovery,
        &args.control_plane_namespace,
    );
    drop(changes);
    tokio::spawn(report_missing_crds(
        stores.missing_crds(),
        plane.readiness(),
    ));
    let debouncer = Debouncer::new(receiver, args.debounce_quiet.0, args.debounce_max.0);
    info!("waiting for the first list of every watched kind the cluster serves");
    stores.wait_until_listed().await?;
    let recorder = plane.recorder();
    // The mesh config before the CA: the CA signs in its trust domain.
    let mesh = MeshConfigFeed::start(&args, &stores, &recorder)?;
    // Debug readers from outside loopback: tokens of Weft's namespace.
    plane.set_debug_access(Arc::new(NamespaceAccess::new(
        args.control_plane_namespace.clone(),
        Some(Arc::new(cluster_ca::TokenReviewer::new(
            client.clone(),
            mesh.state.trust_domain(),
        ))),
    )));
    let ca = start_certificate_service(
        &args,
        mesh.state.trust_domain(),
        &client,
        &stores,
        &leadership,
        citadel_metrics,
    )
    .await?;
    // It validates against the cluster's state: up once that is known.
    match webhook_serving_cert(&args, &client, ca, &leadership, webhook_cert_metrics)? {
        Some(tls) => {
            let stores = stores.clone();
            let namespaces = stores.clone();
            let mesh_configs = mesh.sender.subscribe();
            let cluster: webhook::ClusterInputs = Arc::new(move || webhook::ClusterState {
                inputs: stores.observe().inputs,
                mesh_config: mesh_configs.borrow().clone(),
            });
            let injection = webhook::Injection {
                config: args
                    .proxy
                    .inject_config(mesh.state.trust_domain(), &args.control_plane_namespace),
                namespaces: Arc::new(move |name| namespaces.namespace_labels(name)),
            };
            webhook::start(
                args.webhook_address,
                &tls,
                cluster,
                injection,
                webhook_metrics,
            )
            .await?;
        }
        None => info!(
            "validating webhook not served: neither --webhook-service nor --webhook-tls-cert / --webhook-tls-key given"
        ),
    }

    let mut store = ConfigStore::default();
    store.set_mesh_config(mesh.state.current());
    let observed = stores.observe();
    let applied = store.apply(observed.inputs);
    recorder.record(&applied);
    // Statuses are written by a task of their own: a slow apiserver never
    // holds back a reload or xDS.
    let outcomes = status::build_outcomes(&applied);
    let statuses = status::writer::spawn(
        client.clone(),
        status_metrics,
        StatusUpdate {
            objects: observed.objects.clone(),
            outcomes: outcomes.clone(),
        },
        leadership.subscribe(),
    );
    let mut statuses = StatusFeed::new(statuses);
    let rejections = plane.rejections().subscribe();
    let standing = rejections.borrow().clone();
    statuses.applied(observed.objects, outcomes, &standing, SystemTime::now());
    let (snapshots, receiver) = watch::channel(applied.snapshot);
    let jwks = weft_jwks::spawn(args.jwks.options()?, receiver.clone())?;
    let reloader = Reloader {
        stores,
        store,
        mesh,
        snapshots,
        recorder,
        statuses,
    };
    tokio::spawn(reloader.run(debouncer, rejections, jwks));
    tokio::spawn(release_on_shutdown(leadership));
    plane.serve_xds(args.xds_address, receiver).await
}

/// The webhook's certificate: the files given, or one from `ca` for
/// `--webhook-service`, renewed, with the configurations' `caBundle` kept
/// current while this replica leads; `None` without either.
fn webhook_serving_cert(
    args: &OperatorArgs,
    client: &Client,
    ca: CertificateAuthority,
    leadership: &Leadership,
    metrics: WebhookCertMetrics,
) -> anyhow::Result<Option<webhook::ServingCert>> {
    if let Some(files) = args.webhook_tls() {
        return Ok(Some(webhook::ServingCert::Files(files)));
    }
    let Some(config) = args.webhook_cert() else {
        return Ok(None);
    };
    tokio::spawn(webhook_certs::keep_ca_bundles(
        client.clone(),
        ca.root_pem().to_string(),
        config.clone(),
        leadership.subscribe(),
        metrics.clone(),
    ));
    let cert = webhook_certs::start_rotating(ca, &config, metrics)?;
    Ok(Some(webhook::ServingCert::Rotating(cert)))
}

/// The CA from the cluster ([`cluster_ca::load_or_create_ca`]), its root
/// published to every namespace while this replica leads, and the
/// certificate service checking tokens by TokenReview; returns the CA.
async fn start_certificate_service(
    args: &OperatorArgs,
    trust_domain: &str,
    client: &Client,
    stores: &Stores,
    leadership: &Leadership,
    metrics: CitadelMetrics,
) -> anyhow::Result<CertificateAuthority> {
    let ca = cluster_ca::load_or_create_ca(
        client,
        &args.control_plane_namespace,
        args.ca.ca_key_type.into(),
        trust_domain,
    )
    .await?;
    let namespaces = stores.clone();
    tokio::spawn(cluster_ca::publish_roots(
        client.clone(),
        ca.root_pem().to_string(),
        move || namespaces.namespace_names(),
        leadership.subscribe(),
    ));
    let reviewer = cluster_ca::TokenReviewer::new(client.clone(), trust_domain);
    crate::certificate_service::start(&args.ca, trust_domain, ca.clone(), reviewer, metrics)
        .await?;
    Ok(ca)
}

/// Keeps `/readyz`'s detail listing the mesh kinds not served for want of
/// their CRD (the operator logs and counts them too: [`weft_operator::served`]).
async fn report_missing_crds(
    mut missing: watch::Receiver<Option<Vec<MissingKind>>>,
    readiness: Readiness,
) {
    loop {
        let detail = missing
            .borrow_and_update()
            .as_deref()
            .map(served::readiness_detail)
            .unwrap_or_default();
        readiness.set_detail(detail);
        if missing.changed().await.is_err() {
            break;
        }
    }
}

/// On SIGTERM or Ctrl-C, releases the Lease if held, so that another
/// replica takes over at once.
async fn release_on_shutdown(leadership: Leadership) {
    shutdown_signal().await;
    leadership.release().await;
}

/// The client for `--kubeconfig`, or the inferred one (in-cluster, then
/// `$KUBECONFIG` / `~/.kube/config`).
pub(crate) async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
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

/// The mesh config of ConfigMap `istio` (key `mesh`) in the control
/// plane's namespace, as the control plane runs with it; the webhook reads
/// it from `sender`.
struct MeshConfigFeed {
    state: MeshConfigState,
    origin: String,
    sender: watch::Sender<Arc<MeshConfig>>,
}

impl MeshConfigFeed {
    /// The mesh config the watches listed (startup fails on a bad one).
    fn start(
        args: &OperatorArgs,
        stores: &Stores,
        recorder: &ConfigRecorder,
    ) -> anyhow::Result<Self> {
        let origin = format!(
            "ConfigMap {}/{MESH_CONFIG_MAP} key {MESH_CONFIG_KEY}",
            args.control_plane_namespace
        );
        let text = stores.mesh_config_text();
        let state =
            MeshConfigState::start(text.as_deref(), args.ca.trust_domain.as_deref(), &origin)?
                .with_jwks_fetch(args.jwks.fetch_mode());
        if text.is_some() {
            recorder.record_mesh_config(&origin, &Reload::Applied(state.current()));
        } else {
            info!("no {origin}: Istio's default mesh config");
        }
        let (sender, _) = watch::channel(state.current());
        Ok(Self {
            state,
            origin,
            sender,
        })
    }
}

/// What each debounced change of the watched state is applied to.
struct Reloader {
    stores: Stores,
    store: ConfigStore,
    mesh: MeshConfigFeed,
    snapshots: watch::Sender<Arc<MeshSnapshot>>,
    recorder: ConfigRecorder,
    statuses: StatusFeed,
}

impl Reloader {
    /// Applies the watched state after each debounced change, and keeps
    /// the statuses current with each apply and each change of what
    /// proxies reject.
    async fn run(
        mut self,
        mut debouncer: Debouncer,
        mut rejections: watch::Receiver<Arc<RejectionMap>>,
        mut jwks: watch::Receiver<weft_jwks::Fetched>,
    ) {
        loop {
            tokio::select! {
                changed = debouncer.changed() => {
                    if changed.is_none() {
                        break;
                    }
                    let standing = rejections.borrow_and_update().clone();
                    self.apply(&standing);
                }
                Ok(()) = rejections.changed() => {
                    let standing = rejections.borrow_and_update().clone();
                    self.statuses.publish(&standing);
                }
                Some(fetched) = crate::control_plane::jwks_changed(&mut jwks) => {
                    let applied = self.store.set_fetched_jwks(fetched);
                    if applied.changed {
                        self.snapshots.send_replace(applied.snapshot);
                    }
                }
            }
        }
        warn!("every Kubernetes watch stopped; serving the last config");
    }

    /// Applies the mesh config (when it changed) and the inputs the
    /// watches hold now.
    fn apply(&mut self, standing: &Arc<RejectionMap>) {
        let observed = self.stores.observe();
        let reload = self.mesh.state.reload(observed.mesh_config.as_deref());
        self.recorder.record_mesh_config(&self.mesh.origin, &reload);
        let mut mesh_changed = false;
        if let Reload::Applied(mesh) = reload {
            self.mesh.sender.send_replace(mesh.clone());
            mesh_changed = self.store.set_mesh_config(mesh).changed;
        }
        let applied = self.store.apply(observed.inputs);
        self.recorder.record(&applied);
        let outcomes = status::build_outcomes(&applied);
        self.statuses
            .applied(observed.objects, outcomes, standing, SystemTime::now());
        if applied.changed || mesh_changed {
            self.snapshots.send_replace(applied.snapshot);
        }
    }
}
