//! Conversion and store tests, by kind, on meshes written as YAML.

use super::*;
use crate::testing::*;
use weft_model::{LbPolicy, LoadBalancer, Resolution, ResourceId, StringMatch};

fn errors_of(yaml: &str) -> Vec<String> {
    ConfigStore::default()
        .apply(mk_inputs(yaml))
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect()
}

/// `name field: message` of every error, by resource name (`-` for none).
fn field_errors(applied: &Applied) -> Vec<String> {
    applied
        .errors
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.resource.as_ref().map(|r| r.name.as_str()).unwrap_or("-"),
                e.error.field,
                e.error.message
            )
        })
        .collect()
}

fn reviews_mesh(http: &str) -> String {
    docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service("reviews", http),
    ])
}

mod authorization;
mod basics;
mod gateways_and_sidecars;
mod http_features;
mod mtls;
mod quotas;
mod telemetry;
mod traffic_policy;
