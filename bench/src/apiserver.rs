//! Writing the world into the real kube-apiserver with kube-rs: creates,
//! replaces and deletes of any kind the world uses, many at once, and the
//! status a kubelet would give each Pod (there is no kubelet).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

use crate::world::{self, NAMESPACE, Writes};

/// Requests in flight at once.
const CONCURRENCY: usize = 32;

/// The kinds the world holds: (apiVersion, kind, plural).
const KINDS: &[(&str, &str, &str)] = &[
    ("v1", "Pod", "pods"),
    ("v1", "Service", "services"),
    ("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    (
        "networking.istio.io/v1",
        "DestinationRule",
        "destinationrules",
    ),
    (
        "networking.istio.io/v1",
        "VirtualService",
        "virtualservices",
    ),
];

/// A kube-rs client with the admin identity of `kubeconfig`.
pub async fn client(kubeconfig: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading the kubeconfig")?;
    Client::try_from(config).context("building the Kubernetes client")
}

fn resource(kind: &str) -> Result<ApiResource> {
    let (api_version, kind, plural) = KINDS
        .iter()
        .find(|(_, k, _)| *k == kind)
        .ok_or_else(|| anyhow!("the benchmark does not write {kind} objects"))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

fn api(client: &Client, kind: &str) -> Result<Api<DynamicObject>> {
    Ok(Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &resource(kind)?,
    ))
}

fn parts(object: &Value) -> Result<(String, String, DynamicObject)> {
    let kind = object["kind"]
        .as_str()
        .ok_or_else(|| anyhow!("object without a kind: {object}"))?
        .to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .ok_or_else(|| anyhow!("object without a name: {object}"))?
        .to_string();
    let dynamic = serde_json::from_value(object.clone())
        .with_context(|| format!("{kind} {name} is not an object"))?;
    Ok((kind, name, dynamic))
}

/// Creates `object`; a Pod also gets a running status at its address.
async fn create(client: &Client, object: &Value) -> Result<()> {
    let (kind, name, dynamic) = parts(object)?;
    let api = api(client, &kind)?;
    api.create(&PostParams::default(), &dynamic)
        .await
        .with_context(|| format!("creating {kind} {NAMESPACE}/{name}"))?;
    if kind == "Pod" {
        let ip = pod_ip(object)?;
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(world::pod_status(ip)),
        )
        .await
        .with_context(|| format!("writing the status of Pod {NAMESPACE}/{name}"))?;
    }
    Ok(())
}

/// The address the world gave a Pod object (its annotation).
fn pod_ip(pod: &Value) -> Result<std::net::Ipv4Addr> {
    pod["metadata"]["annotations"][world::POD_IP_ANNOTATION]
        .as_str()
        .ok_or_else(|| anyhow!("pod without its address annotation: {pod}"))?
        .parse()
        .context("the pod's address annotation is not an IPv4 address")
}

/// Replaces `object` (server-side apply, so no resourceVersion is needed).
async fn replace(client: &Client, object: &Value) -> Result<()> {
    let (kind, name, dynamic) = parts(object)?;
    api(client, &kind)?
        .patch(
            &name,
            &PatchParams::apply("weft-bench").force(),
            &Patch::Apply(&dynamic),
        )
        .await
        .with_context(|| format!("replacing {kind} {NAMESPACE}/{name}"))?;
    Ok(())
}

async fn delete(client: &Client, kind: &str, name: &str) -> Result<()> {
    api(client, kind)?
        .delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting {kind} {NAMESPACE}/{name}"))?;
    Ok(())
}

/// Runs `writes`: every create, then every replace, then every delete,
/// each group [`CONCURRENCY`] at a time.
pub async fn write(client: &Client, writes: &Writes) -> Result<()> {
    create_all(client, &writes.create).await?;
    stream::iter(writes.replace.iter().map(|o| replace(client, o)))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    stream::iter(writes.delete.iter().map(|(k, n)| delete(client, k, n)))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Creates `objects`, [`CONCURRENCY`] at a time.
pub async fn create_all(client: &Client, objects: &[Value]) -> Result<()> {
    stream::iter(objects.iter().map(|o| create(client, o)))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Creates the world's namespace (`default` ServiceAccount included: the
/// apiserver alone has no controller to make it).
pub async fn create_namespace(client: &Client) -> Result<()> {
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(NAMESPACE.to_string());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .with_context(|| format!("creating namespace {NAMESPACE}"))?;
    let mut account = ServiceAccount::default();
    account.metadata.name = Some("default".to_string());
    match Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &account)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => bail!("creating ServiceAccount {NAMESPACE}/default: {err}"),
    }
}
