//! Sidecar injection: the mutating admission webhook's logic (`POST
//! /inject`) and `weft inject -f pod.yaml`, which applies it offline. It
//! owns the decision (whether a Pod gets a proxy), the template (what it
//! gets) and the JSONPatch that carries it; it does no I/O: the webhook
//! server and the command line feed it a Pod and its namespace's labels.
//!
//! ```text
//! AdmissionReview ─▶ review.rs ─▶ inject_pod(raw Pod JSON, namespace, labels, InjectConfig)
//!                                     │ policy.rs: decide ─▶ Skip(reason) ─▶ allowed, no patch
//!                                     │ template.rs: istio-init, istio-proxy, volumes, labels
//!                                     │ prometheus.rs: prometheus.io/* -> the status port (metrics merge)
//!                                     │ probes.rs: the app's probes -> 15020 /app-health/... (ISTIO_KUBE_APP_PROBERS)
//!                                     ▼ patch.rs: the JSONPatch (one add per item), and the Pod it yields
//! ```
//!
//! What a Pod gets (Istio's names, so Istio tooling recognises it): the
//! init container `istio-init` (`weft agent iptables`, NET_ADMIN/NET_RAW),
//! then the native sidecar `istio-proxy` (an init container with
//! `restartPolicy: Always` running `weft agent` as UID 1337) before the
//! Pod's own init containers, the volumes `workload-socket`,
//! `istio-token` (projected token, audience `istio-ca`), `istiod-ca-cert`
//! (ConfigMap `istio-ca-root-cert`) and `istio-envoy`, the labels
//! `security.istio.io/tlsMode`, `service.istio.io/canonical-name` and
//! `-revision`, and the annotation `sidecar.istio.io/status`, whose
//! presence makes a second injection a no-op. The proxy runs with
//! `--workload-name` (its Deployment, StatefulSet, ...), declares ports
//! 15090 (`http-envoy-prom`) and 15020 and has Istio's readiness and
//! startup probes on Envoy's `15021/healthz/ready`; the Pod's
//! `prometheus.io/*` annotations point at 15020, its own moved to the
//! proxy's `ISTIO_PROMETHEUS_ANNOTATIONS` (Istio's metrics merge, off with
//! `prometheus.istio.io/merge-metrics: "false"`); the app containers'
//! probes are rewritten to the agent's `15020/app-health/...`, the
//! originals in the proxy's `ISTIO_KUBE_APP_PROBERS` (off with
//! `sidecar.istio.io/rewriteAppHTTPProbers: "false"`).
//!
//! The mutation is made on the Pod's raw JSON, so fields this build of
//! `k8s-openapi` does not know survive; the injected Pod is the patch
//! applied, so the two agree. A Pod that cannot be injected (a bad
//! annotation, a name clash) is allowed unchanged with a warning: the
//! webhook's `failurePolicy` is for outages, not for one odd Pod.

pub mod documents;
pub mod patch;
pub mod policy;
pub mod probes;
pub mod prometheus;
pub mod review;
pub mod template;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

pub use policy::{Decision, Skip};

/// The proxy's image unless flags or `sidecar.istio.io/proxyImage` say
/// otherwise (the Helm chart's default).
pub const DEFAULT_PROXY_IMAGE: &str =
    concat!("ghcr.io/weft-mesh/proxy:", env!("CARGO_PKG_VERSION"));

/// CPU and memory, as Kubernetes quantities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

