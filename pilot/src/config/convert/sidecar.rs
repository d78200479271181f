//! Sidecar -> model.
//!
//! Translated: `workloadSelector`, `egress[].hosts` (the services a sidecar
//! receives) and `outboundTrafficPolicy.mode: REGISTRY_ONLY` (what the
//! router listener does anyway: it routes registry services only).
//! Rejected as not supported yet: `ingress`, `inboundConnectionPool`,
//! egress `port` / `bind` / `captureMode` (they need traffic capture),
//! `ALLOW_ANY` and `egressProxy` (the router has no original destination).

use weft_crds::{OutboundTrafficMode, SidecarSpec};

use super::Errors;
use super::gateway::{host_selector, unsupported_because};
use crate::model::{ResourceId, Sidecar};

pub(super) fn convert(id: &ResourceId, spec: &SidecarSpec, errors: &mut Errors) -> Sidecar {
    if !spec.ingress.is_empty() {
        errors.unsupported("spec.ingress");
    }
    if spec.inbound_connection_pool.is_some() {
        errors.unsupported("spec.inboundConnectionPool");
    }
    if let Some(policy) = &spec.outbound_traffic_policy {
        if policy.mode == Some(OutboundTrafficMode::AllowAny) {
            unsupported_because(
                errors,
                "spec.outboundTrafficPolicy.mode",
                "ALLOW_ANY needs traffic capture to know where unknown traffic was going; not supported by Weft yet (REGISTRY_ONLY is what Weft does)",
            );
        }
        if policy.egress_proxy.is_some() {
            errors.unsupported("spec.outboundTrafficPolicy.egressProxy");
        }
    }
    if spec.egress.len() > 1 {
        errors.push(
            "spec.egress",
            "only one egress listener is supported (listeners with their own port need traffic capture); put every host in one",
        );
    }
    let selector = spec.workload_selector.as_ref().map(|s| s.labels.clone());
    if selector.as_ref().is_some_and(|l| l.is_empty()) {
        errors.push(
            "spec.workloadSelector.labels",
            "at least one label is required; omit workloadSelector to apply to the whole namespace",
        );
    }
    let mut egress_hosts = Vec::new();
    for (i, listener) in spec.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        if listener.port.is_some() {
            errors.unsupported(format!("{path}.port"));
        }
        if listener.bind.is_some() {
            errors.unsupported(format!("{path}.bind"));
        }
        if listener.capture_mode.is_some() {
            errors.unsupported(format!("{path}.captureMode"));
        }
        if listener.hosts.is_empty() {
            errors.push(format!("{path}.hosts"), "at least one host is required");
        }
        for (k, host) in listener.hosts.iter().enumerate() {
            let field = format!("{path}.hosts[{k}]");
            if !host.contains('/') {
                errors.push(
                    &field,
                    format!("{host:?} needs a namespace: write it as namespace/host (`*/`, `./` or `~/` allowed)"),
                );
                continue;
            }
            egress_hosts.extend(host_selector(&field, host, &id.namespace, true, errors));
        }
    }
    if spec.egress.is_empty() {
        errors.push(
            "spec.egress",
            "at least one egress listener with hosts is required (Weft does not translate ingress listeners yet)",
        );
    }
    Sidecar {
        id: id.clone(),
        workload_selector: selector,
        egress_hosts,
    }
}
