//! The kube-rs watches: one reflector store per kind, filled by
//! `kube::runtime::watcher` with the default backoff, and their metrics
//! (restarts, and the mesh kinds missing their CRD, which
//! [`crate::served`] sets). A watch runs until the process ends, or, for a
//! mesh kind, until its [`Watching`] is dropped (its CRD went away).
//! When a watch breaks, the watcher resumes from the last resource version
//! it saw, or relists when that version is gone; the reflector swaps in a
//! relisted state only once the list is complete, so nothing is lost or
//! duplicated. Every applied change pings the shared change channel.
//!
//! While the apiserver is unreachable every watch fails and retries with
//! kube-rs' default backoff (0.8 s doubling to 30 s, jittered), forever;
//! the stores keep their last state, so Weft keeps serving the last config
//! it built. Each failure counts in `weft_watch_restarts_total{kind}`.

use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, warn};

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WatchLabels {
    /// The watched kind, a fixed set (`VirtualService`, `Pod`, ...).
    pub kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CrdLabels {
    /// The mesh kind, a fixed set.
    pub kind: &'static str,
    /// The CRD it needs (one per kind).
    pub crd: String,
}

/// The watches' metrics. [`Default`] makes them unregistered (they count,
/// but nothing exports them); [`WatchMetrics::register`] exports them.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `weft_watch_restarts` | counter: watch failures, each retried with backoff | `kind` |
/// | `weft_operator_missing_crds` | gauge: 1 while the kind is not served for want of its CRD ([`crate::served`]), else 0 | `kind`, `crd` |
#[derive(Clone, Debug, Default)]
pub struct WatchMetrics {
    restarts: Family<WatchLabels, Counter>,
    missing_crds: Family<CrdLabels, Gauge>,
}

impl WatchMetrics {
    /// New metrics, registered in `registry`, with a zero series for each
    /// of `kinds` (so alerts on them work before the first failure).
    pub fn register(registry: &mut Registry, kinds: &[&'static str]) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_watch_restarts",
            "Kubernetes watch failures, each followed by a retry with backoff, by watched kind",
            metrics.restarts.clone(),
        );
        registry.register(
            "weft_operator_missing_crds",
            "Mesh kinds not served because their CRD is missing, not Established or does not \
             serve the version Weft reads (1), by kind and CRD",
            metrics.missing_crds.clone(),
        );
        for &kind in kinds {
            let _ = metrics.restarts.get_or_create(&WatchLabels { kind });
        }
        metrics
    }

    /// Records whether `kind` (CRD `crd`) is missing.
    pub fn set_missing(&self, kind: &'static str, crd: &str, missing: bool) {
        self.missing_crd(kind, crd).set(i64::from(missing));
    }

    /// Whether `kind` (CRD `crd`) was last recorded missing.
    pub fn is_missing(&self, kind: &'static str, crd: &str) -> bool {
        self.missing_crd(kind, crd).get() == 1
    }

    fn missing_crd(&self, kind: &'static str, crd: &str) -> Gauge {
        let labels = CrdLabels {
            kind,
            crd: crd.to_string(),
        };
        self.missing_crds.get_or_create_owned(&labels)
    }

    fn restarted(&self, kind: &'static str) {
        self.restarts.get_or_create(&WatchLabels { kind }).inc();
    }

    /// The failures of `kind`'s watch so far.
    pub fn restarts(&self, kind: &'static str) -> u64 {
        self.restarts.get_or_create(&WatchLabels { kind }).get()
    }
}

/// Starts watching every `K` in the cluster; returns the store it keeps
/// (without [`strip_bookkeeping`]'s fields). The watch runs until the
/// process ends; its failures count in `metrics`.
pub fn watch_all<K>(
    client: &Client,
    kind: &'static str,
    changes: mpsc::UnboundedSender<()>,
    metrics: WatchMetrics,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watch_all_trimmed(client, kind, changes, metrics, strip_bookkeeping)
}

/// [`watch_all`], keeping of each object what `trim` leaves.
pub fn watch_all_trimmed<K>(
    client: &Client,
    kind: &'static str,
    changes: mpsc::UnboundedSender<()>,
    metrics: WatchMetrics,
    trim: fn(&mut K),
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watch_all_until_dropped(client, kind, changes, metrics, trim).detach()
}

/// A watch that stops when dropped (the reflector task is aborted); its
/// store keeps what it held then.
#[derive(Debug)]
pub struct Watching<K: Resource<DynamicType = ()> + 'static> {
    pub store: Store<K>,
    /// `None` once detached.
    task: Option<AbortHandle>,
}

impl<K: Resource<DynamicType = ()> + 'static> Watching<K> {
    /// Keeps the watch running until the process ends.
    fn detach(mut self) -> Store<K> {
        self.task = None;
        self.store.clone()
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Drop for Watching<K> {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// [`watch_all_trimmed`], until the returned [`Watching`] is dropped: the
/// watch of a kind whose CRD may go away.
pub fn watch_all_until_dropped<K>(
    client: &Client,
    kind: &'static str,
    changes: mpsc::UnboundedSender<()>,
    metrics: WatchMetrics,
    trim: fn(&mut K),
) -> Watching<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watch_with(
        Api::all(client.clone()),
        watcher::Config::default(),
        kind,
        changes,
        metrics,
        trim,
    )
}

/// Starts watching the one `K` called `name` in `namespace` (a field
/// selector on its name, so RBAC may grant that object alone); its store
/// holds it, or nothing while it does not exist.
pub fn watch_named<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    kind: &'static str,
    changes: mpsc::UnboundedSender<()>,
    metrics: WatchMetrics,
) -> Store<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    watch_with(
        Api::namespaced(client.clone(), namespace),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
        kind,
        changes,
        metrics,
        strip_bookkeeping,
    )
    .detach()
}

