//! PeerAuthentication -> model.
//!
//! Everything is translated: `selector.matchLabels`, `mtls.mode` and
//! `portLevelMtls`. As in Istio's validation, `portLevelMtls` needs a
//! `selector` (ports are a workload's), a selector needs a label, and a
//! port key must be a port number.

use weft_crds::{MtlsMode as CrdMode, PeerAuthenticationSpec};

use super::common::selector_labels;
use super::{Errors, port_number};
use weft_model::{MtlsMode, PeerAuthentication, ResourceId};

pub(super) fn convert(
    id: &ResourceId,
    spec: &PeerAuthenticationSpec,
    errors: &mut Errors,
) -> PeerAuthentication {
    let selector = selector_labels(
        "spec.selector.matchLabels",
        "selector",
        spec.selector.as_ref().map(|s| &s.match_labels),
        errors,
    );
    let mode = |m: Option<CrdMode>| match m.unwrap_or_default() {
        CrdMode::Unset => MtlsMode::Unset,
        CrdMode::Disable => MtlsMode::Disable,
        CrdMode::Permissive => MtlsMode::Permissive,
        CrdMode::Strict => MtlsMode::Strict,
    };
    if !spec.port_level_mtls.is_empty() && selector.is_none() {
        errors.push(
            "spec.portLevelMtls",
            "portLevelMtls needs a selector (ports belong to workloads); add selector.matchLabels or move the ports to a workload policy",
        );
    }
    let mut port_modes = std::collections::BTreeMap::new();
    for (key, mtls) in &spec.port_level_mtls {
        let field = format!("spec.portLevelMtls[{key}]");
        match key.parse::<u32>() {
            Ok(n) => {
                if let Some(port) = port_number(&field, n, errors) {
                    port_modes.insert(port, mode(mtls.mode));
                }
            }
            Err(_) => errors.push(&field, format!("{key:?} is not a port number (1-65535)")),
        }
    }
    PeerAuthentication {
        id: id.clone(),
        selector,
        mode: mode(spec.mtls.as_ref().and_then(|m| m.mode)),
        port_modes,
    }
}
