//! The HTTP filter chain of every HTTP connection manager Weft builds:
//! CORS, fault injection, then the router. CORS and fault are configured
//! empty here (they do nothing by default) and per route, by the
//! `typed_per_filter_config` of the routes VirtualServices produce.

use weft_envoy_api::pb::envoy::extensions::filters::http::cors::v3::Cors;
use weft_envoy_api::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use weft_envoy_api::pb::envoy::extensions::filters::http::router::v3::Router;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use weft_envoy_api::pb::google::protobuf::Any;
use weft_envoy_api::util::pack_any;

/// The CORS filter's name: the key of its per-route config.
pub const CORS: &str = "envoy.filters.http.cors";
/// The fault filter's name: the key of its per-route config.
pub const FAULT: &str = "envoy.filters.http.fault";
const ROUTER: &str = "envoy.filters.http.router";

/// The filters, in order; the router is always last. CORS comes first so
/// a preflight is answered before any fault applies (Istio's order).
pub fn build_http_filters() -> Vec<HttpFilter> {
    vec![
        filter(CORS, pack_any(Cors::default())),
        filter(FAULT, pack_any(HttpFault::default())),
        filter(ROUTER, pack_any(Router::default())),
    ]
}

fn filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}