/// Everything injection needs besides the Pod: parsed once from flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectConfig {
    /// The proxy (and init) image.
    pub proxy_image: String,
    pub requests: Resources,
    pub limits: Resources,
    /// The CA's certificate service, as the proxy reaches it.
    pub ca_address: String,
    /// The xDS server, as the proxy reaches it.
    pub xds_address: String,
    pub trust_domain: String,
    /// The control plane's namespace: its Pods labelled
    /// `app.kubernetes.io/name=weft` are never injected.
    pub control_plane_namespace: String,
    /// Namespaces never injected (Istio: `kube-system`, `kube-public`).
    pub ignored_namespaces: Vec<String>,
    /// Outbound ports and CIDRs every proxy leaves alone, besides the
    /// Pod's own `traffic.sidecar.istio.io/exclude*` annotations.
    pub exclude_outbound_ports: Vec<u16>,
    pub exclude_outbound_cidrs: Vec<String>,
    /// Rewrite the app containers' probes to the agent's status port
    /// (Istio's mesh-wide default, on); a Pod's
    /// `sidecar.istio.io/rewriteAppHTTPProbers` overrides it.
    pub rewrite_app_probers: bool,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            proxy_image: DEFAULT_PROXY_IMAGE.to_string(),
            requests: Resources {
                cpu: "100m".to_string(),
                memory: "128Mi".to_string(),
            },
            limits: Resources {
                cpu: "2000m".to_string(),
                memory: "1024Mi".to_string(),
            },
            ca_address: "weft.weft-system.svc:15012".to_string(),
            xds_address: "weft.weft-system.svc:15010".to_string(),
            trust_domain: "cluster.local".to_string(),
            control_plane_namespace: "weft-system".to_string(),
            ignored_namespaces: vec!["kube-system".to_string(), "kube-public".to_string()],
            exclude_outbound_ports: Vec::new(),
            exclude_outbound_cidrs: Vec::new(),
            rewrite_app_probers: true,
        }
    }
}

/// What injection did with one Pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<T = Value> {
    /// Left alone, for this reason.
    Skipped(Skip),
    /// The Pod with its sidecar (raw JSON), or the patch that adds it.
    Injected(T),
}

/// Why a Pod cannot be injected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the object is not a Pod: {0}")]
    NotAPod(String),
    #[error(
        "annotation {annotation}: {value:?} is not {expected}; fix the annotation or remove it"
    )]
    Annotation {
        annotation: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the Pod already has {what} named {name}, which the sidecar needs; rename it")]
    NameClash { what: &'static str, name: String },
    #[error("{path} of the Pod is not {expected}")]
    Shape {
        path: &'static str,
        expected: &'static str,
    },
    #[error("cannot apply the sidecar's patch: {0}")]
    Patch(String),
    #[error("cannot encode the sidecar: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotAPod(_) => "not_a_pod",
            Error::Annotation { .. } => "annotation",
            Error::NameClash { .. } => "name_clash",
            Error::Shape { .. } => "shape",
            Error::Patch(_) => "patch",
            Error::Encode(_) => "encode",
        }
    }
}

/// The JSONPatch injecting the Pod `raw` (its JSON, as the apiserver
/// sent it) living in `namespace`, whose labels are `namespace_labels`.
pub fn inject_patch(
    raw: &Value,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    config: &InjectConfig,
) -> Result<Outcome<json_patch::Patch>, Error> {
    let pod: Pod =
        serde_json::from_value(raw.clone()).map_err(|err| Error::NotAPod(err.to_string()))?;
    match policy::decide(&pod, namespace, namespace_labels, config) {
        Decision::Skip(skip) => Ok(Outcome::Skipped(skip)),
        Decision::Inject => {
            let sidecar = template::build_sidecar(&pod, raw, namespace, config)?;
            Ok(Outcome::Injected(patch::build_patch(raw, &sidecar)?))
        }
    }
}

/// The Pod `raw` injected: [`inject_patch`]'s patch applied.
pub fn inject_pod(
    raw: &Value,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    config: &InjectConfig,
) -> Result<Outcome, Error> {
    Ok(
        match inject_patch(raw, namespace, namespace_labels, config)? {
            Outcome::Skipped(skip) => Outcome::Skipped(skip),
            Outcome::Injected(patch) => Outcome::Injected(patch::apply_patch(raw, &patch)?),
        },
    )
}

#[cfg(test)]
mod tests;
