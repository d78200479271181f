//! The HTTP filters of a workload's inbound HTTP chains: the workload's
//! access and rate policies, in the order Envoy must run them, ahead of the
//! filters every HTTP chain has ([`build_http_filters`]).

use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;

use super::ProxyView;
use super::authorization::rbac_filters;
use super::http_filters::build_http_filters;
use weft_model::{MeshSnapshot, policies_for};

/// The filters of the proxy's inbound HTTP chains on its own `port`:
/// authorization ([`super::authorization`]), then quotas ([`super::quota`]).
pub(super) fn inbound_http_filters(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    port: u16,
) -> Vec<HttpFilter> {
    let policies = policies_for(
        &snapshot.authorization_policies,
        &snapshot.mesh_config.root_namespace,
        &view.namespace,
        &view.labels,
    );
    // The caller's metadata first, for every later filter and the logs.
    let mut filters = vec![super::telemetry::peer::peer_metadata_filter()];
    filters.extend(rbac_filters(&policies));
    filters.extend(super::quota::quota_filters(snapshot, view, port));
    filters.extend(build_http_filters());
    filters
}
