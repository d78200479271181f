//! Which services a proxy may reach: the services exported to its
//! namespace (`exportTo`), narrowed by the Sidecar resource that selects it.
//!
//! The Sidecar for a sidecar proxy is, as in Istio: the one of its
//! namespace whose `workloadSelector` matches its labels (the first by
//! name if several do), else its namespace's Sidecar without a selector,
//! else the mesh default (a Sidecar without selector in the root namespace
//! `istio-system`). Gateways are never scoped by a Sidecar.

use weft_model::{MeshSnapshot, Service, Sidecar, is_exported};

use super::{ProxyRole, ProxyView};

/// The services `view` may reach, in hostname order. Every builder asks
/// this, so a proxy is sent only what it may use.
pub fn visible_services<'a>(
    snapshot: &'a MeshSnapshot,
    view: &'a ProxyView,
) -> impl Iterator<Item = &'a Service> + 'a {
    let sidecar = sidecar_for(snapshot, view);
    snapshot.services.values().filter(move |s| {
        is_exported(&s.export_to, &s.namespace, &view.namespace)
            && sidecar.is_none_or(|sc| sc.allows(&s.namespace, &s.hostname))
    })
}

/// The Sidecar resource that applies to `view`, if any.
pub fn sidecar_for<'a>(snapshot: &'a MeshSnapshot, view: &ProxyView) -> Option<&'a Sidecar> {
    if view.role != ProxyRole::Sidecar {
        return None;
    }
    let in_namespace = || {
        snapshot
            .sidecars
            .iter()
            .filter(|s| s.id.namespace == view.namespace)
    };
    in_namespace()
        .find(|s| {
            s.workload_selector
                .as_ref()
                .is_some_and(|selector| selector.iter().all(|(k, v)| view.labels.get(k) == Some(v)))
        })
        .or_else(|| in_namespace().find(|s| s.workload_selector.is_none()))
        .or_else(|| {
            snapshot.sidecars.iter().find(|s| {
                s.id.namespace == snapshot.mesh_config.root_namespace
                    && s.workload_selector.is_none()
            })
        })
}
