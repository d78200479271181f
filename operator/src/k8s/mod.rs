//! The Kubernetes adapter: kube-apiserver watches -> config inputs.
//!
//! ```text
//! kube-apiserver ──watch (kube::runtime::watcher + reflector)──▶ Stores
//!   VirtualService, DestinationRule, ServiceEntry, Gateway, Sidecar (v1),
//!   PeerAuthentication (security.istio.io/v1),
//!   Service, EndpointSlice (discovery.k8s.io/v1), Pod, Namespace
//!        │ any change pings a channel ─▶ Debouncer (quiet / max delay)
//!        ▼
//! Stores::inputs(): Vec<pilot::config::Input>   (state of the world)
//!   mesh objects ─▶ pilot::config::convert      (mesh.rs)
//!   Services + EndpointSlices + Pods ─▶ model::Service (services.rs),
//!     from the namespaces the discovery selectors pick (discovery.rs)
//!        ▼
//! pilot::config::ConfigStore::apply ─▶ MeshSnapshot ─▶ xDS (as standalone)
//! ```
//!
//! All Kubernetes types stay in this module: `weft-pilot` sees only its own
//! inputs and model.

pub mod blame;
pub mod ca;
pub mod discovery;
pub mod leader;
pub mod mesh;
pub mod services;
pub mod status;
pub mod watch;
pub mod webhook_certs;

use std::collections::BTreeMap;
use std::sync::Arc;

use discovery::DiscoverySelectors;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::runtime::reflector::Store;
use tokio::sync::mpsc;
use weft_crds::{
    AuthorizationPolicy, DestinationRule, Gateway, PeerAuthentication, Quota, ResourceStatus,
    ServiceEntry, Sidecar, VirtualService,
};
use weft_pilot::config::{Input, Origin};

/// Every kind Weft watches, as its metrics and logs name it.
pub const WATCHED_KINDS: [&str; 12] = [
    "VirtualService",
    "DestinationRule",
    "ServiceEntry",
    "Gateway",
    "Sidecar",
    "PeerAuthentication",
    "AuthorizationPolicy",
    "Quota",
    "Service",
    "EndpointSlice",
    "Pod",
    "Namespace",
];

/// What the apiserver's objects are reported as coming from.
pub const SOURCE: &str = "kubernetes";

/// The origin of an object read from the apiserver: `kubernetes` (errors
/// name the resource, `Kind ns/name`, next to it).
pub fn origin() -> Origin {
    Origin {
        source: SOURCE.to_string(),
        document: None,
    }
}

/// The watched state of the cluster, one reflector store per kind.
#[derive(Clone)]
pub struct Stores {
    virtual_services: Store<VirtualService>,
    destination_rules: Store<DestinationRule>,
    service_entries: Store<ServiceEntry>,
    gateways: Store<Gateway>,
    sidecars: Store<Sidecar>,
    peer_authentications: Store<PeerAuthentication>,
    authorization_policies: Store<AuthorizationPolicy>,
    quotas: Store<Quota>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    /// Which namespaces' Services, EndpointSlices and Pods count.
    discovery: DiscoverySelectors,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// The adapter's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the watch of {0} stopped before its first list")]
    WatchStopped(&'static str),
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::WatchStopped(_) => "watch_stopped",
        }
    }
}

impl Stores {
    /// Starts the watches of every kind ([`WATCHED_KINDS`]); each change
    /// sends `()` on `changes`, each watch failure counts in `metrics`.
    pub fn watch(
        client: &Client,
        changes: &mpsc::UnboundedSender<()>,
        metrics: &watch::WatchMetrics,
        discovery: DiscoverySelectors,
    ) -> Self {
        Self {
            namespaces: watch::watch_all(client, "Namespace", changes.clone(), metrics.clone()),
            discovery,
            virtual_services: watch::watch_all(
                client,
                "VirtualService",
                changes.clone(),
                metrics.clone(),
            ),
            destination_rules: watch::watch_all(
                client,
                "DestinationRule",
                changes.clone(),
                metrics.clone(),
            ),
            service_entries: watch::watch_all(
                client,
                "ServiceEntry",
                changes.clone(),
                metrics.clone(),
            ),
            gateways: watch::watch_all(client, "Gateway", changes.clone(), metrics.clone()),
            sidecars: watch::watch_all(client, "Sidecar", changes.clone(), metrics.clone()),
            peer_authentications: watch::watch_all(
                client,
                "PeerAuthentication",
                changes.clone(),
                metrics.clone(),
            ),
            authorization_policies: watch::watch_all(
                client,
                "AuthorizationPolicy",
                changes.clone(),
                metrics.clone(),
            ),
            quotas: watch::watch_all(client, "Quota", changes.clone(), metrics.clone()),
            services: watch::watch_all(client, "Service", changes.clone(), metrics.clone()),
            endpoint_slices: watch::watch_all(
                client,
                "EndpointSlice",
                changes.clone(),
                metrics.clone(),
            ),
            pods: watch::watch_all_trimmed(
                client,
                "Pod",
                changes.clone(),
                metrics.clone(),
                watch::trim_pod,
            ),
        }
    }

