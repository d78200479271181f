//! # weft-translate: (`MeshSnapshot`, `ProxyView`) -> Envoy resources
//!
//! This crate owns what a proxy's Envoy config is: clusters, load
//! assignments, listeners and route configurations for sidecars (the HTTP
//! router, or captured `virtualOutbound` / `virtualInbound`) and gateways;
//! the inbound HTTP filters (RBAC from AuthorizationPolicy, then Quota rate
//! limits); what every listener reports (`telemetry`: Istio's metrics
//! through Envoy's stats access logger, the metadata they read, access
//! logs and tracers, from the Telemetry API and the mesh config);
//! [`check_consistency`]; a proxy's [`ProxyView`] read from its `Node`
//! ([`node`]); and the Envoy [`bootstrap`] that points a proxy at Weft.
//!
//! Pure functions only: no I/O, no clock, no globals, and Cargo keeps it so
//! (no tokio, tonic, notify or kube among its dependencies). The same inputs
//! give the same output, sorted by resource name, so content hashes are
//! stable. A `build_*` function never fails on a validated snapshot;
//! validation happened when the snapshot was built (weft-config). It must
//! not see a user resource or serve anything: weft-xds serves what it
//! builds.

mod applicable_rule;
mod authorization;
pub mod bootstrap;
mod capture;
mod cluster;
mod config_metadata;
mod consistency;
mod endpoint;
mod ext_authz;
mod gateway;
mod gateway_tls;
mod hash_policy;
mod http_filters;
mod inbound;
mod inbound_policy;
mod jwt_authn;
mod jwt_principals;
mod l4;
mod listener;
mod mtls;
pub mod node;
pub mod quota;
mod route;
mod scope;
mod telemetry;
mod upstream_tls;
mod view;

pub use capture::{
    INBOUND_CAPTURE_PORT, INBOUND_PASSTHROUGH_CLUSTER, OUTBOUND_CAPTURE_PORT, PASSTHROUGH_CLUSTER,
    SharingKey, VIRTUAL_INBOUND, VIRTUAL_OUTBOUND, sharing_key,
};
pub use cluster::build_clusters;
pub use consistency::check_consistency;
pub use endpoint::build_load_assignments;
pub use gateway::{build_gateway_listeners, build_gateway_route_configs};
pub use inbound::{inbound_cluster_name, inbound_listener_name, inbound_mode};
pub use listener::{ROUTER_LISTENER, build_listeners};
pub use mtls::{SDS_CLUSTER, SDS_DEFAULT, SDS_ROOTCA, TLS_MODE_LABEL};
pub use route::{ROUTER_ROUTE_CONFIG, build_route_configs};
pub use scope::{sidecar_for, visible_services};
pub use view::{ProxyRole, ProxyView};

use weft_envoy_api::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address,
    config_source::ConfigSourceSpecifier, socket_address::PortSpecifier,
};
use weft_envoy_api::pb::google::protobuf::Duration as PbDuration;

/// Istio's cluster name: `outbound|<port>|<subset>|<host>`.
pub fn outbound_cluster_name(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// A config source that says "over the same ADS stream".
pub(crate) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub(crate) fn socket_address(address: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

pub(crate) fn pb_duration(d: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod gateway_tests;
#[cfg(test)]
mod snapshots_test;
#[cfg(test)]
mod tests;
