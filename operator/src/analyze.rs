//! `weft analyze --kubeconfig`: the cluster's objects as the documents
//! `weft_config::analyze` reads, listed once (no watch): every mesh kind
//! Weft serves, Services, Pods and Namespaces, and the mesh config
//! (ConfigMap `istio`, key `mesh`, in the control plane's namespace). A
//! mesh kind whose CRD is not installed is skipped and named.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use weft_config::Document;
use weft_crds::{
    AuthorizationPolicy, DestinationRule, Gateway, Kind, PeerAuthentication, Quota,
    RequestAuthentication, ServiceEntry, Sidecar, Telemetry, VirtualService,
};

use crate::stores::{MESH_CONFIG_KEY, MESH_CONFIG_MAP, origin};

/// What the cluster holds, for one analysis.
#[derive(Debug, Default)]
pub struct ClusterDocuments {
    pub documents: Vec<Document>,
    /// The mesh config's YAML, if ConfigMap `istio` has one.
    pub mesh_config: Option<String>,
    /// Mesh kinds not listed because the cluster does not serve them.
    pub missing_kinds: Vec<Kind>,
}

/// Lists the cluster's objects: namespaced ones in `namespace` (every
/// namespace when `None`), every Namespace, and the mesh config from
/// `control_plane_namespace`.
pub async fn list_cluster(
    client: &Client,
    namespace: Option<&str>,
    control_plane_namespace: &str,
) -> Result<ClusterDocuments, kube::Error> {
    let mut cluster = ClusterDocuments::default();
    for kind in Kind::ALL {
        let listed = match kind {
            Kind::VirtualService => list::<VirtualService>(client, namespace).await,
            Kind::DestinationRule => list::<DestinationRule>(client, namespace).await,
            Kind::ServiceEntry => list::<ServiceEntry>(client, namespace).await,
            Kind::Gateway => list::<Gateway>(client, namespace).await,
            Kind::Sidecar => list::<Sidecar>(client, namespace).await,
            Kind::PeerAuthentication => list::<PeerAuthentication>(client, namespace).await,
            Kind::RequestAuthentication => list::<RequestAuthentication>(client, namespace).await,
            Kind::AuthorizationPolicy => list::<AuthorizationPolicy>(client, namespace).await,
            Kind::Quota => list::<Quota>(client, namespace).await,
            Kind::Telemetry => list::<Telemetry>(client, namespace).await,
        };
        match listed {
            Ok(values) => cluster.documents.extend(values.into_iter().map(document)),
            Err(kube::Error::Api(status)) if status.code == 404 => cluster.missing_kinds.push(kind),
            Err(err) => return Err(err),
        }
    }
    let services = list::<Service>(client, namespace).await?;
    let pods = list::<Pod>(client, namespace).await?;
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|n| with_type(n, serde_json::to_value(n).unwrap_or(Value::Null)))
        .collect::<Vec<_>>();
    cluster.documents.extend(
        services
            .into_iter()
            .chain(pods)
            .chain(namespaces)
            .map(document),
    );
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), control_plane_namespace)
        .get_opt(MESH_CONFIG_MAP)
        .await?;
    cluster.mesh_config = config_map
        .and_then(|c| c.data)
        .and_then(|mut data| data.remove(MESH_CONFIG_KEY));
    Ok(cluster)
}

fn document(value: Value) -> Document {
    Document {
        origin: origin(),
        value: Ok(value),
    }
}

async fn list<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<Value>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|object| with_type(object, serde_json::to_value(object).unwrap_or(Value::Null)))
        .collect())
}

/// `value` with its `apiVersion` and `kind` (a list's items may lack them).
fn with_type<K: Resource<DynamicType = ()>>(_: &K, mut value: Value) -> Value {
    if let Value::Object(object) = &mut value {
        object
            .entry("apiVersion")
            .or_insert_with(|| Value::String(K::api_version(&()).into_owned()));
        object
            .entry("kind")
            .or_insert_with(|| Value::String(K::kind(&()).into_owned()));
    }
    value
}