/// The reflector of `api`'s objects that `config` selects.
fn watch_with<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    changes: mpsc::UnboundedSender<()>,
    metrics: WatchMetrics,
    trim: fn(&mut K),
) -> Watching<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(trim)
        .reflect(writer);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                // A relist (`Init` .. `InitDone`) takes effect at its end.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::InitDone) => {
                    debug!(kind, "listed");
                    let _ = changes.send(());
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    let _ = changes.send(());
                }
                Err(err) => {
                    metrics.restarted(kind);
                    warn!(kind, %err, "watch failed; serving the last state, retrying with backoff");
                }
            }
        }
        warn!(kind, "watch ended");
    });
    Watching {
        store: reader,
        task: Some(task.abort_handle()),
    }
}

/// Drops what the apiserver and kubectl add to objects and Weft never
/// reads: the field managers, and kubectl's copy of the last applied
/// object. They are often most of a small object's size, and the stores
/// hold every Pod in the cluster.
pub fn strip_bookkeeping<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Of a Pod, Weft reads the name, namespace, labels and service account
/// (of the endpoints whose EndpointSlice `targetRef` names it); the rest
/// (containers, volumes, annotations, status) is most of its size and is
/// dropped.
pub fn trim_pod(pod: &mut Pod) {
    let service_account = pod
        .spec
        .as_mut()
        .and_then(|spec| spec.service_account_name.take());
    pod.spec = Some(PodSpec {
        service_account_name: service_account,
        ..PodSpec::default()
    });
    pod.status = None;
    pod.metadata.annotations = None;
    strip_bookkeeping(pod);
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn bookkeeping_is_stripped_and_the_rest_kept() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let mut pod = Pod::default();
        pod.metadata.name = Some("reviews-1".into());
        pod.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        pod.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{}".to_string()),
                ("sidecar.istio.io/inject".to_string(), "true".to_string()),
            ]
            .into(),
        );
        strip_bookkeeping(&mut pod);
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(
            pod.metadata.annotations,
            Some([("sidecar.istio.io/inject".to_string(), "true".to_string())].into())
        );
        assert_eq!(pod.metadata.name.as_deref(), Some("reviews-1"));

        pod.metadata.annotations = Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
        strip_bookkeeping(&mut pod);
        assert_eq!(pod.metadata.annotations, None);
    }

    #[test]
    fn a_pod_keeps_its_name_labels_and_service_account_only() {
        use k8s_openapi::api::core::v1::{Container, PodStatus};
        let mut pod = Pod::default();
        pod.metadata.name = Some("reviews-1".into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.labels = Some([("app".to_string(), "reviews".to_string())].into());
        pod.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        pod.spec = Some(PodSpec {
            service_account_name: Some("bookinfo-reviews".into()),
            containers: vec![Container::default()],
            ..PodSpec::default()
        });
        pod.status = Some(PodStatus::default());
        let mut expected = Pod::default();
        expected.metadata.name = pod.metadata.name.clone();
        expected.metadata.namespace = pod.metadata.namespace.clone();
        expected.metadata.labels = pod.metadata.labels.clone();
        expected.spec = Some(PodSpec {
            service_account_name: Some("bookinfo-reviews".into()),
            ..PodSpec::default()
        });
        trim_pod(&mut pod);
        assert_eq!(pod, expected);
    }

    #[test]
    fn restarts_are_counted_per_kind_from_zero() {
        let mut registry = Registry::default();
        let metrics = WatchMetrics::register(&mut registry, &["Pod", "Service"]);
        metrics.restarted("Pod");
        metrics.restarted("Pod");
        assert_eq!(metrics.restarts("Pod"), 2);
        assert_eq!(metrics.restarts("Service"), 0);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("weft_watch_restarts_total{kind=\"Pod\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("weft_watch_restarts_total{kind=\"Service\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn missing_crds_are_a_gauge_per_kind_and_crd() {
        let mut registry = Registry::default();
        let metrics = WatchMetrics::register(&mut registry, &[]);
        metrics.set_missing("Quota", "quotas.policy.weft.dev", true);
        metrics.set_missing(
            "VirtualService",
            "virtualservices.networking.istio.io",
            false,
        );
        assert!(metrics.is_missing("Quota", "quotas.policy.weft.dev"));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "weft_operator_missing_crds{kind=\"Quota\",crd=\"quotas.policy.weft.dev\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "weft_operator_missing_crds{kind=\"VirtualService\",\
                 crd=\"virtualservices.networking.istio.io\"} 0"
            ),
            "{text}"
        );
        metrics.set_missing("Quota", "quotas.policy.weft.dev", false);
        assert!(!metrics.is_missing("Quota", "quotas.policy.weft.dev"));
    }
}
