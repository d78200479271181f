//! The cluster's state as Weft watches it, one reflector store per kind,
//! and what it makes: config inputs and the mesh objects that get a status.
//!
//! ```text
//! kube-apiserver ──watch (kube::runtime::watcher + reflector)──▶ Stores
//!   every mesh kind (weft_crds::Kind::ALL, in its own group, stored version),
//!   Service, EndpointSlice (discovery.k8s.io/v1), Pod, Namespace, and the
//!   mesh config: ConfigMap `istio` (key `mesh`) in the control plane's namespace
//!        │ any change pings a channel ─▶ the binary's Debouncer (quiet / max delay)
//!        ▼
//! Stores::observe(): Vec<weft_config::Input>   (state of the world),
//!   and the mesh config's text (parsed by the binary, which owns its policy)
//!   mesh objects ─▶ weft_config::convert        (mesh.rs)
//!   Services + EndpointSlices + Pods ─▶ weft_model::Service (services.rs),
//!     from the namespaces the discovery selectors pick (discovery.rs)
//! ```
//!
//! Kubernetes types stay in this crate: the config store and translation
//! see only their own inputs and model.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::discovery::DiscoverySelectors;
use crate::mesh::{self, MeshKind};
use crate::{services, watch};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::runtime::reflector::Store;
use tokio::sync::mpsc;
use weft_config::{Input, Origin};
use weft_crds::{
    AuthorizationPolicy, DestinationRule, Gateway, Kind, PeerAuthentication, Quota, ServiceEntry,
    Sidecar, Telemetry, VirtualService,
};

/// The cluster's own kinds Weft watches besides the mesh kinds.
pub const CLUSTER_KINDS: [&str; 5] = ["Service", "EndpointSlice", "Pod", "Namespace", "ConfigMap"];

/// The ConfigMap that holds the mesh config, in the control plane's
/// namespace (Istio's name).
pub const MESH_CONFIG_MAP: &str = "istio";
/// Its key whose value is the MeshConfig YAML.
pub const MESH_CONFIG_KEY: &str = "mesh";

/// Every kind Weft watches, as its metrics and logs name it: the mesh
/// kinds, then [`CLUSTER_KINDS`].
pub fn watched_kinds() -> Vec<&'static str> {
    Kind::ALL
        .map(Kind::as_str)
        .into_iter()
        .chain(CLUSTER_KINDS)
        .collect()
}

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
    telemetries: Store<Telemetry>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    /// [`MESH_CONFIG_MAP`] (none, or that one).
    mesh_config: Store<ConfigMap>,
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
    /// Starts the watches of every kind ([`watched_kinds`]), the mesh
    /// config's ConfigMap in `control_plane_namespace`; each change sends
    /// `()` on `changes`, each watch failure counts in `metrics`.
    pub fn watch(
        client: &Client,
        changes: &mpsc::UnboundedSender<()>,
        metrics: &watch::WatchMetrics,
        discovery: DiscoverySelectors,
        control_plane_namespace: &str,
    ) -> Self {
        fn mesh<K: MeshKind>(
            client: &Client,
            changes: &mpsc::UnboundedSender<()>,
            metrics: &watch::WatchMetrics,
        ) -> Store<K> {
            watch::watch_all(client, K::KIND.as_str(), changes.clone(), metrics.clone())
        }
        Self {
            namespaces: watch::watch_all(client, "Namespace", changes.clone(), metrics.clone()),
            mesh_config: watch::watch_named(
                client,
                control_plane_namespace,
                MESH_CONFIG_MAP,
                "ConfigMap",
                changes.clone(),
                metrics.clone(),
            ),
            discovery,
            virtual_services: mesh(client, changes, metrics),
            destination_rules: mesh(client, changes, metrics),
            service_entries: mesh(client, changes, metrics),
            gateways: mesh(client, changes, metrics),
            sidecars: mesh(client, changes, metrics),
            peer_authentications: mesh(client, changes, metrics),
            authorization_policies: mesh(client, changes, metrics),
            quotas: mesh(client, changes, metrics),
            telemetries: mesh(client, changes, metrics),
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
        for kind in Kind::ALL {
            let name = kind.as_str();
            match kind {
                Kind::VirtualService => listed(&self.virtual_services, name).await?,
                Kind::DestinationRule => listed(&self.destination_rules, name).await?,
                Kind::ServiceEntry => listed(&self.service_entries, name).await?,
                Kind::Gateway => listed(&self.gateways, name).await?,
                Kind::Sidecar => listed(&self.sidecars, name).await?,
                Kind::PeerAuthentication => listed(&self.peer_authentications, name).await?,
                Kind::AuthorizationPolicy => listed(&self.authorization_policies, name).await?,
                Kind::Quota => listed(&self.quotas, name).await?,
                Kind::Telemetry => listed(&self.telemetries, name).await?,
            }
        }
        listed(&self.services, "Service").await?;
        listed(&self.endpoint_slices, "EndpointSlice").await?;
        listed(&self.pods, "Pod").await?;
        listed(&self.namespaces, "Namespace").await?;
        listed(&self.mesh_config, "ConfigMap").await
    }

    /// The mesh config's text: key [`MESH_CONFIG_KEY`] of ConfigMap
    /// [`MESH_CONFIG_MAP`]; `None` when either is missing (Istio's
    /// defaults then).
    pub fn mesh_config_text(&self) -> Option<String> {
        self.mesh_config.state().iter().find_map(|map| {
            map.data
                .as_ref()
                .and_then(|data| data.get(MESH_CONFIG_KEY))
                .cloned()
        })
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

    /// Every input the current state makes, and the mesh objects they were
    /// made from (read from the same state, so generations match).
    pub fn observe(&self) -> Observed {
        let mut observed = Observed {
            mesh_config: self.mesh_config_text(),
            ..Observed::default()
        };
        for kind in Kind::ALL {
            match kind {
                Kind::VirtualService => observed.add(&self.virtual_services),
                Kind::DestinationRule => observed.add(&self.destination_rules),
                Kind::ServiceEntry => observed.add(&self.service_entries),
                Kind::Gateway => observed.add(&self.gateways),
                Kind::Sidecar => observed.add(&self.sidecars),
                Kind::PeerAuthentication => observed.add(&self.peer_authentications),
                Kind::AuthorizationPolicy => observed.add(&self.authorization_policies),
                Kind::Quota => observed.add(&self.quotas),
                Kind::Telemetry => observed.add(&self.telemetries),
            }
        }
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
    /// The mesh config's text ([`Stores::mesh_config_text`]).
    pub mesh_config: Option<String>,
}

impl Observed {
    /// Adds the inputs and objects of one mesh kind's store.
    fn add<K: MeshKind>(&mut self, store: &Store<K>) {
        let objects = store.state();
        self.inputs.extend(mesh::build_mesh_inputs(&objects));
        self.objects.extend(mesh::build_mesh_objects(&objects));
    }
}
