//! Whether pods have their proxy: a namespace without an injection label
//! whose pods run without one (Info: it may be meant), and a pod missing
//! the proxy where it should have been injected (its namespace enables
//! injection, or it asks for it). The rules are the operator's injection
//! policy (`weft_operator::inject::policy`), over plain labels: the pod's
//! `sidecar.istio.io/inject` (label, else annotation), the namespace's
//! `weft-injection` or `istio-injection` (`enabled`), or `istio.io/rev`.
//! A pod has its proxy when it has a container `istio-proxy` or
//! `weft-proxy`, or the `sidecar.istio.io/status` annotation.

use std::collections::BTreeMap;

use super::cluster::KubePod;
use super::{Code, Context, Finding, Resource};

/// The pod's own choice.
const INJECT: &str = "sidecar.istio.io/inject";
/// Present once a pod was injected.
const STATUS: &str = "sidecar.istio.io/status";
/// The namespace labels that enable injection (the first present wins),
/// and the revision label, which Istio's revisioned webhooks select on.
const NAMESPACE_LABELS: [&str; 2] = ["weft-injection", "istio-injection"];
const REVISION_LABEL: &str = "istio.io/rev";
/// The injected proxy's container, by Istio's name and Weft's old one.
const PROXY_CONTAINERS: [&str; 2] = ["istio-proxy", "weft-proxy"];
/// Control planes' namespaces: their pods run without sidecars.
const CONTROL_PLANE_NAMESPACES: [&str; 2] = ["istio-system", "weft-system"];

pub(super) fn check(context: &Context<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut uninjected: BTreeMap<&str, Vec<&KubePod>> = BTreeMap::new();
    for pod in &context.cluster.pods {
        let namespace = pod.meta.namespace.as_str();
        if pod.meta.is_system() || CONTROL_PLANE_NAMESPACES.contains(&namespace) {
            continue;
        }
        let labels = context.cluster.namespace(namespace).map(|ns| &ns.labels);
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        let namespace_label = NAMESPACE_LABELS.iter().find_map(|key| labels.get(*key));
        let revision = labels.contains_key(REVISION_LABEL);
        let label = pod.meta.labels.get(INJECT).and_then(|v| parse_choice(v));
        let choice = label.or_else(|| {
            pod.meta
                .annotations
                .get(INJECT)
                .and_then(|v| parse_choice(v))
        });
        if has_proxy(pod) || pod.host_network || choice == Some(false) {
            continue;
        }
        let injects = match namespace_label {
            Some(value) => value == "enabled",
            None => revision || label == Some(true),
        };
        if injects {
            // A template is injected when its pods are created.
            if !pod.template {
                findings.push(missing_proxy(pod));
            }
        } else if namespace_label.is_none() && !revision {
            uninjected.entry(namespace).or_default().push(pod);
        }
    }
    for (namespace, pods) in uninjected {
        let names: Vec<String> = pods
            .iter()
            .map(|p| format!("{} {}", p.meta.kind, p.meta.name))
            .collect();
        let origin = context
            .cluster
            .namespace(namespace)
            .map(|ns| ns.origin.clone());
        let finding = Finding::new(
            Code::NamespaceNotInjected,
            Resource::new("Namespace", "", namespace),
            "metadata.labels",
            format!(
                "namespace {namespace} has no injection label, so its pods run without a proxy ({})",
                names.join(", ")
            ),
            format!(
                "kubectl label namespace {namespace} istio-injection=enabled, then restart its pods (or label the pods sidecar.istio.io/inject=true)"
            ),
        );
        findings.push(match origin {
            Some(origin) => finding.at(&origin),
            None => finding,
        });
    }
    findings
}

fn missing_proxy(pod: &KubePod) -> Finding {
    Finding::new(
        Code::PodMissingProxy,
        Resource::of_meta(&pod.meta),
        "spec.containers",
        format!(
            "pod {} should have been injected but has no istio-proxy container: it was created before injection was enabled, or the injection webhook did not run",
            pod.meta.name
        ),
        "delete the pod (or kubectl rollout restart its workload) so that it is created again with the proxy",
    )
    .at(&pod.meta.origin)
}

fn has_proxy(pod: &KubePod) -> bool {
    pod.meta.annotations.contains_key(STATUS)
        || pod
            .containers
            .iter()
            .any(|c| PROXY_CONTAINERS.contains(&c.as_str()))
}

/// Istio's reading of `sidecar.istio.io/inject`: `None` when empty.
fn parse_choice(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" => None,
        "y" | "yes" | "true" | "on" => Some(true),
        _ => Some(false),
    }
}
