//! The pinned Kubernetes Gateway API (`sigs.k8s.io/gateway-api`, what
//! Istio 1.30 pins): its CRDs; the chart vendors the standard channel's
//! under `charts/weft/gateway-api/` (`make gateway-api-crds`).

use std::path::PathBuf;

use anyhow::Result;

use crate::go_source::go_module_source;
use crate::k8s_tools::go_modules_dir;

/// The Go module of the Gateway API.
pub const GATEWAY_API_MODULE: &str = "sigs.k8s.io/gateway-api";
/// Its pinned release; the Makefile's `GATEWAY_API_VERSION` is the same.
pub const GATEWAY_API_VERSION: &str = "v1.5.1";

/// The module's `config/crd/<channel>` directory (`standard` or
/// `experimental`).
pub fn upstream_crds_dir(channel: &str) -> Result<PathBuf> {
    let module = go_module_source(&go_modules_dir(), GATEWAY_API_MODULE, GATEWAY_API_VERSION)?;
    Ok(module.join("config/crd").join(channel))
}
