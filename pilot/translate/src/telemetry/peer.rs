//! Who the caller is, for a server's `source_*` labels. Istio's proxies
//! exchange workload metadata in-band (its metadata-exchange filter);
//! upstream Envoy has no such filter, so the client's sidecar adds a
//! header with its workload's fields ([`PEER_HEADER`], a base64 protobuf
//! `Value`) to requests for mesh services, and the server's sidecar moves
//! it into dynamic metadata ([`PEER_METADATA_NAMESPACE`] / `source`) with
//! `header_to_metadata`, removing it before the application sees it. The
//! caller's identity itself comes from its mTLS certificate, never from
//! the header.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use weft_envoy_api::pb::envoy::config::core::v3::HeaderValueOption;
use weft_envoy_api::pb::envoy::extensions::filters::http::header_to_metadata::v3::{
    Config, config::KeyValuePair, config::Rule, config::ValueEncode, config::ValueType,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use weft_envoy_api::pb::google::protobuf::{Value, value::Kind};
use weft_envoy_api::util::pack_any;

use super::WorkloadLabels;
use super::metadata::workload_fields;

/// The header carrying the caller's workload metadata.
pub const PEER_HEADER: &str = "x-weft-peer-metadata";
/// The dynamic metadata namespace the server keeps it under.
pub(crate) const PEER_METADATA_NAMESPACE: &str = "weft.peer";
/// The key of the caller's fields in [`PEER_METADATA_NAMESPACE`].
pub(crate) const PEER_METADATA_KEY: &str = "source";

/// The header a client's sidecar adds to mesh requests.
pub(crate) fn peer_header(own: &WorkloadLabels) -> HeaderValueOption {
    let value = Value {
        kind: Some(Kind::StructValue(workload_fields(own))),
    };
    HeaderValueOption {
        header: Some(weft_envoy_api::pb::envoy::config::core::v3::HeaderValue {
            key: PEER_HEADER.to_string(),
            value: STANDARD.encode(value.encode_to_vec()),
            ..Default::default()
        }),
        // Overwrite whatever the application (or a caller) sent.
        append_action: weft_envoy_api::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

/// The server's filter that reads (and removes) the caller's header; first
/// among the inbound HTTP filters, so every later one sees the metadata.
pub(crate) fn peer_metadata_filter() -> HttpFilter {
    let rule = Rule {
        header: PEER_HEADER.to_string(),
        on_header_present: Some(KeyValuePair {
            metadata_namespace: PEER_METADATA_NAMESPACE.to_string(),
            key: PEER_METADATA_KEY.to_string(),
            r#type: ValueType::ProtobufValue as i32,
            encode: ValueEncode::Base64 as i32,
            ..Default::default()
        }),
        remove: true,
        ..Default::default()
    };
    HttpFilter {
        name: "envoy.filters.http.header_to_metadata".to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Config {
            request_rules: vec![rule],
            ..Default::default()
        }))),
        ..Default::default()
    }
}
