//! Whether a Pod gets a sidecar: Istio's rules, as its webhook selectors
//! and injector apply them together.
//!
//! In order, the first that applies decides:
//! 1. already injected (annotation `sidecar.istio.io/status`): skip, so
//!    injection is idempotent;
//! 2. `hostNetwork: true`: skip (capture would redirect the node's
//!    traffic);
//! 3. a namespace in [`InjectConfig::ignored_namespaces`], or the control
//!    plane's own Pods (`app.kubernetes.io/name=weft` in
//!    [`InjectConfig::control_plane_namespace`]): skip;
//! 4. the Pod's `sidecar.istio.io/inject`: the label if present, else the
//!    annotation (the label wins, as in Istio). `y`, `yes`, `true`, `on`
//!    mean yes, any other non-empty value means no (Istio's parsing); no
//!    means skip;
//! 5. the namespace: `weft-injection` if present, else `istio-injection`;
//!    `enabled` injects, any other value skips (`disabled`);
//! 6. an unlabelled namespace injects only a Pod *labelled*
//!    `sidecar.istio.io/inject=true`: Istio's `object` webhook selects on
//!    the label, so the annotation alone never reaches its injector there.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::InjectConfig;

/// The Pod's own choice (label or annotation).
pub const INJECT: &str = "sidecar.istio.io/inject";
/// Present once a Pod was injected.
pub const STATUS: &str = "sidecar.istio.io/status";
/// The namespace labels that enable injection, the first present wins.
pub const NAMESPACE_LABELS: [&str; 2] = ["weft-injection", "istio-injection"];
/// The label that marks the control plane's Pods.
pub const CONTROL_PLANE_LABEL: (&str, &str) = ("app.kubernetes.io/name", "weft");

/// The verdict on one Pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Inject,
    Skip(Skip),
}

/// Why a Pod is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    AlreadyInjected,
    HostNetwork,
    IgnoredNamespace,
    ControlPlane,
    PodOptedOut,
    NamespaceDisabled,
    NamespaceNotEnabled,
}

impl Skip {
    /// Why, in a sentence (for logs and `weft inject`).
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::AlreadyInjected => "the pod is already injected (sidecar.istio.io/status)",
            Skip::HostNetwork => "the pod uses the host network",
            Skip::IgnoredNamespace => "the pod's namespace is never injected",
            Skip::ControlPlane => "the pod is the control plane's own",
            Skip::PodOptedOut => "the pod says sidecar.istio.io/inject: \"false\"",
            Skip::NamespaceDisabled => "the namespace's injection label is not \"enabled\"",
            Skip::NamespaceNotEnabled => {
                "the namespace has no injection label and the pod no sidecar.istio.io/inject=true label"
            }
        }
    }
}

/// Decides for `pod` in `namespace` (whose labels are `namespace_labels`).
pub fn decide(
    pod: &Pod,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    config: &InjectConfig,
) -> Decision {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    if annotations.contains_key(STATUS) {
        return Decision::Skip(Skip::AlreadyInjected);
    }
    if pod
        .spec
        .as_ref()
        .and_then(|spec| spec.host_network)
        .unwrap_or(false)
    {
        return Decision::Skip(Skip::HostNetwork);
    }
    if config.ignored_namespaces.iter().any(|ns| ns == namespace) {
        return Decision::Skip(Skip::IgnoredNamespace);
    }
    let (key, value) = CONTROL_PLANE_LABEL;
    if namespace == config.control_plane_namespace && labels.get(key).is_some_and(|v| v == value) {
        return Decision::Skip(Skip::ControlPlane);
    }
    let label = labels.get(INJECT).and_then(|v| parse_choice(v));
    let choice = label.or_else(|| annotations.get(INJECT).and_then(|v| parse_choice(v)));
    if choice == Some(false) {
        return Decision::Skip(Skip::PodOptedOut);
    }
    let namespace_label = NAMESPACE_LABELS
        .iter()
        .find_map(|key| namespace_labels.get(*key));
    match namespace_label {
        Some(value) if value == "enabled" => Decision::Inject,
        Some(_) => Decision::Skip(Skip::NamespaceDisabled),
        None if label == Some(true) => Decision::Inject,
        None => Decision::Skip(Skip::NamespaceNotEnabled),
    }
}

/// Istio's reading of `sidecar.istio.io/inject`: `None` when empty.
fn parse_choice(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" => None,
        "y" | "yes" | "true" | "on" => Some(true),
        _ => Some(false),
    }
}
