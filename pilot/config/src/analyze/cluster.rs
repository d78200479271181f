//! The Kubernetes objects analysis reads, from documents (files, or the
//! cluster's objects serialised): Namespaces, Services, Pods, and the pod
//! templates of workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet,
//! Job, CronJob), which count as pods. Only the fields the checks need;
//! other kinds are counted, not read.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use weft_model::{
    CLUSTER_DOMAIN, Endpoint, Location, Protocol, ResourceId, ResourceKind, Service, ServicePort,
};

use crate::{ConvertedResource, Input, Origin};

/// Namespaces whose objects are Kubernetes' own: not checked.
pub const SYSTEM_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// A Kubernetes object's identity and metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub kind: String,
    /// Empty for cluster-scoped objects (Namespace).
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub origin: Origin,
}

impl Meta {
    /// Whether `selector` (non-empty) selects these labels.
    pub fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }

    pub fn is_system(&self) -> bool {
        SYSTEM_NAMESPACES.contains(&self.namespace.as_str())
    }
}

/// A Service port as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubePort {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub port: i64,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub app_protocol: Option<String>,
}

impl KubePort {
    /// Istio's protocol for this port.
    pub fn mesh_protocol(&self) -> Protocol {
        kubernetes_port_protocol(
            self.protocol.as_deref(),
            self.app_protocol.as_deref(),
            self.name.as_deref().unwrap_or_default(),
        )
    }
}

/// A Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeService {
    pub meta: Meta,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<KubePort>,
}

/// A Pod, or a workload's pod template (`template` names the workload's
/// kind; its `meta` is the template's labels and annotations under the
/// workload's name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubePod {
    pub meta: Meta,
    /// Where the pod's metadata is in its document: `metadata`, or
    /// `spec.template.metadata`.
    pub meta_path: String,
    pub template: bool,
    pub containers: Vec<String>,
    pub host_network: bool,
    pub ip: Option<String>,
}

/// The Kubernetes objects of an analysis.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub namespaces: BTreeMap<String, Meta>,
    pub services: Vec<KubeService>,
    pub pods: Vec<KubePod>,
    /// Workloads (Deployment, ...) as objects: their own metadata, for
    /// misplaced annotations.
    pub workloads: Vec<Meta>,
    /// Documents of other kinds, counted by kind.
    pub skipped: BTreeMap<String, usize>,
}

#[derive(Debug, Default, Deserialize)]
struct RawMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodSpec {
    #[serde(default)]
    containers: Vec<Named>,
    #[serde(default)]
    init_containers: Vec<Named>,
    #[serde(default)]
    host_network: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct Named {
    #[serde(default)]
    name: String,
}

impl Cluster {
    /// Reads one document that is not a mesh resource.
    pub fn add(&mut self, origin: &Origin, value: &Value) {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let meta = |path: &[&str]| -> Option<Meta> {
            let raw: RawMeta = serde_json::from_value(at(value, path)?.clone()).ok()?;
            let top: RawMeta = value
                .get("metadata")
                .and_then(|m| serde_json::from_value(m.clone()).ok())
                .unwrap_or_default();
            Some(Meta {
                kind: kind.to_string(),
                namespace: top
                    .namespace
                    .filter(|_| kind != "Namespace")
                    .unwrap_or_else(|| {
                        if kind == "Namespace" {
                            String::new()
                        } else {
                            crate::DEFAULT_NAMESPACE.to_string()
                        }
                    }),
                name: top.name,
                labels: raw.labels.unwrap_or_default(),
                annotations: raw.annotations.unwrap_or_default(),
                origin: origin.clone(),
            })
        };
        let read = match kind {
            "Namespace" => meta(&["metadata"]).map(|meta| {
                self.namespaces.insert(meta.name.clone(), meta);
            }),
            "Service" => meta(&["metadata"]).map(|meta| {
                let spec = value.get("spec");
                let selector = spec
                    .and_then(|s| s.get("selector"))
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                    .unwrap_or_default();
                let ports = spec
                    .and_then(|s| s.get("ports"))
                    .and_then(|p| serde_json::from_value(p.clone()).ok())
                    .unwrap_or_default();
                self.services.push(KubeService {
                    meta,
                    selector,
                    ports,
                });
            }),
            "Pod" => meta(&["metadata"]).map(|meta| {
                let ip = at(value, &["status", "podIP"])
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.pods
                    .push(pod(meta, "metadata", value.get("spec"), false, ip));
            }),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "CronJob" => {
                let template: &[&str] = if kind == "CronJob" {
                    &["spec", "jobTemplate", "spec", "template"]
                } else {
                    &["spec", "template"]
                };
                let mut path = template.to_vec();
                path.push("metadata");
                let workload = meta(&["metadata"]);
                // A template without metadata has no labels or annotations.
                let template_meta = meta(&path).or_else(|| {
                    workload.clone().map(|w| Meta {
                        labels: BTreeMap::new(),
                        annotations: BTreeMap::new(),
                        ..w
                    })
                });
                if let Some(workload) = workload {
                    self.workloads.push(workload);
                }
                template_meta.map(|meta| {
                    let mut spec_path = template.to_vec();
                    spec_path.push("spec");
                    let meta_path = path.join(".");
                    self.pods
                        .push(pod(meta, &meta_path, at(value, &spec_path), true, None));
                })
            }
            _ => None,
        };
        if read.is_none() {
            let name = if kind.is_empty() { "(no kind)" } else { kind };
            *self.skipped.entry(name.to_string()).or_default() += 1;
        }
    }