    /// Waits until every watch has listed its kind once.
    pub async fn wait_until_listed(&self) -> Result<(), Error> {
        async fn listed<K: kube::Resource + Clone + 'static>(
            store: &Store<K>,
            kind: &'static str,
        ) -> Result<(), Error>
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store
                .wait_until_ready()
                .await
                .map_err(|_| Error::WatchStopped(kind))
        }
        listed(&self.virtual_services, "VirtualService").await?;
        listed(&self.destination_rules, "DestinationRule").await?;
        listed(&self.service_entries, "ServiceEntry").await?;
        listed(&self.gateways, "Gateway").await?;
        listed(&self.sidecars, "Sidecar").await?;
        listed(&self.peer_authentications, "PeerAuthentication").await?;
        listed(&self.authorization_policies, "AuthorizationPolicy").await?;
        listed(&self.quotas, "Quota").await?;
        listed(&self.services, "Service").await?;
        listed(&self.endpoint_slices, "EndpointSlice").await?;
        listed(&self.pods, "Pod").await?;
        listed(&self.namespaces, "Namespace").await
    }

    /// The labels of namespace `name`, `None` while it is unknown.
    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces
            .state()
            .iter()
            .find(|ns| ns.metadata.name.as_deref() == Some(name))
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default())
    }

    /// The names of the namespaces the cluster has now.
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces
            .state()
            .iter()
            .filter_map(|ns| ns.metadata.name.clone())
            .collect()
    }

    /// Every input the current state makes (state of the world).
    pub fn inputs(&self) -> Vec<Input> {
        self.observe().inputs
    }

    /// Every input the current state makes, and the mesh objects they were
    /// made from (read from the same state, so generations match).
    pub fn observe(&self) -> Observed {
        fn kind<K>(
            observed: &mut Observed,
            name: &'static str,
            store: &Store<K>,
            spec: impl Fn(&K) -> weft_crds::MeshResource,
            status: impl Fn(&K) -> Option<&ResourceStatus>,
        ) where
            K: kube::Resource + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            let objects = store.state();
            observed
                .inputs
                .extend(mesh::build_mesh_inputs(name, &objects, spec));
            observed
                .objects
                .extend(mesh::build_mesh_objects(name, &objects, status));
        }
        let mut observed = Observed::default();
        kind(
            &mut observed,
            "VirtualService",
            &self.virtual_services,
            mesh::virtual_service,
            |o| o.status.as_ref(),
        );
        kind(
            &mut observed,
            "DestinationRule",
            &self.destination_rules,
            mesh::destination_rule,
            |o| o.status.as_ref(),
        );
        kind(
            &mut observed,
            "ServiceEntry",
            &self.service_entries,
            mesh::service_entry,
            |o| o.status.as_ref(),
        );
        kind(
            &mut observed,
            "Gateway",
            &self.gateways,
            mesh::gateway,
            |o| o.status.as_ref(),
        );
        kind(
            &mut observed,
            "Sidecar",
            &self.sidecars,
            mesh::sidecar,
            |o| o.status.as_ref(),
        );
        kind(
            &mut observed,
            "PeerAuthentication",
            &self.peer_authentications,
            mesh::peer_authentication,
            |o| o.status.as_ref(),
        );
        kind(
            &mut observed,
            "AuthorizationPolicy",
            &self.authorization_policies,
            mesh::authorization_policy,
            |o| o.status.as_ref(),
        );
        kind(&mut observed, "Quota", &self.quotas, mesh::quota, |o| {
            o.status.as_ref()
        });
        let selected = self.discovery.selected_namespaces(&self.namespaces.state());
        let discovered = |namespace: Option<&String>| match &selected {
            None => true,
            Some(names) => namespace.is_some_and(|ns| names.contains(ns)),
        };
        let services = self.services.state();
        let slices = self.endpoint_slices.state();
        let pods = self.pods.state();
        observed.inputs.extend(services::build_service_inputs(
            &filter_namespaces(services, &discovered),
            &filter_namespaces(slices, &discovered),
            &filter_namespaces(pods, &discovered),
        ));
        observed
    }
}

/// The objects whose namespace `discovered` accepts.
fn filter_namespaces<K: kube::Resource>(
    objects: Vec<Arc<K>>,
    discovered: &impl Fn(Option<&String>) -> bool,
) -> Vec<Arc<K>> {
    objects
        .into_iter()
        .filter(|object| discovered(object.meta().namespace.as_ref()))
        .collect()
}

/// What [`Stores::observe`] read.
#[derive(Debug, Default)]
pub struct Observed {
    pub inputs: Vec<Input>,
    /// The mesh objects (the kinds with a status).
    pub objects: Vec<mesh::MeshObject>,
}
