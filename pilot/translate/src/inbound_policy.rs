//! The HTTP filters of a workload's inbound HTTP chains and of a
//! gateway's: who the caller is and what it may do, in the order Envoy must
//! run them, ahead of the filters every HTTP chain has
//! ([`build_http_filters`]).

use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;

use super::ProxyView;
use super::authorization::rbac_filters;
use super::ext_authz::custom_filters;
use super::http_filters::build_http_filters;
use super::jwt_authn::jwt_authn_filter;
use weft_model::{MeshSnapshot, jwt_rules_for, policies_for};

/// The filters of the proxy's inbound HTTP chains on its own `port`: the
/// caller's peer metadata, then [`access_filters`], then quotas
/// ([`super::quota`]).
pub(super) fn inbound_http_filters(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    port: u16,
) -> Vec<HttpFilter> {
    // The caller's metadata first, for every later filter and the logs.
    let mut filters = vec![super::telemetry::peer::peer_metadata_filter()];
    filters.extend(access_filters(snapshot, view));
    filters.extend(super::quota::quota_filters(snapshot, view, port));
    filters.extend(build_http_filters());
    filters
}

/// The filters of a gateway's HTTP connection managers: [`access_filters`]
/// for the gateway's own workload, then the rest.
pub(super) fn gateway_http_filters(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<HttpFilter> {
    let mut filters = access_filters(snapshot, view);
    filters.extend(build_http_filters());
    filters
}

/// External authorization (CUSTOM policies, [`super::ext_authz`]), then
/// end-user authentication (RequestAuthentication's JWT rules,
/// [`super::jwt_authn`]), then authorization ([`super::authorization`]),
/// for the policies that apply to the proxy's workload: Istio's order.
fn access_filters(snapshot: &MeshSnapshot, view: &ProxyView) -> Vec<HttpFilter> {
    let root = &snapshot.mesh_config.root_namespace;
    let rules = jwt_rules_for(
        &snapshot.request_authentications,
        root,
        &view.namespace,
        &view.labels,
    );
    let policies = policies_for(
        &snapshot.authorization_policies,
        root,
        &view.namespace,
        &view.labels,
    );
    let mut filters = custom_filters(snapshot, view, &policies);
    filters.extend(jwt_authn_filter(snapshot, &rules));
    filters.extend(rbac_filters(&policies));
    filters
}
