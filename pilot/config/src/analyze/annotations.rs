//! `sidecar.istio.io/*` (and `traffic.` / `status.` / `readiness.status.`
//! `sidecar.istio.io/*`) annotations: every one Istio defines belongs on a
//! Pod (or a workload's pod template); one on a Service, a Namespace or a
//! workload's own metadata is misplaced and does nothing, and a key Istio
//! does not define (a typo) does nothing either.

use super::cluster::Meta;
use super::{Code, Context, Finding, Resource};

/// Istio's pod annotations under `sidecar.istio.io` (istio/api
/// `annotation/annotations.gen.go`).
const KNOWN: &[&str] = &[
    "readiness.status.sidecar.istio.io/applicationPorts",
    "readiness.status.sidecar.istio.io/failureThreshold",
    "readiness.status.sidecar.istio.io/initialDelaySeconds",
    "readiness.status.sidecar.istio.io/periodSeconds",
    "sidecar.istio.io/agentLogLevel",
    "sidecar.istio.io/bootstrapOverride",
    "sidecar.istio.io/componentLogLevel",
    "sidecar.istio.io/discoveryAddress",
    "sidecar.istio.io/enableCoreDump",
    "sidecar.istio.io/extraStatTags",
    "sidecar.istio.io/inject",
    "sidecar.istio.io/interceptionMode",
    "sidecar.istio.io/logLevel",
    "sidecar.istio.io/nativeSidecar",
    "sidecar.istio.io/proxyCPU",
    "sidecar.istio.io/proxyCPULimit",
    "sidecar.istio.io/proxyImage",
    "sidecar.istio.io/proxyImageType",
    "sidecar.istio.io/proxyMemory",
    "sidecar.istio.io/proxyMemoryLimit",
    "sidecar.istio.io/rewriteAppHTTPProbers",
    "sidecar.istio.io/statsHistogramBuckets",
    "sidecar.istio.io/statsInclusionPrefixes",
    "sidecar.istio.io/statsInclusionRegexps",
    "sidecar.istio.io/statsInclusionSuffixes",
    "sidecar.istio.io/status",
    "sidecar.istio.io/userVolume",
    "sidecar.istio.io/userVolumeMount",
    "status.sidecar.istio.io/port",
    "traffic.sidecar.istio.io/excludeInboundPorts",
    "traffic.sidecar.istio.io/excludeInterfaces",
    "traffic.sidecar.istio.io/excludeOutboundIPRanges",
    "traffic.sidecar.istio.io/excludeOutboundPorts",
    "traffic.sidecar.istio.io/includeInboundPorts",
    "traffic.sidecar.istio.io/includeOutboundIPRanges",
    "traffic.sidecar.istio.io/includeOutboundPorts",
    "traffic.sidecar.istio.io/kubevirtInterfaces",
];

pub(super) fn check(context: &Context<'_>) -> Vec<Finding> {
    let cluster = context.cluster;
    let pods = cluster
        .pods
        .iter()
        .map(|pod| (&pod.meta, pod.meta_path.as_str(), true));
    let others = cluster
        .namespaces
        .values()
        .chain(cluster.services.iter().map(|s| &s.meta))
        .chain(&cluster.workloads)
        .map(|meta| (meta, "metadata", false));
    pods.chain(others)
        .flat_map(|(meta, path, on_pod)| annotations(meta, path, on_pod))
        .collect()
}

fn annotations(meta: &Meta, path: &str, on_pod: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    for key in meta.annotations.keys() {
        let Some((prefix, _)) = key.split_once('/') else {
            continue;
        };
        if !prefix.ends_with("sidecar.istio.io") {
            continue;
        }
        let field = format!("{path}.annotations['{key}']");
        let resource = Resource::of_meta(meta);
        let finding = if !KNOWN.contains(&key.as_str()) {
            let fix = match closest(key) {
                Some(known) => format!("did you mean {known}? Rename it, or remove it"),
                None => "remove it, or use one of Istio's sidecar.istio.io annotations".to_string(),
            };
            Finding::new(
                Code::UnknownAnnotation,
                resource,
                field,
                format!("{key} is not an annotation Istio or Weft reads; it does nothing"),
                fix,
            )
        } else if on_pod {
            continue;
        } else {
            let fix = if meta.kind == "Namespace" && key == "sidecar.istio.io/inject" {
                format!(
                    "label the namespace instead: kubectl label namespace {} istio-injection=enabled",
                    meta.name
                )
            } else if meta.kind == "Service" || meta.kind == "Namespace" {
                "put it on the pods (the workload's spec.template.metadata.annotations)".to_string()
            } else {
                "move it to spec.template.metadata.annotations".to_string()
            };
            Finding::new(
                Code::MisplacedAnnotation,
                resource,
                field,
                format!(
                    "{key} is read on Pods only; on a {} it does nothing",
                    meta.kind
                ),
                fix,
            )
        };
        findings.push(finding.at(&meta.origin));
    }
    findings
}

/// The known annotation nearest to `key` (case-insensitive edit distance
/// of at most 3), for a typo.
fn closest(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    KNOWN
        .iter()
        .map(|known| (distance(&key, &known.to_ascii_lowercase()), *known))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}
