//! The cluster's state as Weft watches it, one reflector store per kind,
//! and what it makes: config inputs and the mesh objects that get a status.
//!
//! ```text
//! kube-apiserver ──watch (kube::runtime::watcher + reflector)──▶ Stores
//!   CustomResourceDefinitions ─▶ served.rs: which mesh kinds the cluster serves
//!   every mesh kind it serves (weft_crds::Kind::ALL, in its own group, the
//!     version Weft reads; mesh_watch.rs: started and stopped with its CRD),
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
use crate::mesh_watch::{self, MeshWatch, WatchContext};
use crate::served::{self, MissingKind};
use crate::{services, watch};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::runtime::reflector::Store;
use tokio::sync::mpsc;
use weft_config::{Input, Origin};
use weft_crds::Kind;

/// The cluster's own kinds Weft watches besides the mesh kinds.
pub const CLUSTER_KINDS: [&str; 6] = [
    "Service",
    "EndpointSlice",
    "Pod",
    "Namespace",
    "ConfigMap",
    served::CRD_KIND,
];

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
    /// Every mesh kind's watch, in [`Kind::ALL`]'s order; each runs while
    /// the cluster serves its CRD ([`crate::served`]).
    mesh: Arc<[Arc<dyn MeshWatch>]>,
    /// The kinds whose CRD is missing; `None` until the CRDs are listed.
    missing: tokio::sync::watch::Receiver<Option<Vec<MissingKind>>>,
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
    /// Starts the watches of the CRDs, of every cluster kind
    /// ([`CLUSTER_KINDS`]; the mesh config's ConfigMap in
    /// `control_plane_namespace`), and of every mesh kind whose CRD the
    /// cluster serves, now or later; each change sends `()` on `changes`,
    /// each watch failure counts in `metrics`.
    pub fn watch(
        client: &Client,
        changes: &mpsc::UnboundedSender<()>,
        metrics: &watch::WatchMetrics,
        discovery: DiscoverySelectors,
        control_plane_namespace: &str,
    ) -> Self {
        let mesh: Arc<[Arc<dyn MeshWatch>]> = Kind::ALL.map(mesh_watch::for_kind).into();
        let (crd_changes, crd_pings) = mpsc::unbounded_channel();
        let crds = watch::watch_all_trimmed(
            client,
            served::CRD_KIND,
            crd_changes,
            metrics.clone(),
            served::trim_crd,
        );
        let (missing_sender, missing) = tokio::sync::watch::channel(None);
        let context = WatchContext {
            client: client.clone(),
            changes: changes.clone(),
            metrics: metrics.clone(),
        };
        tokio::spawn(served::run(
            crds,
            crd_pings,
            mesh.clone(),
            context,
            missing_sender,
        ));
        Self {
            mesh,
            missing,
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

    /// Waits until the CRDs are listed, and every watch (of the mesh kinds
    /// the cluster serves, and of the cluster kinds) has listed its kind
    /// once. A mesh kind whose CRD is missing is not waited for.
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
        self.missing
            .clone()
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::WatchStopped(served::CRD_KIND))?;
        for watch in self.mesh.iter() {
            watch.listed().await?;
        }
        listed(&self.services, "Service").await?;
        listed(&self.endpoint_slices, "EndpointSlice").await?;
        listed(&self.pods, "Pod").await?;
        listed(&self.namespaces, "Namespace").await?;
        listed(&self.mesh_config, "ConfigMap").await
    }

    /// The mesh kinds not served for want of their CRD, as of the last
    /// change of the CRDs (`None` before their first list).
    pub fn missing_crds(&self) -> tokio::sync::watch::Receiver<Option<Vec<MissingKind>>> {
        self.missing.clone()
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
        for watch in self.mesh.iter() {
            watch.add_to(&mut observed);
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
    pub(crate) fn add<K: MeshKind>(&mut self, store: &Store<K>) {
        let objects = store.state();
        self.inputs.extend(mesh::build_mesh_inputs(&objects));
        self.objects.extend(mesh::build_mesh_objects(&objects));
    }
}
