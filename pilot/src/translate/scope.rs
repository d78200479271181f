//! Which services a proxy may reach: the services exported to its
//! namespace (`exportTo`), narrowed by the Sidecar resource that selects it.

use crate::model::{MeshSnapshot, Service, is_exported};

use super::ProxyView;

/// The services `view` may reach, in hostname order. Every builder asks
/// this, so a proxy is sent only what it may use.
pub fn visible_services<'a>(
    snapshot: &'a MeshSnapshot,
    view: &'a ProxyView,
) -> impl Iterator<Item = &'a Service> + 'a {
    snapshot
        .services
        .values()
        .filter(move |s| is_exported(&s.export_to, &s.namespace, &view.namespace))
}