    /// The namespace's metadata, if the analysis has it.
    pub fn namespace(&self, name: &str) -> Option<&Meta> {
        self.namespaces.get(name)
    }

    /// One input per Service: a model service (its ports as Istio reads
    /// them, its pods as endpoints), as the operator's watches make one.
    pub fn service_inputs(&self) -> Vec<Input> {
        self.services
            .iter()
            .map(|service| {
                let meta = &service.meta;
                let id = ResourceId::new(ResourceKind::Service, &meta.namespace, &meta.name);
                let endpoints = self
                    .selected_pods(service)
                    .map(|pod| Endpoint {
                        address: pod.ip.clone().unwrap_or_else(|| pod.meta.name.clone()),
                        labels: pod.meta.labels.clone(),
                        ..Endpoint::default()
                    })
                    .collect();
                let model = Service {
                    hostname: format!("{}.{}.{CLUSTER_DOMAIN}", meta.name, meta.namespace),
                    namespace: meta.namespace.clone(),
                    ports: service
                        .ports
                        .iter()
                        .filter_map(|p| {
                            Some(ServicePort {
                                name: p.name.clone().unwrap_or_default(),
                                number: u16::try_from(p.port).ok()?,
                                protocol: p.mesh_protocol(),
                                target_port: None,
                            })
                        })
                        .collect(),
                    endpoints,
                    origin: id.clone(),
                    location: Location::MeshInternal,
                    ..Service::default()
                };
                Input::Resource {
                    origin: meta.origin.clone(),
                    id,
                    result: Ok(ConvertedResource::Services(vec![model])),
                }
            })
            .collect()
    }

    /// The pods (and templates) `service` selects.
    pub fn selected_pods<'a>(
        &'a self,
        service: &'a KubeService,
    ) -> impl Iterator<Item = &'a KubePod> + 'a {
        self.pods.iter().filter(move |pod| {
            !service.selector.is_empty()
                && pod.meta.namespace == service.meta.namespace
                && pod.meta.selected_by(&service.selector)
        })
    }
}

fn pod(
    meta: Meta,
    meta_path: &str,
    spec: Option<&Value>,
    template: bool,
    ip: Option<String>,
) -> KubePod {
    let spec: RawPodSpec = spec
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    KubePod {
        meta,
        meta_path: meta_path.to_string(),
        template,
        containers: spec
            .containers
            .into_iter()
            .chain(spec.init_containers)
            .map(|c| c.name)
            .collect(),
        host_network: spec.host_network.unwrap_or(false),
        ip,
    }
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

/// Istio's choice of protocol for a Kubernetes port: `appProtocol`
/// (including `kubernetes.io/h2c` -> HTTP2 and `kubernetes.io/ws(s)` ->
/// HTTP), else the name's prefix (`http`, `http-web`, `grpc-api`: the part
/// before the first `-`), else unknown; UDP and SCTP ports are never HTTP.
pub fn kubernetes_port_protocol(
    l4: Option<&str>,
    app_protocol: Option<&str>,
    name: &str,
) -> Protocol {
    if matches!(l4, Some(p) if !p.eq_ignore_ascii_case("TCP")) {
        return Protocol::Unknown;
    }
    if let Some(app) = app_protocol {
        let by_app = match app {
            "kubernetes.io/h2c" => Protocol::Http2,
            "kubernetes.io/ws" | "kubernetes.io/wss" => Protocol::Http,
            other => Protocol::parse(other),
        };
        if by_app != Protocol::Unknown {
            return by_app;
        }
    }
    let prefix = name.split('-').next().unwrap_or_default();
    Protocol::parse(prefix)
}
