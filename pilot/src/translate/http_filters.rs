//! The HTTP filter chain of every HTTP connection manager Weft builds.

use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::util::pack_any;

/// The filters, in order; the router is always last.
pub fn build_http_filters() -> Vec<HttpFilter> {
    vec![HttpFilter {
        name: "envoy.filters.http.router".to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    }]
}
